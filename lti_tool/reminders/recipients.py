"""Who is told about a room: the course's roster as the platform's Names and Role Provisioning
Service gave it (active members with an e-mail address), and the people who launched the room's
link, minus those who stopped the room's e-mails.

The roster is the point (students who never opened the tool are told too), so a course whose
roster was never fetched is fetched first (`courses_awaiting_roster`, the worker); a platform
that does not answer within ROSTER_WAIT_SECONDS of the notice leaves the launches alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from ..extensions import db
from ..lti.roles import MODERATOR, room_role
from ..models import Course, Enrolment, ReminderOptOut, ResourceLink, Room, RosterMember, ScheduleNotice, User

ROSTER_WAIT_SECONDS = 600
# One address, no display name, no spaces or list separators: what a To header can carry as is.
ADDRESS = re.compile(r"[^@\s<>()\[\]\\,;:\"]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class Recipient:
    issuer: str
    sub: str
    name: str
    address: str
    teacher: bool


def is_address(text: str) -> bool:
    return len(text) <= 254 and ADDRESS.fullmatch(text) is not None


def roster_never_fetched(course: Course) -> bool:
    if not course.memberships_url or course.roster_fetched_at is not None:
        return False
    return db.session.scalar(select(RosterMember.id).where(RosterMember.course_id == course.id).limit(1)) is None


def courses_awaiting_roster() -> list[Course]:
    """Courses of rooms with notices to expand whose roster the tool never fetched."""
    pending = (
        select(ResourceLink.course_id)
        .join(Room, Room.resource_link_id == ResourceLink.id)
        .join(ScheduleNotice, ScheduleNotice.room_id == Room.id)
        .where(ScheduleNotice.expanded_at.is_(None))
    )
    courses = db.session.scalars(select(Course).where(Course.id.in_(pending))).all()
    return [course for course in courses if roster_never_fetched(course)]


def opted_out(room: Room) -> set[tuple[str, str]]:
    rows = db.session.execute(
        select(ReminderOptOut.issuer, ReminderOptOut.sub).where(ReminderOptOut.room_id == room.id)
    ).all()
    return {(issuer, sub) for issuer, sub in rows}


def _from_launches(room: Room) -> dict[str, Recipient]:
    enrolments = db.session.scalars(
        select(Enrolment).where(Enrolment.resource_link_id == room.resource_link_id)
    ).all()
    return {
        e.user.sub: Recipient(e.user.issuer, e.user.sub, e.user.display_name, e.user.email.strip(),
                              e.role == MODERATOR)
        for e in enrolments
    }


def recipients(room: Room) -> list[Recipient]:
    """Everyone to tell about this room, one entry per address, opt-outs left out."""
    course = room.resource_link.course
    people = _from_launches(room)
    for member in db.session.scalars(select(RosterMember).where(RosterMember.course_id == course.id)):
        if member.status != "Active":
            people.pop(member.sub, None)  # left the course: not told, whatever they launched
            continue
        launched = people.get(member.sub)
        people[member.sub] = Recipient(
            course.issuer, member.sub, member.name or (launched.name if launched else ""),
            member.email.strip() or (launched.address if launched else ""),
            room_role(member.roles) == MODERATOR or bool(launched and launched.teacher),
        )
    stopped = opted_out(room)
    chosen: dict[str, Recipient] = {}
    for person in sorted(people.values(), key=lambda p: (not p.teacher, p.sub)):
        if (person.issuer, person.sub) in stopped or not is_address(person.address):
            continue
        chosen.setdefault(person.address.lower(), person)
    return list(chosen.values())


def address_of(room: Room, sub: str) -> str:
    """The address the room's e-mails go to for this person ("" when there is none): two
    indexed lookups, as every room page asks."""
    course = room.resource_link.course
    member = db.session.scalar(
        select(RosterMember).where(RosterMember.course_id == course.id, RosterMember.sub == sub)
    )
    if member is not None and is_address(member.email.strip()):
        return member.email.strip()
    user = db.session.scalar(select(User).where(User.issuer == course.issuer, User.sub == sub))
    return user.email.strip() if user is not None and is_address(user.email.strip()) else ""
