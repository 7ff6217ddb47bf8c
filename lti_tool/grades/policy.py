"""How attendance becomes a grade (documented in docs/attendance-and-grades.md).

Grades count *occasions* (schedule/: a scheduled class with the meeting runs matched to it, or
an unscheduled run on its own), not meetings. Each ended occasion counts the share of its
*counted time* the student was present: for a scheduled occasion, the runs' time within the
scheduled start and end (a class the teacher opened early or let overrun asks nothing extra; one
the teacher started late or ended early asks only what ran); for an unscheduled one, the runs as
they ran. The grade is the average share over the counted occasions, out of the room's points
(`rooms.score_maximum`: 100 unless deep linking chose others; platforms rescale a score to
their line item's maximum anyway, Moodle included). Cancelled occasions never count. Options
per room:
- `present_threshold_percent`: attending at least this share of an occasion counts as the whole
  occasion (0 = off: the share itself counts);
- `late_grace_minutes`: joining within this many minutes of the counted start counts from the
  start; later is *late* (and leaving more than this before the end is *left early*; both with
  at least a minute's tolerance);
- `absent_gets_zero`: a student who attended no occasion gets 0 (on) or no grade at all (off);
- `unheld_counts_as_attended`: a scheduled occasion whose time passed without the class running
  counts as attended by everyone (on) or not at all (off, the default);
- `participation_required`: an occasion counts only if the student also spoke or wrote in the
  chat at least once there (off by default). Where the provider reported no engagement for
  them (LiveKit, an analytics callback that never came) the rule does not apply: missing data
  never costs a grade.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

SCORE_MAXIMUM = 100.0


@dataclass(frozen=True)
class GradePolicy:
    present_threshold_percent: int = 0
    late_grace_minutes: int = 0
    absent_gets_zero: bool = True
    unheld_counts_as_attended: bool = False
    participation_required: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> GradePolicy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


def parse_policy(form) -> GradePolicy:
    """A policy from the teacher's form; ValueError with a sentence on bad input."""
    def whole(name: str, low: int, high: int) -> int:
        raw = (form.get(name) or "0").strip()
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValueError(f"{name.replace('_', ' ')} must be a whole number from {low} to {high}")
        return int(raw)

    return GradePolicy(
        present_threshold_percent=whole("present_threshold_percent", 0, 100),
        late_grace_minutes=whole("late_grace_minutes", 0, 240),
        absent_gets_zero=form.get("absent_gets_zero") in ("on", "true", "1"),
        unheld_counts_as_attended=form.get("unheld_counts_as_attended") in ("on", "true", "1"),
        participation_required=form.get("participation_required") in ("on", "true", "1"),
    )


@dataclass(frozen=True)
class SessionAttendance:
    seconds_present: float
    seconds_total: float
    share: float  # 0..1 after the policy


@dataclass(frozen=True)
class OccasionAttendance(SessionAttendance):
    """One person at one occasion: the share, and what the teacher's page says of it."""

    late: bool = False
    left_early: bool = False
    unheld: bool = False  # a scheduled occasion that did not run, counted as attended
    silent: bool = False  # present, but participation was required and they neither spoke nor wrote

    @property
    def status(self) -> str:
        """present, late, left early, late and left early, or absent; ", did not speak or
        write" when that is why the occasion did not count."""
        if self.unheld:
            return "not held"
        if self.seconds_present <= 0:
            return "absent"
        words = [word for word, true in (("late", self.late), ("left early", self.left_early)) if true]
        status = " and ".join(words) if words else "present"
        return status + ", did not speak or write" if self.silent else status


Window = tuple[datetime, datetime]
Interval = tuple[datetime, datetime | None]
TOLERANCE = timedelta(minutes=1)  # "late" and "left early" never for a few seconds


