"""The timetable's rules, over plain values: no database, no Flask.

An *occasion* is one class as the timetable and the meeting runs tell it: a scheduled occasion
(with the runs that matched it, maybe none), or an unscheduled one (a run that matched no
scheduled occasion: the teacher may start a class at any time, and it counts on its own).

Matching: a run belongs to the scheduled occasion it overlaps (the occasion's window counted
from `early` minutes before its start to its end) whose start is nearest the run's start;
cancelled occasions match nothing. A run overlapping no occasion is an unscheduled occasion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_WEEKS = 52
MAX_MINUTES = 24 * 60

UPCOMING, OPEN, LIVE, ENDED, MISSED, CANCELLED = "upcoming", "open", "live", "ended", "missed", "cancelled"


def zone_or_none(name: str | None) -> ZoneInfo | None:
    """An IANA time zone by name ("Europe/Paris"), or None for an unknown or empty name."""
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def weekly_starts(first: datetime, weeks: int, zone: ZoneInfo | None = None) -> list[datetime]:
    """The starts of a weekly series, `first` (aware) then every 7 days. In a named zone the
    wall-clock time stays put across daylight-saving changes (09:00 stays 09:00); with only an
    offset (the custom parameter's form) the series keeps that offset."""
    local = first.astimezone(zone) if zone else first
    wall = local.replace(tzinfo=None)
    tz = zone or first.tzinfo
    return [(wall + timedelta(weeks=week)).replace(tzinfo=tz).astimezone(first.tzinfo) for week in range(weeks)]


@dataclass(frozen=True)
class Slot:
    """A scheduled occasion as the rules need it."""

    key: int  # the occasion's id
    starts_at: datetime
    ends_at: datetime
    cancelled: bool = False


@dataclass(frozen=True)
class Run:
    """One run of the room's meeting."""

    key: int  # the class session's id
    started_at: datetime
    ended_at: datetime | None  # None: still running


@dataclass
class OccasionTimeline:
    """One occasion: its slot (None: unscheduled) and the runs that belong to it."""

    slot: Slot | None
    runs: list[Run] = field(default_factory=list)

    @property
    def starts_at(self) -> datetime:
        return self.slot.starts_at if self.slot else self.runs[0].started_at

    @property
    def ran(self) -> bool:
        return bool(self.runs)

    @property
    def running(self) -> bool:
        return any(run.ended_at is None for run in self.runs)

    def state(self, now: datetime, early: timedelta) -> str:
        if self.slot and self.slot.cancelled:
            return CANCELLED
        if self.running:
            return LIVE
        if self.runs:
            return ENDED
        if now < self.slot.starts_at - early:
            return UPCOMING
        if now < self.slot.ends_at:
            return OPEN
        return MISSED


def match_runs(slots: list[Slot], runs: list[Run], now: datetime, early: timedelta) -> list[OccasionTimeline]:
    """Every occasion of a room, in time order: each scheduled slot with the runs matched to
    it, then each unmatched run as an unscheduled occasion of its own."""
    timelines = {slot.key: OccasionTimeline(slot) for slot in slots}
    unscheduled = []
    live_slots = [slot for slot in slots if not slot.cancelled]
    for run in sorted(runs, key=lambda r: r.started_at):
        run_end = run.ended_at or max(now, run.started_at)
        overlapping = [
            slot for slot in live_slots
            if run.started_at < slot.ends_at and run_end > slot.starts_at - early
        ]
        if overlapping:
            nearest = min(overlapping, key=lambda s: abs((run.started_at - s.starts_at).total_seconds()))
            timelines[nearest.key].runs.append(run)
        else:
            unscheduled.append(OccasionTimeline(None, [run]))
    return sorted([*timelines.values(), *unscheduled], key=lambda t: t.starts_at)


def entry_window(slot: Slot, early: timedelta) -> tuple[datetime, datetime]:
    """When students may enter a scheduled occasion on their own: from `early` before its
    start to its end."""
    return slot.starts_at - early, slot.ends_at


def open_slot(slots: list[Slot], now: datetime, early: timedelta) -> Slot | None:
    """The scheduled occasion whose entry window holds `now`, if any."""
    for slot in slots:
        start, end = entry_window(slot, early)
        if not slot.cancelled and start <= now < end:
            return slot
    return None


def starts_in(delta: timedelta) -> str:
    """"starts in 2 days", "3 hours", "12 minutes": the largest whole unit, as people say it.
    The pages say it again in the browser, kept current; this is the text without script."""
    seconds = delta.total_seconds()
    if seconds <= 60:
        return "starts in less than a minute" if seconds > 0 else "starting now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"starts in {count} {unit}{'s' if count != 1 else ''}"
    return "starting now"
