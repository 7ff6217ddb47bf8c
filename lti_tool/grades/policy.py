"""How attendance becomes a grade (documented in docs/attendance-and-grades.md).

Default: each ended class session counts the share of its duration the student was present;
the grade is the average share over the room's ended sessions, out of the room's points
(`rooms.score_maximum`: 100 unless deep linking chose others; platforms rescale a score to
their line item's maximum anyway, Moodle included). Options per room:
- `present_threshold_percent`: attending at least this share of a session counts as the whole
  session (0 = off: the share itself counts);
- `late_grace_minutes`: joining within this many minutes of the start counts from the start;
- `absent_gets_zero`: a student who attended no session gets 0 (on) or no grade at all (off).
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
    )


@dataclass(frozen=True)
class SessionAttendance:
    seconds_present: float
    seconds_total: float
    share: float  # 0..1 after the policy


def session_attendance(
    started: datetime, ended: datetime, intervals: list[tuple[datetime, datetime | None]], policy: GradePolicy
) -> SessionAttendance:
    total = max(0.0, (ended - started).total_seconds())
    grace_end = started + timedelta(minutes=policy.late_grace_minutes)
    present = 0.0
    for index, (start, end) in enumerate(sorted(intervals)):
        end = min(end or ended, ended)
        if index == 0 and policy.late_grace_minutes and start <= grace_end:
            start = started  # a late join within the grace counts from the start
        present += max(0.0, (end - max(start, started)).total_seconds())
    present = min(present, total)
    share = present / total if total else 0.0
    if policy.present_threshold_percent and share * 100 >= policy.present_threshold_percent:
        share = 1.0
    return SessionAttendance(seconds_present=present, seconds_total=total, share=share)


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
    if len(sessions) == 1:
        return f"Attended {present} of {total} minutes"
    attended = sum(1 for s in sessions if s.seconds_present > 0)
    return f"Attended {present} of {total} minutes over {len(sessions)} classes ({attended} attended)"


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
        f"average of those shares over all the ended classes of this activity, {out_of}."
    ]
    if policy.present_threshold_percent:
        threshold = policy.present_threshold_percent
        sentences.append(f"Attending at least {threshold}% of a class counts as the whole class.")
    if policy.late_grace_minutes:
        sentences.append(f"Joining within {policy.late_grace_minutes} minutes of the start counts from the start.")
    sentences.append("Students who attended no class get 0." if policy.absent_gets_zero
                     else "Students who attended no class get no grade.")
    if not graded:
        sentences.append("Grading is off for this activity: no grade is sent to the gradebook.")
    return sentences
