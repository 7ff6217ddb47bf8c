"""courses: the platform's product family (tool_platform claim), so the calendars' join link can
open a Moodle activity directly

Revision ID: b8d4f0a26c31
Revises: a7c3e9d15b20
Create Date: 2026-12-05 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'b8d4f0a26c31'
down_revision = 'a7c3e9d15b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product_family', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('product_family')
