"""What the attendance pages and the CSV export show: per session, who came, when, how long;
per person, the room's score and where its delivery to the gradebook stands."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from ..extensions import db
from ..grades.policy import GradePolicy, session_attendance
from ..grades.service import graded_people, room_grades
from ..models import AttendanceInterval, ClassSession, Enrolment, Room, ScoreDelivery, User


@dataclass
class PersonInSession:
    name: str
    external_id: str
    role: str
    intervals: list[tuple[datetime, datetime | None]]
    minutes: float
    share_percent: float | None


@dataclass
class SessionReport:
    session: ClassSession
    people: list[PersonInSession] = field(default_factory=list)


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


def session_reports(room: Room, only_external_id: str | None = None) -> list[SessionReport]:
    policy = GradePolicy.from_dict(room.grading)
    names = _names(room)
    sessions = db.session.scalars(
        select(ClassSession).where(ClassSession.room_id == room.id).order_by(ClassSession.started_at.desc())
    ).all()
    reports = []
    for session in sessions:
        report = SessionReport(session=session)
        query = select(AttendanceInterval).where(AttendanceInterval.session_id == session.id)
        if only_external_id:
            query = query.where(AttendanceInterval.external_user_id == only_external_id)
        by_person: dict[str, list] = {}
        for row in db.session.scalars(query.order_by(AttendanceInterval.joined_at)):
            by_person.setdefault(row.external_user_id, []).append((row.joined_at, row.left_at))
        for external_id, intervals in by_person.items():
            name, role = names.get(external_id, (f"Unknown participant {external_id[:8]}", "unknown"))
            share = None
            minutes = sum(
                ((end or session.ended_at or datetime.now(start.tzinfo)) - start).total_seconds()
                for start, end in intervals
            ) / 60
            if session.ended_at and session.started_at:
                result = session_attendance(session.started_at, session.ended_at, intervals, policy)
                share, minutes = round(result.share * 100, 1), result.seconds_present / 60
            report.people.append(PersonInSession(name, external_id, role, intervals, round(minutes, 1), share))
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
class ClassAttendance:
    """One class of the room as one person attended it (intervals empty: absent)."""

    session: ClassSession
    intervals: list[tuple[datetime, datetime | None]]
    minutes: float
    share_percent: float | None


@dataclass
class PersonReport:
    """A person's attendance in a room: every class, their grade, and its delivery."""

    user: User
    classes: list[ClassAttendance]
    grade: PersonGradeRow | None  # None: not graded here (a teacher)


def room_person(room: Room, public_id: str) -> User | None:
    """Someone graded in this room (launched it as a student, or on the course roster), by the
    id video servers know them by; None for anyone else."""
    return next((user for user in graded_people(room) if user.public_id == public_id), None) if public_id else None


def person_report(room: Room, user: User) -> PersonReport:
    reports = {report.session.id: report for report in session_reports(room, user.public_id)}
    sessions = db.session.scalars(
        select(ClassSession).where(ClassSession.room_id == room.id).order_by(ClassSession.started_at)
    ).all()
    classes = []
    for session in sessions:
        attended = reports[session.id].people[0] if reports.get(session.id) and reports[session.id].people else None
        if attended is None:
            share = 0.0 if session.ended_at else None
            classes.append(ClassAttendance(session, [], 0.0, share))
        else:
            classes.append(ClassAttendance(session, attended.intervals, attended.minutes, attended.share_percent))
    grade = next((row for row in grade_rows(room) if row.user.id == user.id), None)
    return PersonReport(user=user, classes=classes, grade=grade)
