"""platform_tokens: the access token sealed at rest (sealed_token, NULL while none is held), so
the row can also serve as the lock its one fetcher holds; cached plain tokens are dropped (each
costs one token request to fetch again)

Revision ID: e5a2c8d07f13
Revises: d4f1b7c93e52
Create Date: 2026-12-07 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'e5a2c8d07f13'
down_revision = 'd4f1b7c93e52'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("DELETE FROM platform_tokens")
    with op.batch_alter_table('platform_tokens', schema=None) as batch_op:
        batch_op.drop_column('access_token')
        batch_op.add_column(sa.Column('sealed_token', sa.Text(), nullable=True))


def downgrade():
    op.execute("DELETE FROM platform_tokens")
    with op.batch_alter_table('platform_tokens', schema=None) as batch_op:
        batch_op.drop_column('sealed_token')
        batch_op.add_column(sa.Column('access_token', sa.Text(), nullable=False))
