"""video settings per platform: one tool serving several institutions, each with its own video server

Revision ID: f6b2d1ef0a02
Revises: e5a1c0de9901
Create Date: 2026-12-04 19:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'f6b2d1ef0a02'
down_revision = 'e5a1c0de9901'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('platforms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('video_settings', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('platforms', schema=None) as batch_op:
        batch_op.drop_column('video_settings')
