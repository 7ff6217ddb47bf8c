"""A room's occasions in the database: the first schedule, the teacher's changes, what the pages
ask (the next occasion, the open one, every occasion with its runs), and the notices that tell
people of a change (written in the change's own transaction; reminders/ sends them).

Times are stored in UTC. A teacher's form gives a wall-clock time and the browser's time zone;
a series keeps its wall-clock time across daylight-saving changes (timetable.weekly_starts).
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logsafe import quoted
from ..models import ClassSession, Occasion, Room, ScheduleNotice, utcnow
from . import timetable
from .timetable import MAX_MINUTES, MAX_WEEKS, OccasionTimeline, Run, Slot

log = logging.getLogger(__name__)

DEFAULT_MINUTES = 60  # a schedule_start without schedule_minutes: an hour-long class
MAX_OCCASIONS_PER_ROOM = 400  # bounds every page's work; a year of twice-weekly classes is 104
MAX_REASON = 500


class ScheduleError(ValueError):
    """A change the timetable refuses; the message is a sentence for the teacher."""


# --- reading ------------------------------------------------------------------------------------
def early(room: Room) -> timedelta:
    return timedelta(minutes=room.early_join_minutes or 0)


def occasions_of(room: Room) -> list[Occasion]:
    return db.session.scalars(
        select(Occasion).where(Occasion.room_id == room.id).order_by(Occasion.starts_at, Occasion.id)
    ).all()


def slot_of(occasion: Occasion) -> Slot:
    return Slot(occasion.id, occasion.starts_at, occasion.ends_at, occasion.cancelled)


def run_of(session: ClassSession) -> Run:
    return Run(session.id, session.started_at, session.ended_at)


@dataclass
class RoomTimetable:
    """Everything the pages and the grades need of a room's timetable, read once."""

    occasions: dict[int, Occasion]  # by id
    sessions: dict[int, ClassSession]  # by id
    timelines: list[OccasionTimeline]
    now: datetime
    early: timedelta

    def occasion(self, timeline: OccasionTimeline) -> Occasion | None:
        return self.occasions.get(timeline.slot.key) if timeline.slot else None

    def sessions_of(self, timeline: OccasionTimeline) -> list[ClassSession]:
        return [self.sessions[run.key] for run in timeline.runs]

    def state(self, timeline: OccasionTimeline) -> str:
        return timeline.state(self.now, self.early)

    def upcoming(self) -> list[OccasionTimeline]:
        """Occasions still to come (or open for entry now), soonest first; cancelled ones too,
        so people see what will not happen and why."""
        return [t for t in self.timelines if t.slot and not t.ran and t.slot.ends_at > self.now]

    def next(self) -> OccasionTimeline | None:
        return next((t for t in self.upcoming() if not t.slot.cancelled), None)

    def live(self) -> OccasionTimeline | None:
        return next((t for t in self.timelines if t.running), None)

    def past(self) -> list[OccasionTimeline]:
        """Occasions that are over, newest first: ended, missed (scheduled, never ran), and
        cancelled ones whose time has passed."""
        over = [t for t in self.timelines if self.state(t) in (timetable.ENDED, timetable.MISSED)
                or (t.slot and t.slot.cancelled and t.slot.ends_at <= self.now)]
        return sorted(over, key=lambda t: t.starts_at, reverse=True)


def room_timetable(room: Room, now: datetime | None = None) -> RoomTimetable:
    now = now or utcnow()
    occasions = {o.id: o for o in occasions_of(room)}
    sessions = {
        s.id: s for s in db.session.scalars(
            select(ClassSession).where(ClassSession.room_id == room.id, ClassSession.started_at.is_not(None))
        )
    }
    timelines = timetable.match_runs(
        [slot_of(o) for o in occasions.values()], [run_of(s) for s in sessions.values()], now, early(room)
    )
    return RoomTimetable(occasions, sessions, timelines, now, early(room))


# Waiting students ask on every status poll whether a scheduled class is open for entry: each
# process keeps the room's nearby occasions for ENTRY_CACHE_SECONDS (the room's running state is
# up to ROOM_STATE_CHECK_SECONDS old the same way), and its own changes to a timetable clear them.
# Another process's change reaches this one within those seconds.
ENTRY_CACHE_SECONDS = 5.0
LOOKAHEAD = timedelta(minutes=1)  # longer than the cache lives: no opening is ever missed


def _nearby() -> dict[int, tuple[float, int, list[Slot]]]:
    """This app's copies: room id -> (expires, early minutes, slots)."""
    return current_app.extensions.setdefault("timetable_entry_windows", {})


