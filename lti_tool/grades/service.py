"""Scores from attendance: who is graded in a room, what they get, and the outbox rows.

`queue_room_scores(room)` runs inside the transaction that changed the attendance (or the
roster, or the policy): it writes one pending `ScoreDelivery` per person whose score changed,
superseding their older pending one. Moderators are never graded.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select, update

from ..extensions import db
from ..lti.roles import ATTENDEE, room_role
from ..models import (
    AttendanceInterval,
    ClassSession,
    Engagement,
    Enrolment,
    Room,
    RosterMember,
    ScoreDelivery,
    User,
    utcnow,
)
from .delivery import retry_failed
from .occasions import CountedOccasion, graded_occasions
from .policy import GradePolicy, SessionAttendance, attended_by_all, describe, occasion_attendance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonGrade:
    user: User
    sessions: list[SessionAttendance]
    score: float | None  # None: no grade (absent, and the policy does not give absentees 0)
    comment: str


def graded_people(room: Room) -> list[User]:
    """Attendees of this resource link: those who launched it as attendee, and the course's
    roster members whose roles make them attendees. A few queries whatever the class's size."""
    link = room.resource_link
    people: dict[int, User] = {}
    enrolments = db.session.execute(
        select(Enrolment.role, User).join(User, User.id == Enrolment.user_id)
        .where(Enrolment.resource_link_id == link.id)
    ).all()
    moderators = set()
    for role, user in enrolments:
        if role == ATTENDEE:
            people[user.id] = user
        else:
            moderators.add(user.id)
    course = link.course
    members = db.session.scalars(
        select(RosterMember).where(RosterMember.course_id == course.id, RosterMember.status == "Active")
    ).all()
    subs = [member.sub for member in members if room_role(member.roles) == ATTENDEE]
    for user in _users_by_sub(course.issuer, subs):
        if user.id not in moderators:
            people.setdefault(user.id, user)
    return sorted(people.values(), key=lambda u: (u.family_name or u.display_name, u.given_name))


def _users_by_sub(issuer: str, subs: list[str], chunk: int = 500) -> list[User]:
    found = []
    for start in range(0, len(subs), chunk):  # bounded IN lists
        found += db.session.scalars(
            select(User).where(User.issuer == issuer, User.sub.in_(subs[start:start + chunk]))).all()
    return found


def intervals_by_user(sessions: list[ClassSession]) -> dict[tuple[int, str], list]:
    rows = db.session.scalars(
        select(AttendanceInterval).where(AttendanceInterval.session_id.in_([s.id for s in sessions]))
    ).all() if sessions else []
    grouped = defaultdict(list)
    for row in rows:
        grouped[(row.session_id, row.external_user_id)].append((row.joined_at, row.left_at))
    return grouped


def engagement_by_user(sessions: list[ClassSession]) -> dict[tuple[int, str], Engagement]:
    """(session id, external user id) -> what the provider reported that person did there."""
    rows = db.session.scalars(
        select(Engagement).where(Engagement.session_id.in_([s.id for s in sessions]))
    ).all() if sessions else []
    return {(row.session_id, row.external_user_id): row for row in rows}


def took_part(sessions: list[ClassSession], engagement: dict, external_id: str) -> bool | None:
    """Whether the person spoke or wrote in the chat in any of these runs: True when either was
    more than 0; False only when both talk time and chat were reported and both were 0; None
    otherwise (a measure not reported may hide what they did: the participation rule does not
    apply). LiveKit reports chat but never talk time, so a LiveKit class is never held against
    someone who wrote nothing: they may have spoken."""
    talk = chat = None
    for session in sessions:
        row = engagement.get((session.id, external_id))
        if row is None:
            continue
        if row.talk_seconds or row.chat_messages:
            return True
        talk = talk if row.talk_seconds is None else 0
        chat = chat if row.chat_messages is None else 0
    return False if talk == 0 and chat == 0 else None


def attendance_at(counted: CountedOccasion, intervals: dict, external_id: str, policy: GradePolicy,
                  engagement: dict | None = None):
    """One person at one counted occasion (`intervals` from `intervals_by_user`, `engagement`
    from `engagement_by_user`)."""
    if not counted.windows:
        return attended_by_all()
    theirs = [i for session in counted.sessions for i in intervals.get((session.id, external_id), [])]
    spoke = took_part(counted.sessions, engagement or {}, external_id)
    return occasion_attendance(counted.windows, theirs, policy, spoke)