def merge_windows(windows: list[Window]) -> list[Window]:
    """Closed stretches of time, sorted, overlaps merged, empty ones dropped."""
    merged: list[list[datetime]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif end > start:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _merged(intervals: list[Interval], until: datetime) -> list[Window]:
    """A person's intervals with open ends closed at `until`, overlaps merged."""
    return merge_windows([(s, min(e or until, until)) for s, e in intervals])


def _overlap(windows: list[Window], intervals: list[Window]) -> float:
    return sum(
        max(0.0, (min(we, ie) - max(ws, is_)).total_seconds())
        for ws, we in windows for is_, ie in intervals
    )


def occasion_attendance(
    windows: list[Window], intervals: list[Interval], policy: GradePolicy, took_part: bool | None = None
) -> OccasionAttendance:
    """One person's attendance at one occasion whose counted time is `windows` (sorted, apart).
    `took_part`: whether they spoke or wrote there (None: the provider did not say)."""
    if not windows:
        return OccasionAttendance(0.0, 0.0, 0.0)
    start, end = windows[0][0], windows[-1][1]
    total = sum((e - s).total_seconds() for s, e in windows)
    merged = _merged(intervals, end)
    grace = timedelta(minutes=policy.late_grace_minutes)
    index = next((i for i, (s, e) in enumerate(merged) if e > start), None)
    first = merged[index][0] if index is not None else None
    if first is not None and policy.late_grace_minutes and first <= start + grace:
        merged[index] = (min(first, start), merged[index][1])  # a join within the grace counts from the start
    present = min(_overlap(windows, merged), total)
    share = present / total if total else 0.0
    if policy.present_threshold_percent and share * 100 >= policy.present_threshold_percent:
        share = 1.0
    silent = policy.participation_required and present > 0 and took_part is False
    if silent:
        share = 0.0
    tolerance = max(grace, TOLERANCE)
    last = max((e for s, e in merged if s < end), default=None)
    return OccasionAttendance(
        seconds_present=present, seconds_total=total, share=share, silent=silent,
        late=present > 0 and first is not None and first > start + tolerance,
        left_early=present > 0 and last is not None and last < end - tolerance,
    )


def session_attendance(
    started: datetime, ended: datetime, intervals: list[Interval], policy: GradePolicy
) -> OccasionAttendance:
    """One run counted as it ran (an unscheduled occasion of one run)."""
    return occasion_attendance([(started, ended)] if ended > started else [], intervals, policy)


def attended_by_all() -> OccasionAttendance:
    """A scheduled occasion that never ran, when the policy counts those as attended."""
    return OccasionAttendance(seconds_present=0.0, seconds_total=0.0, share=1.0, unheld=True)


def plain_number(value: float, places: int = 2) -> str:
    """A number as people write it, to `places` decimals without trailing zeros: 99.81, 59.9,
    60. The pages and the gradebook comment use it, so both say what is sent."""
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(sessions: list[SessionAttendance]) -> str:
    """The gradebook comment a person understands: 'Attended 59.9 of 60 minutes' (to a tenth
    of a minute: a whole-minute round would say 60 of 60 beside a grade of 99.8)."""
    present = plain_number(sum(s.seconds_present for s in sessions) / 60, 1)
    total = plain_number(sum(s.seconds_total for s in sessions) / 60, 1)
    unheld = sum(1 for s in sessions if getattr(s, "unheld", False))
    silent = sum(1 for s in sessions if getattr(s, "silent", False))
    also = f"; {unheld} not held, counted as attended" if unheld else ""
    also += f"; {silent} not counted: did not speak or write" if silent else ""
    if len(sessions) == 1 and not unheld:
        return f"Attended {present} of {total} minutes" + ("; not counted: did not speak or write" if silent else "")
    attended = sum(1 for s in sessions if s.seconds_present > 0)
    return f"Attended {present} of {total} minutes over {len(sessions)} classes ({attended} attended{also})"


def grade_text(score: float, maximum: float = SCORE_MAXIMUM) -> str:
    """A grade as pages show it: 99.83% out of 100, else "7.5 of 10 points"."""
    if maximum == SCORE_MAXIMUM:
        return f"{plain_number(score)}%"
    return f"{plain_number(score)} of {plain_number(maximum)} points"


def explain(policy: GradePolicy, score_maximum: float = SCORE_MAXIMUM, graded: bool = True) -> list[str]:
    """The policy in words, for the people it grades."""
    out_of = "as a percentage" if score_maximum == SCORE_MAXIMUM else f"out of {plain_number(score_maximum)} points"
    sentences = [
        "Each ended class counts the share of its length the student was present; the grade is the "
        f"average of those shares over all the ended classes of this activity, {out_of}.",
        "A scheduled class counts its scheduled time only (from the scheduled start, or from when "
        "the class really began if later, to the scheduled end, or to when it really ended if "
        "earlier); a class started outside the timetable counts as a class of its own.",
        "Cancelled classes never count." + (
            " Scheduled classes that did not take place count as attended by everyone."
            if policy.unheld_counts_as_attended else " Scheduled classes that did not take place do not count."),
    ]
    if policy.present_threshold_percent:
        threshold = policy.present_threshold_percent
        sentences.append(f"Attending at least {threshold}% of a class counts as the whole class.")
    if policy.late_grace_minutes:
        sentences.append(f"Joining within {policy.late_grace_minutes} minutes of the start counts from the start; "
                         "joining later is marked late.")
    if policy.participation_required:
        sentences.append("A class counts only if the student also spoke or wrote in the chat at least once; where "
                         "the video service does not report this, the rule does not apply.")
    sentences.append("Students who attended no class get 0." if policy.absent_gets_zero
                     else "Students who attended no class get no grade.")
    if not graded:
        sentences.append("Grading is off for this activity: no grade is sent to the gradebook.")
    return sentences
