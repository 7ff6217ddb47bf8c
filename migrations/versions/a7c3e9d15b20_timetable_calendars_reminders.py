"""timetable: occasions, early join, teacher end and time zone per room, calendar feeds, reminder notices, opt-outs and the mail outbox

Revision ID: a7c3e9d15b20
Revises: f6b2d1ef0a02
Create Date: 2026-12-04 20:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = 'a7c3e9d15b20'
down_revision = 'f6b2d1ef0a02'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('early_join_minutes', sa.Integer(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('ended_by_teacher_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=True))
    op.create_table(
        'occasions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('series_id', sa.String(length=32), nullable=True),
        sa.Column('uid', sa.String(length=128), nullable=False),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('minutes', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('uid'),
    )
    with op.batch_alter_table('occasions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_occasions_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_occasions_series_id'), ['series_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_occasions_starts_at'), ['starts_at'], unique=False)
    op.create_table(
        'calendar_feeds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=True),
        sa.Column('scope', sa.String(length=32), nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reset_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'scope'),
    )
    op.create_table(
        'schedule_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('occasion_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('dedupe_key', sa.String(length=255), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expanded_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['occasion_id'], ['occasions.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    with op.batch_alter_table('schedule_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_notices_expanded_at'), ['expanded_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedule_notices_room_id'), ['room_id'], unique=False)
    op.create_table(
        'reminder_opt_outs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('issuer', sa.String(length=255), nullable=False),
        sa.Column('sub', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('room_id', 'issuer', 'sub'),
    )
    op.create_table(
        'email_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('notice_id', sa.Integer(), nullable=True),
        sa.Column('room_id', sa.Integer(), nullable=True),
        sa.Column('dedupe_key', sa.String(length=512), nullable=False),
        sa.Column('to_address', sa.String(length=320), nullable=False),
        sa.Column('to_name', sa.String(length=255), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['notice_id'], ['schedule_notices.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_messages_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_messages_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_messages_status'), ['status'], unique=False)


def downgrade():
    op.drop_table('email_messages')
    op.drop_table('reminder_opt_outs')
    op.drop_table('schedule_notices')
    op.drop_table('calendar_feeds')
    op.drop_table('occasions')
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
        batch_op.drop_column('ended_by_teacher_at')
        batch_op.drop_column('early_join_minutes')