def forget_entry_windows(room_id: int) -> None:
    _nearby().pop(room_id, None)


def _nearby_slots(room: Room, now: datetime, cached: bool) -> list[Slot]:
    entry = _nearby().get(room.id)
    if cached and entry and entry[0] > time.monotonic() and entry[1] == room.early_join_minutes:
        return entry[2]
    rows = db.session.scalars(
        select(Occasion).where(
            Occasion.room_id == room.id,
            Occasion.status == "scheduled",
            Occasion.starts_at <= now + early(room) + LOOKAHEAD,
            Occasion.starts_at > now - timedelta(minutes=MAX_MINUTES),
        )
    ).all()
    slots = [slot_of(o) for o in rows]
    if cached:
        _nearby()[room.id] = (time.monotonic() + ENTRY_CACHE_SECONDS, room.early_join_minutes, slots)
    return slots


def open_occasion(room: Room, now: datetime | None = None) -> Slot | None:
    """The scheduled occasion students may enter on their own right now (from the room's
    early-entry minutes before its start to its end), if any. Without `now`: the current time,
    from this process's short-lived copy of the room's nearby occasions."""
    cached = now is None
    now = now or utcnow()
    return timetable.open_slot(_nearby_slots(room, now, cached), now, early(room))


# --- notices ------------------------------------------------------------------------------------
def notify(room: Room, kind: str, dedupe_key: str, occasion: Occasion | None = None, **details) -> None:
    """Record that people are to be told (reminders/ e-mails it where mail is set up). The
    same `dedupe_key` twice is one notice: a retried request or a second worker adds nothing.
    Nothing is written while mail is not set up (SMTP_URL empty: docs/reminders.md)."""
    if not current_app.config.get("SMTP_URL"):
        return
    if db.session.scalar(select(ScheduleNotice.id).where(ScheduleNotice.dedupe_key == dedupe_key)):
        return
    try:
        with db.session.begin_nested():
            db.session.add(ScheduleNotice(
                room_id=room.id, occasion_id=occasion.id if occasion else None, kind=kind,
                dedupe_key=dedupe_key[:255], details={k: v for k, v in details.items() if v is not None},
            ))
    except IntegrityError:
        pass  # written by a concurrent request: told once is enough


def _notify_change(room: Room, kind: str, occasions: list[Occasion], reason: str = "", **details) -> None:
    if not occasions:
        return
    first = occasions[0]
    keys = ",".join(f"{o.uid}:{o.sequence}" for o in occasions[:3])
    notify(room, kind, f"{kind}:{room.id}:{len(occasions)}:{keys}", first,
           occasions=[o.id for o in occasions], reason=reason or None, **details)


# --- writing ------------------------------------------------------------------------------------
def new_uid() -> str:
    """An iCalendar UID: random, with the tool's host name as RFC 5545 suggests."""
    host = urlsplit(current_app.config["TOOL_BASE_URL"]).hostname or "lti-tool"
    return f"{secrets.token_hex(16)}@{host}"


def _check_room_has_space(room: Room, adding: int) -> None:
    count = db.session.query(Occasion).filter(Occasion.room_id == room.id).count()
    if count + adding > MAX_OCCASIONS_PER_ROOM:
        raise ScheduleError(
            f"A room holds at most {MAX_OCCASIONS_PER_ROOM} classes; this would make {count + adding}."
        )


def _add(room: Room, starts: list[datetime], minutes: int) -> list[Occasion]:
    series_id = secrets.token_hex(8) if len(starts) > 1 else None
    made = [Occasion(room_id=room.id, series_id=series_id, uid=new_uid(), starts_at=start, minutes=minutes,
                     status="scheduled", reason="", sequence=0) for start in starts]
    db.session.add_all(made)
    db.session.flush()
    return made


def schedule_first(room: Room) -> list[Occasion]:
    """A new room's first schedule, from the columns its link's custom parameters filled
    (rooms/setup.py); called in the first launch's transaction."""
    if room.schedule_start is None:
        return []
    weeks = max(1, min(room.schedule_weeks or 1, MAX_WEEKS))
    minutes = room.schedule_minutes or DEFAULT_MINUTES
    made = _add(room, timetable.weekly_starts(room.schedule_start, weeks), minutes)
    _notify_change(room, "scheduled", made)
    forget_entry_windows(room.id)
    log.info("room %s: %d class(es) scheduled from the link's custom parameters", room.id, len(made))
    return made


def check_minutes(minutes: int) -> int:
    if not 1 <= minutes <= MAX_MINUTES:
        raise ScheduleError(f"A class lasts from 1 to {MAX_MINUTES} minutes.")
    return minutes


