"""BigBlueButton's end-of-meeting callback, believed only when the server confirms it.

BBB does not sign the callback (the tool signs the URL it registers: providers/bbb/signing.py), and
the URL sits in the meeting's metadata, so whoever holds it may call it again and again:

- a call for a run that is already over asks nothing and stores nothing;
- otherwise the server is asked, at most once per room every ROOM_STATE_CHECK_SECONDS (the
  throttle of `rooms.service.refresh_state`, shared with the waiting pages);
- confirmed over: the end is stored — one row per run, the end callback's dedupe key has no
  time — and applied, at the moment BBB called;
- not asked (another check was too recent) or no answer: the report is kept `unconfirmed`, and
  the worker asks once the window has passed (`confirm_reported_ends`): over, it is applied;
  still running, it is dropped (premature, or forged by someone holding the URL).
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from ...attendance.service import apply_rows, receive, store_events, to_ms
from ...extensions import db
from ...models import ClassSession, ProviderEvent, Room, utcnow
from ...rooms.service import refresh_state
from .callbacks import end_callback_event

log = logging.getLogger(__name__)

UNCONFIRMED = "unconfirmed"  # the status of a reported end the server has not confirmed yet


def report_end(room: Room) -> bool:
    """BBB's end callback for `room` arrived: True when the meeting's current run is over."""
    if room.run_id is None:  # no run the tool knows of: only the room's own state
        refresh_state(room)
        return not room.running and not room.started_since_last_end
    run_id = room.run_id
    if run_has_ended(room, run_id):
        return True
    event = end_callback_event(room.meeting_id, run_id, to_ms(utcnow()))
    if not refresh_state(room):
        store_events([event], status=UNCONFIRMED)
        return False
    if not run_is_over(room, run_id):
        return False
    receive([event])
    return True


def run_has_ended(room: Room, run_id: str) -> bool:
    """Has the tool recorded the end of this run already (from any source)?"""
    ended_at = db.session.scalar(
        select(ClassSession.ended_at).where(ClassSession.room_id == room.id, ClassSession.run_id == run_id)
    )
    return ended_at is not None


def run_is_over(room: Room, run_id: str) -> bool:
    """After a state check: is this run over — a newer run replaced it, or the meeting is gone?"""
    return room.run_id != run_id or (not room.running and not room.started_since_last_end)


def confirm_reported_ends(limit: int = 50) -> int:
    """The worker's part: ask the server about each unconfirmed end (within the same throttle)
    and apply or drop it. Returns how many were decided."""
    rows = db.session.scalars(
        select(ProviderEvent).where(ProviderEvent.status == UNCONFIRMED).order_by(ProviderEvent.id).limit(limit)
    ).all()
    return sum(_decide(row) for row in rows)


def _decide(row: ProviderEvent) -> bool:
    room = db.session.scalar(select(Room).where(Room.meeting_id == row.meeting_id))
    if room is None:  # the room was deleted since
        db.session.delete(row)
        db.session.commit()
        return True
    if not run_has_ended(room, row.run_id):
        if not refresh_state(room):
            return False  # asked too recently, or no answer: the next pass asks
        if not run_is_over(room, row.run_id):
            log.warning("room %s: an end callback was not confirmed (the meeting still runs): dropped", room.id)
            db.session.delete(row)
            db.session.commit()
            return True
    apply_rows([row])  # ranked against any end already known (end_callback below webhooks)
    return True
