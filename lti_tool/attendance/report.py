"""What the attendance pages and the CSV export show: occasion by occasion (schedule/), who came,
when, how long, and whether they were present, late, left early or absent against the roster;
per person, the room's score and where its delivery to the gradebook stands."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from ..extensions import db
from ..grades.occasions import CountedOccasion, all_occasions
from ..grades.policy import GradePolicy, occasion_attendance
from ..grades.service import engagement_by_user, graded_people, intervals_by_user, room_grades, took_part
from ..models import Engagement, Enrolment, Room, ScoreDelivery, User
from ..schedule import timetable
from .events import ENGAGEMENT_MEASURES


@dataclass
class PersonGradeRow:
    user: User
    score: float | None
    comment: str
    delivery_status: str  # "", pending, delivered, failed, superseded
    delivery_error: str | None


def _names(room: Room) -> dict[str, tuple[str, str]]:
    """external id -> (name, role) for everyone known in this resource link."""
    rows = db.session.execute(
        select(User, Enrolment.role).join(Enrolment, Enrolment.user_id == User.id)
        .where(Enrolment.resource_link_id == room.resource_link_id)
    ).all()
    names = {user.public_id: (user.display_name, role) for user, role in rows}
    for user in graded_people(room):
        names.setdefault(user.public_id, (user.display_name, "attendee"))
    return names


@dataclass(frozen=True)
class EngagementSummary:
    """What one person did at one occasion, summed over its runs; a measure is None when the
    provider reported it for none of them (shown as "not available", never as 0)."""

    talk_seconds: int | None = None
    chat_messages: int | None = None
    raised_hands: int | None = None
    poll_votes: int | None = None
    reactions: int | None = None

    @classmethod
    def of(cls, rows: list[Engagement]) -> EngagementSummary | None:
        if not rows:
            return None
        sums = {}
        for name in ENGAGEMENT_MEASURES:
            values = [getattr(row, name) for row in rows if getattr(row, name) is not None]
            sums[name] = sum(values) if values else None
        return cls(**sums)

    def phrases(self) -> list[str]:
        """"spoke 3 min", "4 messages", "1 hand", … one per measure, "… not available" for those
        not reported; [] when nothing was."""
        if all(getattr(self, name) is None for name in ENGAGEMENT_MEASURES):
            return []
        return [_talk_phrase(self.talk_seconds), _count_phrase(self.chat_messages, "message", "messages"),
                _count_phrase(self.raised_hands, "hand", "hands"),
                _count_phrase(self.poll_votes, "poll answer", "poll answers"),
                _count_phrase(self.reactions, "reaction", "reactions")]


def _talk_phrase(seconds: int | None) -> str:
    if seconds is None:
        return "talk time not available"
    if seconds == 0:
        return "did not speak"
    return f"spoke {seconds} s" if seconds < 60 else f"spoke {round(seconds / 60)} min"


def _count_phrase(count: int | None, one: str, many: str) -> str:
    return f"{many} not available" if count is None else f"{count} {one if count == 1 else many}"


def participation_text(summary: EngagementSummary | None, came: bool, state: str) -> str:
    """The attendance page's participation cell: the phrases joined, "after the class" while
    it runs, "—" for someone who did not come, "not available" when the provider reported
    nothing."""
    phrases = summary.phrases() if summary is not None else []
    if phrases:
        return " · ".join(phrases)
    if state == timetable.LIVE:
        return "after the class"
    return "not available" if came else "—"


@dataclass
class PersonAtOccasion:
    """One person at one occasion, as the teacher's page shows them."""

    name: str
    external_id: str
    role: str  # moderator, attendee, unknown
    intervals: list[tuple[datetime, datetime | None]]
    minutes: float
    share_percent: float | None  # None: not graded there (running, not held, a teacher)
    status: str  # present, late, left early, late and left early, absent, here now, not here yet, not held
    participation: str = ""  # "spoke 3 min · 4 messages · …", "not available", "—"


@dataclass
class OccasionReport:
    counted: CountedOccasion
    people: list[PersonAtOccasion] = field(default_factory=list)

    @property
    def occasion(self):
        return self.counted.occasion

    @property
    def state(self) -> str:
        return self.counted.state

    @property
    def came(self) -> int:
        """Students who came (the teacher's "14 of 20 came")."""
        return sum(1 for p in self.people if p.role == "attendee" and p.intervals)

    @property
    def expected(self) -> int:
        return sum(1 for p in self.people if p.role == "attendee")


SHOWN_STATES = (timetable.ENDED, timetable.LIVE, timetable.MISSED, timetable.CANCELLED)


