"""engagement: what each person did in each class session (talk time, chat messages, raised
hands, poll votes, reactions) as the provider reports it; NULL = not reported

Revision ID: d4f1b7c93e52
Revises: c2e8a4f61d37
Create Date: 2026-12-06 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'd4f1b7c93e52'
down_revision = 'c2e8a4f61d37'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'engagement',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('external_user_id', sa.String(length=255), nullable=False),
        sa.Column('talk_seconds', sa.Integer(), nullable=True),
        sa.Column('chat_messages', sa.Integer(), nullable=True),
        sa.Column('raised_hands', sa.Integer(), nullable=True),
        sa.Column('poll_votes', sa.Integer(), nullable=True),
        sa.Column('reactions', sa.Integer(), nullable=True),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['class_sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id', 'external_user_id'),
    )
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagement_session_id'))
    op.drop_table('engagement')