def room_grades(room: Room) -> list[PersonGrade]:
    """Everyone graded here with their score: the average share over the counted occasions
    (grades/occasions.py), out of the room's points."""
    policy = GradePolicy.from_dict(room.grading)
    occasions = graded_occasions(room, policy)
    sessions = [s for o in occasions for s in o.sessions]
    intervals = intervals_by_user(sessions)
    engagement = engagement_by_user(sessions) if policy.participation_required else {}
    grades = []
    for user in graded_people(room):
        per_occasion = [attendance_at(o, intervals, user.public_id, policy, engagement) for o in occasions]
        attended = any(a.seconds_present > 0 for a in per_occasion)
        if not occasions or (not attended and not policy.absent_gets_zero):
            score = None
        else:
            score = round(room.score_maximum * sum(a.share for a in per_occasion) / len(per_occasion), 2)
        comment = describe(per_occasion) if occasions else ""
        grades.append(PersonGrade(user=user, sessions=per_occasion, score=score, comment=comment))
    return grades


def _latest_deliveries(link_id: int) -> dict[int, ScoreDelivery]:
    """Each person's latest delivery that is not superseded, for this resource link (one query)."""
    rows = db.session.scalars(
        select(ScoreDelivery)
        .where(ScoreDelivery.resource_link_id == link_id, ScoreDelivery.status != "superseded")
        .order_by(ScoreDelivery.id)
    ).all()
    return {row.user_id: row for row in rows}  # the later row wins


def _changed(grades: list[PersonGrade], latest: dict[int, ScoreDelivery], force: bool) -> list[PersonGrade]:
    changed = []
    for grade in grades:
        if grade.score is None:
            continue
        last = latest.get(grade.user.id)
        unchanged = last is not None and last.score_given == grade.score and last.comment == grade.comment
        if not unchanged or (force and last.status == "failed"):
            changed.append(grade)
    return changed


def queue_room_scores(room: Room, force: bool = False) -> int:
    """Write pending deliveries for every changed score (every score when `force`); none while
    the room's grading is off. A few statements whatever the class's size."""
    if not room.graded:
        return 0
    link = room.resource_link
    course = link.course
    changed = _changed(room_grades(room), _latest_deliveries(link.id), force)
    user_ids = [grade.user.id for grade in changed]
    for start in range(0, len(user_ids), 500):  # their older waiting rows: superseded
        db.session.execute(
            update(ScoreDelivery)
            .where(
                ScoreDelivery.resource_link_id == link.id,
                ScoreDelivery.user_id.in_(user_ids[start:start + 500]),
                ScoreDelivery.status.in_(("pending", "failed")),
            )
            .values(status="superseded")
        )
    now = utcnow()
    db.session.add_all(
        ScoreDelivery(
            resource_link_id=link.id, user_id=grade.user.id, issuer=course.issuer,
            client_id=course.client_id, sub=grade.user.sub, score_given=grade.score,
            score_maximum=room.score_maximum, activity_progress="Completed",
            grading_progress="FullyGraded", comment=grade.comment, status="pending",
            next_attempt_at=now,
        )
        for grade in changed
    )
    if changed:
        log.info("room %s: %d score(s) queued for delivery", room.id, len(changed))
    return len(changed)


def save_policy(room: Room, policy: GradePolicy, graded: bool | None = None) -> int:
    """The teacher's grading policy for the room (and whether grades go to the gradebook at
    all); the scores it changes are queued with it, in one transaction. Grading turned off
    drops the grades still waiting to be sent. Returns how many were queued."""
    room.grading = policy.to_dict()
    if graded is not None and graded != room.graded:
        room.graded = graded
        if not graded:
            cancel_waiting(room)
    queued = queue_room_scores(room)
    db.session.commit()
    return queued


def cancel_waiting(room: Room) -> int:
    """Grades of this room not delivered yet are not to be sent (grading turned off)."""
    result = db.session.execute(
        update(ScoreDelivery)
        .where(ScoreDelivery.resource_link_id == room.resource_link_id,
               ScoreDelivery.status.in_(("pending", "failed")))
        .values(status="superseded", locked_until=None)
    )
    log.info("room %s: grading off, %d waiting grade(s) dropped", room.id, result.rowcount)
    return result.rowcount


def send_now(room: Room) -> int:
    """The teacher's "send grades now": failed deliveries go back in the queue and changed
    scores are queued, in one transaction. Returns how many grades will be sent (none while
    grading is off)."""
    if not room.graded:
        return 0
    retried = retry_failed(room.resource_link_id)
    queued = queue_room_scores(room)
    db.session.commit()
    return retried + queued
