"""runs of a meeting named by the provider's own id: rooms.run_id, class_sessions.run_id, provider_events.run_id and run_started_at

Revision ID: d91e4c7b2a10
Revises: c3f1a7d2e901
Create Date: 2026-12-04 19:00:00

The core no longer knows BigBlueButton's formats: a run of a meeting is whatever id its
provider gives it (BBB: the internal meeting id; LiveKit: the room sid), the time a run began
comes with its events, and the connection an event belongs to is in its payload. Existing data
is carried over: BBB rooms get the internal id of their last known run, BBB events the start
their internal id tells and the connection their payload names.
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = 'd91e4c7b2a10'
down_revision = 'c3f1a7d2e901'
branch_labels = None
depends_on = None

EARLIEST_MS = 946_684_800_000


def _create_time_of(run_id):
    tail = (run_id or "").rsplit("-", 1)[-1]
    if tail.isascii() and tail.isdigit() and len(tail) <= 15 and int(tail) >= EARLIEST_MS:
        return int(tail)
    return None


def upgrade():
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=255), nullable=True))
    _carry_room_runs()
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('create_time')

    with op.batch_alter_table('class_sessions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_class_sessions_room_id_internal_meeting_id', type_='unique')
        batch_op.alter_column('internal_meeting_id', new_column_name='run_id',
                              existing_type=sa.String(length=255), existing_nullable=False)
        batch_op.drop_column('create_time')
    with op.batch_alter_table('class_sessions', schema=None) as batch_op:  # on the renamed column
        batch_op.create_unique_constraint('uq_class_sessions_room_id_run_id', ['room_id', 'run_id'])

    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.alter_column('internal_meeting_id', new_column_name='run_id',
                              existing_type=sa.String(length=255), existing_nullable=False)
        batch_op.add_column(sa.Column('run_started_at', sa.DateTime(timezone=True), nullable=True))
    _carry_bbb_events()


def _carry_room_runs():
    rooms = sa.table('rooms', sa.column('id', sa.Integer), sa.column('provider', sa.String),
                     sa.column('meeting_id', sa.String), sa.column('create_time', sa.BigInteger),
                     sa.column('run_id', sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(rooms.c.id, rooms.c.meeting_id, rooms.c.create_time)
                        .where(rooms.c.provider == 'bbb', rooms.c.create_time.is_not(None))).all()
    for room_id, meeting_id, create_time in rows:
        run_id = f"{hashlib.sha1(meeting_id.encode()).hexdigest()}-{create_time}"
        bind.execute(rooms.update().where(rooms.c.id == room_id).values(run_id=run_id))


def _carry_bbb_events():
    from datetime import datetime, timezone

    events = sa.table('provider_events', sa.column('id', sa.Integer), sa.column('provider', sa.String),
                      sa.column('run_id', sa.String), sa.column('payload', sa.JSON),
                      sa.column('run_started_at', sa.DateTime(timezone=True)))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.run_id, events.c.payload)
                        .where(events.c.provider == 'bbb')).all()
    for event_id, run_id, payload in rows:
        values = {}
        started = _create_time_of(run_id)
        if started:
            values["run_started_at"] = datetime.fromtimestamp(started / 1000, tz=timezone.utc)
        user = ((payload or {}).get("attributes") or {}).get("user") if isinstance(payload, dict) else None
        connection = user.get("internal-user-id") if isinstance(user, dict) else None
        if connection and not payload.get("connection"):
            values["payload"] = {**payload, "connection": connection}
        if values:
            bind.execute(events.update().where(events.c.id == event_id).values(**values))


def downgrade():
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_column('run_started_at')
        batch_op.alter_column('run_id', new_column_name='internal_meeting_id',
                              existing_type=sa.String(length=255), existing_nullable=False)
    with op.batch_alter_table('class_sessions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_class_sessions_room_id_run_id', type_='unique')
        batch_op.add_column(sa.Column('create_time', sa.BigInteger(), nullable=True))
        batch_op.alter_column('run_id', new_column_name='internal_meeting_id',
                              existing_type=sa.String(length=255), existing_nullable=False)
    with op.batch_alter_table('class_sessions', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_class_sessions_room_id_internal_meeting_id',
                                          ['room_id', 'internal_meeting_id'])
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('create_time', sa.BigInteger(), nullable=True))
        batch_op.drop_column('run_id')
