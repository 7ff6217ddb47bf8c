"""What the room pages say about the class right now (docs/room-states.md): not started,
starting, live (since when, how many people, whether it is recorded) or ended.

Everything comes from the database: the room's state, refreshed from the provider at most once
per room every `ROOM_STATE_CHECK_SECONDS` (rooms.service.refresh_state), and the attendance the
provider's events recorded. A crowd of pages polling `/rooms/<id>/status` costs reads only, and
the live facts are kept per process for the same few seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..lti.roles import MODERATOR
from ..models import AttendanceInterval, ClassSession, Enrolment, Room, utcnow
from . import service

NOT_STARTED, STARTING, LIVE, ENDED = "not_started", "starting", "live", "ended"
# After this long, a class that ended is old news: the page says "not started yet" again.
ENDED_SHOWN_FOR = timedelta(hours=12)


@dataclass(frozen=True)
class ClassState:
    """The class as one person's page shows it."""

    state: str  # NOT_STARTED, STARTING, LIVE, ENDED
    may_join: bool  # the page offers `join` (a teacher always, while the provider is set up)
    starts_meetings: bool  # this person's join starts a class that is not open (a teacher's "Start class")
    started_at: datetime | None  # the tool's start of the current or last class (the stale-join stamp)
    since: datetime | None  # live or starting: when the class began (the provider's time where known)
    ended_at: datetime | None  # ended: when, where the provider reported it
    people: int | None  # live: people in the class now, as the provider's events report them
    recording: str  # "off", "automatic" (from the start) or "on_demand" (a teacher may start it)

    def as_json(self) -> dict:
        return {
            "state": self.state, "open": self.may_join, "since": _iso(self.since), "ended_at": _iso(self.ended_at),
            "people": self.people, "recording": self.recording,
        }


def class_state(room: Room, role: str) -> ClassState:
    """The state of the room's class for a person with this role (refreshing the room's state
    from the provider when the last check is older than the interval)."""
    configured = service.provider_ready(room)
    settings = service.room_settings(room)
    starts = role == MODERATOR or not settings.wait_for_moderator
    if configured and starts:
        service.refresh_state(room)  # (a waiting student's may_join_now refreshes it itself)
    may_join = configured and service.may_join_now(room, role)
    state = _state_of(room, role, may_join)
    recording = "off" if not settings.record else ("automatic" if settings.auto_start_recording else "on_demand")
    since = people = ended_at = None
    if state in (LIVE, STARTING):
        since, people = _live_facts(room)
        people = people if state == LIVE else None
    elif state == ENDED:
        ended_at = _last_end(room)
    return ClassState(state, may_join, starts, room.started_at, since, ended_at, people, recording)


def _state_of(room: Room, role: str, may_join: bool) -> str:
    if room.running:
        return LIVE
    if room.started_since_last_end:
        return STARTING
    if room.started_at is None or room.started_at < utcnow() - ENDED_SHOWN_FOR:
        return NOT_STARTED
    if role != MODERATOR and may_join and service.room_settings(room).wait_for_moderator:
        return NOT_STARTED  # a scheduled class that opened after the last one ended: a new class
    return ENDED


# --- live facts, kept per process for ROOM_STATE_CHECK_SECONDS -----------------------------------
def _facts_cache() -> dict:
    return current_app.extensions.setdefault("room_live_facts", {})


def _live_facts(room: Room) -> tuple[datetime | None, int | None]:
    """(since, people) of the room's current run: the provider's start time of its class session
    and how many people have an open attendance interval in it."""
    key = (room.run_id, room.started_at)
    cached = _facts_cache().get(room.id)
    if cached and cached[0] > time.monotonic() and cached[1] == key:
        return cached[2]
    session = None
    if room.run_id:
        session = db.session.scalar(
            select(ClassSession).where(ClassSession.room_id == room.id, ClassSession.run_id == room.run_id)
            .order_by(ClassSession.id.desc()).limit(1)
        )
    people = None
    if session is not None:
        people = db.session.scalar(
            select(func.count(func.distinct(AttendanceInterval.external_user_id)))
            .where(AttendanceInterval.session_id == session.id, AttendanceInterval.left_at.is_(None))
        )
    since = session.started_at if session is not None and session.started_at else room.started_at
    facts = (since, people)
    lifetime = float(current_app.config["ROOM_STATE_CHECK_SECONDS"])
    _facts_cache()[room.id] = (time.monotonic() + lifetime, key, facts)
    return facts


# --- how often the room's pages poll ----------------------------------------------------------------
PAGE_POLL_SECONDS = 4.0  # static/pages.js: every 4-7 s (the base, plus up to 75 % of it as jitter)
JITTER_MEAN = 1.375
CROWD_KEPT_SECONDS = 60.0


def crowd_poll_seconds(room: Room) -> float:
    """The base interval (seconds) the room's pages should poll at, so that all its people's pages
    together send about ROOM_POLLS_PER_SECOND polls: 0 (the pages' own 4-7 s) for any class up
    to ~550 at the default. The room's enrolments are counted once a minute per process."""
    crowds = current_app.extensions.setdefault("room_crowds", {})
    kept = crowds.get(room.id)
    if kept is None or kept[0] < time.monotonic():
        enrolled = db.session.scalar(
            select(func.count(Enrolment.id)).where(Enrolment.resource_link_id == room.resource_link_id))
        kept = crowds[room.id] = (time.monotonic() + CROWD_KEPT_SECONDS, enrolled or 0)
    rate = float(current_app.config["ROOM_POLLS_PER_SECOND"])
    base = kept[1] / rate / JITTER_MEAN if rate > 0 else 0.0
    return round(base, 1) if base > PAGE_POLL_SECONDS else 0.0


def _last_end(room: Room) -> datetime | None:
    """When the last class ended: the provider's end of its session, else the teacher's End."""
    ended = db.session.scalar(
        select(ClassSession.ended_at).where(ClassSession.room_id == room.id, ClassSession.ended_at.is_not(None))
        .order_by(ClassSession.ended_at.desc()).limit(1)
    )
    if ended is not None and room.started_at is not None and ended >= room.started_at:
        return ended
    teacher_end = room.ended_by_teacher_at
    return teacher_end if teacher_end is not None and room.started_at and teacher_end >= room.started_at else None


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
