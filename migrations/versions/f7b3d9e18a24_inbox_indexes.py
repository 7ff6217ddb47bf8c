"""inbox indexes: a person's events in a session (recomputing their intervals reads them) and
a person's intervals in a session (rewritten then); the pending events a worker claims

Revision ID: f7b3d9e18a24
Revises: e5a2c8d07f13
Create Date: 2026-12-05 00:00:00
"""
from alembic import op


revision = 'f7b3d9e18a24'
down_revision = 'e5a2c8d07f13'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_provider_events_session_user', 'provider_events', ['session_id', 'external_user_id'])
    op.create_index('ix_attendance_intervals_session_user', 'attendance_intervals',
                    ['session_id', 'external_user_id'])


def downgrade():
    op.drop_index('ix_attendance_intervals_session_user', table_name='attendance_intervals')
    op.drop_index('ix_provider_events_session_user', table_name='provider_events')
