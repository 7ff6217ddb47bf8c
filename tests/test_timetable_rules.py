"""The timetable's rules as plain functions (schedule/timetable.py) and the per-occasion grading
rules (grades/policy.py occasion_attendance): weekly repeats across daylight-saving changes,
runs matched to the nearest overlapping occasion, lateness and early leaving."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from lti_tool.grades.policy import GradePolicy, occasion_attendance
from lti_tool.schedule import timetable
from lti_tool.schedule.timetable import Run, Slot, match_runs, weekly_starts, zone_or_none

PARIS = zone_or_none("Europe/Paris")
T = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
EARLY = timedelta(minutes=10)


def test_a_weekly_series_keeps_its_wall_clock_time_across_daylight_saving():
    first = datetime(2027, 3, 22, 9, 0, tzinfo=PARIS)  # Paris moves to summer time on 28 March
    starts = weekly_starts(first.astimezone(UTC), 3, PARIS)
    assert [s.astimezone(PARIS).hour for s in starts] == [9, 9, 9]
    assert [s.astimezone(UTC).hour for s in starts] == [8, 7, 7]


def test_a_series_given_with_only_an_offset_keeps_the_offset():
    first = datetime(2027, 3, 22, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    assert [s.utcoffset() for s in weekly_starts(first, 2)] == [timedelta(hours=1)] * 2
    assert weekly_starts(first, 2)[1] - weekly_starts(first, 2)[0] == timedelta(weeks=1)


def test_unknown_time_zones_are_none():
    assert zone_or_none("Mars/Olympus") is None and zone_or_none("") is None and zone_or_none("../etc") is None


def _slot(key, start, minutes=60, cancelled=False):
    return Slot(key, start, start + timedelta(minutes=minutes), cancelled)


def test_a_run_belongs_to_the_nearest_overlapping_occasion():
    slots = [_slot(1, T), _slot(2, T + timedelta(minutes=70))]
    run = Run(10, T + timedelta(minutes=50), T + timedelta(minutes=120))  # overlaps both, nearer the second
    lines = match_runs(slots, [run], T + timedelta(days=1), EARLY)
    assert {line.slot.key: [r.key for r in line.runs] for line in lines} == {1: [], 2: [10]}


def test_a_run_started_in_the_early_window_belongs_to_the_occasion():
    lines = match_runs([_slot(1, T)], [Run(10, T - timedelta(minutes=8), T + timedelta(minutes=60))], T, EARLY)
    assert len(lines) == 1 and lines[0].runs[0].key == 10


def test_a_run_outside_every_occasion_or_in_a_cancelled_one_is_unscheduled():
    slots = [_slot(1, T), _slot(2, T + timedelta(days=7), cancelled=True)]
    runs = [Run(10, T + timedelta(hours=5), T + timedelta(hours=6)), Run(11, T + timedelta(days=7), None)]
    lines = match_runs(slots, runs, T + timedelta(days=7, minutes=5), EARLY)
    unscheduled = [line for line in lines if line.slot is None]
    assert [line.runs[0].key for line in unscheduled] == [10, 11]
    states = {line.slot.key if line.slot else line.runs[0].key: line.state(T + timedelta(days=7, minutes=5), EARLY)
              for line in lines}
    assert states == {1: timetable.MISSED, 2: timetable.CANCELLED, 10: timetable.ENDED, 11: timetable.LIVE}


def test_occasion_states_before_during_and_after():
    line = match_runs([_slot(1, T)], [], T, EARLY)[0]
    assert line.state(T - timedelta(minutes=11), EARLY) == timetable.UPCOMING
    assert line.state(T - timedelta(minutes=9), EARLY) == timetable.OPEN
    assert line.state(T + timedelta(minutes=61), EARLY) == timetable.MISSED


def test_starts_in_says_the_largest_whole_unit():
    assert timetable.starts_in(timedelta(days=2, hours=5)) == "starts in 2 days"
    assert timetable.starts_in(timedelta(hours=3, minutes=59)) == "starts in 3 hours"
    assert timetable.starts_in(timedelta(minutes=12, seconds=30)) == "starts in 12 minutes"
    assert timetable.starts_in(timedelta(seconds=30)) == "starts in less than a minute"


def _minutes(a, b):
    return (T + timedelta(minutes=a), T + timedelta(minutes=b))


def test_lateness_and_early_leaving_against_the_counted_start_and_end():
    window = [_minutes(0, 60)]
    policy = GradePolicy(late_grace_minutes=5)
    within_grace = occasion_attendance(window, [_minutes(4, 60)], policy)
    assert within_grace.share == 1.0 and within_grace.status == "present"
    late = occasion_attendance(window, [_minutes(12, 60)], policy)
    assert late.status == "late" and round(late.share, 4) == round(48 / 60, 4)
    left = occasion_attendance(window, [_minutes(0, 30)], policy)
    assert left.status == "left early" and left.share == 0.5
    both = occasion_attendance(window, [_minutes(20, 40)], GradePolicy())
    assert both.status == "late and left early"
    assert occasion_attendance(window, [], policy).status == "absent"


def test_overlapping_intervals_are_not_counted_twice_and_time_outside_the_window_not_at_all():
    result = occasion_attendance([_minutes(0, 60)], [_minutes(-10, 30), _minutes(20, 45), _minutes(70, 90)],
                                 GradePolicy())
    assert result.seconds_present == 45 * 60 and result.status == "left early"


def test_a_threshold_makes_enough_presence_count_whole():
    result = occasion_attendance([_minutes(0, 60)], [_minutes(0, 50)], GradePolicy(present_threshold_percent=80))
    assert result.share == 1.0
