"""The safety net for missed events: while a room's meeting runs, compare who the provider says
is present with the open intervals, and feed the differences to the inbox as `poll` events
(a join for someone present without an open interval, a leave for someone gone). The poll's
own time is the best the tool knows for those; real events, when they arrive, refine them.
"""
from __future__ import annotations

import logging

from sqlalchemy import or_, select

from ..extensions import db
from ..logsafe import quoted
from ..models import AttendanceInterval, ClassSession, ProviderEvent, Room, utcnow
from ..providers.base import ProviderError
from ..rooms.service import provider_of
from . import events as E
from .service import connection_of, log_refusals, receive, to_ms

log = logging.getLogger(__name__)


def rooms_to_poll() -> list[Room]:
    return db.session.scalars(
        select(Room).where(
            or_(
                Room.running.is_(True),
                Room.started_at.is_not(None) & (or_(Room.ended_at.is_(None), Room.ended_at < Room.started_at)),
            )
        )
    ).all()


def _open_users(run_id: str, room: Room) -> set[str]:
    session = db.session.scalar(
        select(ClassSession).where(ClassSession.room_id == room.id, ClassSession.run_id == run_id)
    )
    if session is None:
        return set()
    return set(
        db.session.scalars(
            select(AttendanceInterval.external_user_id).where(
                AttendanceInterval.session_id == session.id, AttendanceInterval.left_at.is_(None)
            )
        )
    )


def poll_room(room: Room) -> int:
    try:
        status = provider_of(room).meeting_status(room.meeting_id)
    except ProviderError as exc:
        log.info("poll of room %s skipped: %s", room.id, quoted(exc.detail))
        return 0
    if not status.exists or not status.run_id:
        return 0
    run_id = status.run_id
    now_ms = to_ms(utcnow())
    present = {p.user_id: p for p in status.participants}
    open_now = _open_users(run_id, room)

    def event(kind, user_id, participant=None):
        return E.IncomingEvent(
            provider=room.provider, source="poll", kind=kind, meeting_id=room.meeting_id, run_id=run_id,
            occurred_at_ms=now_ms, external_user_id=user_id, run_started_at_ms=status.started_at_ms,
            user_name=participant.full_name if participant else "", role=participant.role if participant else "",
            payload={"connection": "poll"},
        )

    found = [event(E.USER_JOINED, uid, p) for uid, p in present.items() if uid not in open_now]
    # A leave for every connection still open: the poll cannot tell which one ended.
    gone = [event(E.USER_LEFT, uid) for uid in open_now if uid not in present]
    receipt = receive(found + _leaves_for_open_connections(gone, run_id, room))
    log_refusals(f"poll of room {room.id}", receipt.refused)
    return len(receipt.new)


def _leaves_for_open_connections(gone: list[E.IncomingEvent], run_id: str, room: Room) -> list[E.IncomingEvent]:
    leaves = []
    for event in gone:
        connections = set()
        rows = db.session.scalars(
            select(ProviderEvent).where(
                ProviderEvent.meeting_id == room.meeting_id,
                ProviderEvent.run_id == run_id,
                ProviderEvent.external_user_id == event.external_user_id,
                ProviderEvent.kind == E.USER_JOINED,
            )
        )
        for row in rows:
            connections.add(connection_of(row))
        for connection in connections or {"poll"}:
            leaves.append(
                E.IncomingEvent(**{**event.__dict__, "payload": {"connection": connection}})
            )
    return leaves


def poll_running_rooms() -> int:
    return sum(poll_room(room) for room in rooms_to_poll())
