"""deep linking: deep_link_requests; a room's first schedule and grading choice; the AGS scopes a launch granted

Revision ID: e5a1c0de9901
Revises: d91e4c7b2a10
Create Date: 2026-12-11 10:00:00

- deep_link_requests: a teacher's deep-linking request between the launch and the set-up
  form's answer (single use: used_at);
- rooms.graded (existing rooms keep sending grades), rooms.score_maximum (100: what was sent
  so far), rooms.schedule_start / schedule_minutes / schedule_weeks (the first schedule the
  link's custom parameters gave the room; none for existing rooms);
- resource_links.ags_scopes: the scopes the latest launch's AGS claim listed (none yet: the
  tool tries what it needs until the next launch says).
"""
import sqlalchemy as sa
from alembic import op

revision = 'e5a1c0de9901'
down_revision = 'd91e4c7b2a10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deep_link_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('deployment_id', sa.String(length=255), nullable=False),
    sa.Column('context_id', sa.String(length=255), nullable=False),
    sa.Column('sub', sa.String(length=255), nullable=False),
    sa.Column('return_url', sa.String(length=1024), nullable=False),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deep_link_requests'))
    )
    with op.batch_alter_table('deep_link_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deep_link_requests_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('graded', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('score_maximum', sa.Float(), server_default='100', nullable=False))
        batch_op.add_column(sa.Column('schedule_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('schedule_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('schedule_weeks', sa.Integer(), nullable=True))

    with op.batch_alter_table('resource_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ags_scopes', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('resource_links', schema=None) as batch_op:
        batch_op.drop_column('ags_scopes')

    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('schedule_weeks')
        batch_op.drop_column('schedule_minutes')
        batch_op.drop_column('schedule_start')
        batch_op.drop_column('score_maximum')
        batch_op.drop_column('graded')

    with op.batch_alter_table('deep_link_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deep_link_requests_expires_at'))

    op.drop_table('deep_link_requests')
