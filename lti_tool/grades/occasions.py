"""Which occasions of a room count for grades, and the time each one counts (policy.py says the
rule in words): the bridge between the timetable (schedule/) and the grading rules.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import ClassSession, Occasion, Room
from ..schedule import timetable
from ..schedule.service import RoomTimetable, room_timetable
from ..schedule.timetable import OccasionTimeline
from .policy import GradePolicy, Window, merge_windows

# Less than this of a run inside the scheduled time (a test started just before the class and
# ended at once): the occasion counts its runs as they ran instead.
MEANINGFUL = timedelta(minutes=1)


@dataclass
class CountedOccasion:
    """One occasion as grading sees it."""

    timeline: OccasionTimeline
    occasion: Occasion | None  # None: an unscheduled class
    sessions: list[ClassSession]
    windows: list[Window]  # the counted time; empty: not held (counted as attended by policy)
    state: str  # timetable state: ended, missed, live, upcoming, open, cancelled

    @property
    def starts_at(self) -> datetime:
        return self.timeline.starts_at

    @property
    def counts(self) -> bool:
        return self.state in (timetable.ENDED, timetable.MISSED)


def counted_windows(timeline: OccasionTimeline, sessions: list[ClassSession]) -> list[Window]:
    """The time an ended occasion asks of a student: its runs within the scheduled start and
    end (unscheduled: the runs as they ran)."""
    runs = merge_windows([(s.started_at, s.ended_at) for s in sessions if s.started_at and s.ended_at])
    slot = timeline.slot
    if slot is None:
        return runs
    clipped = merge_windows([(max(a, slot.starts_at), min(b, slot.ends_at)) for a, b in runs])
    inside = sum(((e - s) for s, e in clipped), timedelta())
    return clipped if inside >= MEANINGFUL else runs


def all_occasions(room: Room, now: datetime | None = None, table: RoomTimetable | None = None) -> list[CountedOccasion]:
    """Every occasion of the room in time order, with its counted time where it has ended."""
    table = table or room_timetable(room, now)
    result = []
    for line in table.timelines:
        state = table.state(line)
        sessions = table.sessions_of(line)
        windows = counted_windows(line, sessions) if state == timetable.ENDED else []
        result.append(CountedOccasion(line, table.occasion(line), sessions, windows, state))
    return result


def graded_occasions(room: Room, policy: GradePolicy, now: datetime | None = None) -> list[CountedOccasion]:
    """The occasions grades count: every ended one, and the scheduled ones that did not take
    place when the policy counts those as attended. Cancelled ones never."""
    return [
        each for each in all_occasions(room, now)
        if each.state == timetable.ENDED or (each.state == timetable.MISSED and policy.unheld_counts_as_attended)
    ]