def add_series(room: Room, first: datetime, minutes: int, weeks: int, zone_name: str | None = None) -> list[Occasion]:
    """The teacher adds a one-off class (`weeks` 1) or a weekly series."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise ScheduleError(f"A series has from 1 to {MAX_WEEKS} weekly classes.")
    check_minutes(minutes)
    _check_room_has_space(room, weeks)
    zone = timetable.zone_or_none(zone_name)
    if zone is not None:
        room.time_zone = zone_name
    made = _add(room, timetable.weekly_starts(first, weeks, zone), minutes)
    _notify_change(room, "scheduled", made)
    db.session.commit()
    forget_entry_windows(room.id)
    log.info("room %s: %d class(es) added from %s", room.id, len(made), first.isoformat())
    return made


def occasion_in(room: Room, occasion_id: int) -> Occasion:
    occasion = db.session.get(Occasion, occasion_id)
    if occasion is None or occasion.room_id != room.id:
        raise ScheduleError("This class is not in this room's timetable.")
    return occasion


def _clean_reason(reason: str | None) -> str:
    return " ".join((reason or "").split())[:MAX_REASON]


def move_occasion(room: Room, occasion_id: int, new_start: datetime, minutes: int, reason: str = "") -> Occasion:
    """Move one occasion (its UID stays, its sequence grows: calendars update it)."""
    occasion = occasion_in(room, occasion_id)
    if occasion.cancelled:
        raise ScheduleError("A cancelled class cannot be moved; add a new one instead.")
    check_minutes(minutes)
    previous = occasion.starts_at
    occasion.starts_at, occasion.minutes = new_start, minutes
    occasion.reason = _clean_reason(reason)
    occasion.sequence += 1
    _notify_change(room, "moved", [occasion], occasion.reason, previous_start=previous.isoformat())
    db.session.commit()
    forget_entry_windows(room.id)
    log.info("room %s: class %s moved from %s to %s", room.id, occasion.id, previous.isoformat(), new_start.isoformat())
    return occasion


def cancel_occasion(room: Room, occasion_id: int, reason: str = "", rest_of_series: bool = False) -> list[Occasion]:
    """Cancel one occasion, or it and every later one of its series."""
    occasion = occasion_in(room, occasion_id)
    if occasion.cancelled:
        raise ScheduleError("This class is already cancelled.")
    chosen = [occasion]
    if rest_of_series and occasion.series_id:
        chosen = db.session.scalars(
            select(Occasion).where(
                Occasion.room_id == room.id, Occasion.series_id == occasion.series_id,
                Occasion.starts_at >= occasion.starts_at, Occasion.status == "scheduled",
            ).order_by(Occasion.starts_at)
        ).all()
    for each in chosen:
        each.status, each.reason = "cancelled", _clean_reason(reason)
        each.sequence += 1
    _notify_change(room, "cancelled", chosen, _clean_reason(reason))
    db.session.commit()
    forget_entry_windows(room.id)
    log.info("room %s: %d class(es) cancelled from %s (reason %s)", room.id, len(chosen),
             occasion.starts_at.isoformat(), quoted(reason, 80))
    return chosen


def set_early_join(room: Room, minutes: int) -> None:
    if not 0 <= minutes <= 120:
        raise ScheduleError("Students may enter from 0 to 120 minutes before the start.")
    room.early_join_minutes = minutes
    db.session.commit()


def parse_local_start(text: str, zone_name: str | None, offset_minutes: str | None = None) -> datetime:
    """A start from the teacher's form: `datetime-local` text ("2027-03-01T09:00") read in the
    browser's IANA time zone, else in the browser's UTC offset (`getTimezoneOffset()`), else as
    text with its own offset ("2027-03-01T09:00+01:00"). ScheduleError when none makes sense."""
    from datetime import UTC, timezone

    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise ScheduleError("Give the date and time of the class.") from None
    if value.tzinfo is None:
        zone = timetable.zone_or_none(zone_name)
        if zone is not None:
            value = value.replace(tzinfo=zone)
        elif offset_minutes and offset_minutes.lstrip("-").isdigit() and abs(int(offset_minutes)) <= 16 * 60:
            value = value.replace(tzinfo=timezone(-timedelta(minutes=int(offset_minutes))))
        else:
            value = value.replace(tzinfo=UTC)
    if not 2000 <= value.year <= 2100:
        raise ScheduleError("Give a date between the years 2000 and 2100.")
    return value.astimezone(UTC)
