"""recordings: the tool's copy of each room's recordings, and when it last asked the provider

Revision ID: c2e8a4f61d37
Revises: b8d4f0a26c31
Create Date: 2027-01-10 10:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'c2e8a4f61d37'
down_revision = 'b8d4f0a26c31'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'recordings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('record_id', sa.String(length=255), nullable=False),
        sa.Column('run_id', sa.String(length=255), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('length_minutes', sa.Integer(), nullable=True),
        sa.Column('playback_url', sa.Text(), nullable=False),
        sa.Column('published', sa.Boolean(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('room_id', 'record_id'),
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_room_id'), ['room_id'], unique=False)
    op.create_table(
        'recording_checks',
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('room_id'),
    )


def downgrade():
    op.drop_table('recording_checks')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recordings_room_id'))
    op.drop_table('recordings')