def _person_at(counted: CountedOccasion, intervals: list, policy: GradePolicy, graded: bool,
               spoke: bool | None = None) -> tuple:
    """(minutes, share percent, status) of one person at one occasion."""
    if counted.state == timetable.LIVE:
        now = datetime.now(UTC)
        minutes = sum(((end or now) - start).total_seconds() for start, end in intervals) / 60
        return round(minutes, 1), None, "here now" if any(end is None for _, end in intervals) else (
            "came" if intervals else "not here yet")
    if counted.state == timetable.MISSED:
        return 0.0, (100.0 if policy.unheld_counts_as_attended and graded else None), "not held"
    if counted.state != timetable.ENDED:
        return 0.0, None, ""
    result = occasion_attendance(counted.windows, intervals, policy, spoke)
    share = round(result.share * 100, 1) if graded else None
    return round(result.seconds_present / 60, 1), share, result.status


def occasion_reports(room: Room, only: User | None = None) -> list[OccasionReport]:
    """The room's occasions that have happened, are happening, or were cancelled or missed,
    newest first, with everyone graded here (the roster) and whoever else came; `only`: just
    that person's row."""
    policy = GradePolicy.from_dict(room.grading)
    names = _names(room)
    graded_ids = {user.public_id for user in graded_people(room)}
    wanted = {only.public_id} if only else None
    occasions = [o for o in all_occasions(room) if o.state in SHOWN_STATES and not (
        o.state == timetable.CANCELLED and o.starts_at > datetime.now(UTC))]
    intervals = intervals_by_user([s for o in occasions for s in o.sessions])
    engagement = engagement_by_user([s for o in occasions for s in o.sessions])
    reports = []
    for counted in reversed(occasions):
        session_ids = {s.id for s in counted.sessions}
        present = {ext for (sid, ext) in intervals if sid in session_ids}
        people_ids = (graded_ids | present) if wanted is None else wanted
        report = OccasionReport(counted)
        if counted.state == timetable.CANCELLED:
            reports.append(report)  # nobody is expected at a cancelled class
            continue
        for external_id in people_ids:
            theirs = sorted((i for s in counted.sessions for i in intervals.get((s.id, external_id), [])),
                            key=lambda interval: interval[0])
            name, role = names.get(external_id, (f"Unknown participant {external_id[:8]}", "unknown"))
            role = "attendee" if external_id in graded_ids else role
            spoke = took_part(counted.sessions, engagement, external_id) if policy.participation_required else None
            minutes, share, status = _person_at(counted, theirs, policy, role == "attendee", spoke)
            summary = EngagementSummary.of([engagement[(s.id, external_id)] for s in counted.sessions
                                            if (s.id, external_id) in engagement])
            report.people.append(PersonAtOccasion(name, external_id, role, theirs, minutes, share, status,
                                                  participation_text(summary, bool(theirs), counted.state)))
        report.people.sort(key=lambda p: (p.role != "moderator", p.name))
        reports.append(report)
    return reports


def grade_rows(room: Room) -> list[PersonGradeRow]:
    # The newest non-superseded delivery per person, in one query (a class can be 500 people).
    latest: dict[int, ScoreDelivery] = {}
    for delivery in db.session.scalars(
        select(ScoreDelivery)
        .where(ScoreDelivery.resource_link_id == room.resource_link_id, ScoreDelivery.status != "superseded")
        .order_by(ScoreDelivery.id)
    ):
        latest[delivery.user_id] = delivery
    rows = []
    for grade in room_grades(room):
        delivery = latest.get(grade.user.id)
        rows.append(
            PersonGradeRow(
                user=grade.user, score=grade.score, comment=grade.comment,
                delivery_status=delivery.status if delivery else "",
                delivery_error=delivery.last_error if delivery else None,
            )
        )
    return rows


@dataclass
class PersonReport:
    """A person's attendance in a room: every occasion, their grade, and its delivery."""

    user: User
    classes: list[tuple[OccasionReport, PersonAtOccasion]]  # oldest first
    grade: PersonGradeRow | None  # None: not graded here (a teacher)


def room_person(room: Room, public_id: str) -> User | None:
    """Someone graded in this room (launched it as a student, or on the course roster), by the
    id video servers know them by; None for anyone else."""
    return next((user for user in graded_people(room) if user.public_id == public_id), None) if public_id else None


def person_report(room: Room, user: User) -> PersonReport:
    classes = [(report, report.people[0]) for report in reversed(occasion_reports(room, user)) if report.people]
    grade = next((row for row in grade_rows(room) if row.user.id == user.id), None)
    return PersonReport(user=user, classes=classes, grade=grade)
