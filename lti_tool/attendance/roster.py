"""The course roster from the platform's Names and Role Provisioning Service.

A student who never came must be graded absent, not forgotten: after a class session ends the
worker fetches the roster of its course, records every member (and a `User` for those who never
launched), and queues their scores in the same transaction.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import ClassSession, Course, ResourceLink, Room, RosterMember, User, utcnow

log = logging.getLogger(__name__)


def courses_needing_roster() -> list[Course]:
    """Courses with an ended session whose roster has not been fetched since a session ended
    (a session's end clears `roster_fetched_at`; no clock comparison, so server clocks that
    disagree cannot make the tool fetch forever or never)."""
    has_ended_session = (
        select(ClassSession.id)
        .join(Room, Room.id == ClassSession.room_id)
        .join(ResourceLink, ResourceLink.id == Room.resource_link_id)
        .where(ResourceLink.course_id == Course.id, ClassSession.ended_at.is_not(None))
        .exists()
    )
    return db.session.scalars(
        select(Course).where(Course.memberships_url.is_not(None), Course.roster_fetched_at.is_(None), has_ended_session)
    ).all()


def _upsert_member(course: Course, entry) -> None:
    member = db.session.scalar(
        select(RosterMember).where(RosterMember.course_id == course.id, RosterMember.sub == entry.sub)
    )
    if member is None:
        member = RosterMember(course_id=course.id, sub=entry.sub)
        db.session.add(member)
    member.name, member.email = entry.name or "", entry.email or ""
    member.roles, member.status = list(entry.roles), entry.status or "Active"
    user = db.session.scalar(select(User).where(User.issuer == course.issuer, User.sub == entry.sub))
    if user is None:
        db.session.add(
            User(
                issuer=course.issuer,
                sub=entry.sub,
                name=entry.name or "",
                given_name=entry.given_name or "",
                family_name=entry.family_name or "",
                email=entry.email or "",
            )
        )


def refresh_roster(course: Course) -> int:
    """Fetch and store the roster, then queue the course's rooms' scores. Raises
    PlatformServiceError when the platform cannot be reached (the worker tries again later)."""
    registration = current_app.extensions["registrations"].find(course.issuer, course.client_id)
    if registration is None:
        log.warning("course %s: platform no longer registered; roster skipped", course.id)
        course.roster_fetched_at = utcnow()
        db.session.commit()
        return 0
    entries = current_app.extensions["platform_services"].roster(registration, course.memberships_url)
    try:
        return _store_roster(course, entries)
    except IntegrityError:
        # Another worker stored the same roster at the same moment: its result stands.
        db.session.rollback()
        log.info("course %s: roster stored concurrently by another worker", course.id)
        return 0


def _store_roster(course: Course, entries) -> int:
    listed = {entry.sub for entry in entries}
    for entry in entries:
        _upsert_member(course, entry)
    for member in db.session.scalars(select(RosterMember).where(RosterMember.course_id == course.id)):
        if member.sub not in listed:
            member.status = "Deleted"
    course.roster_fetched_at = utcnow()
    db.session.flush()
    from ..grades.service import queue_room_scores

    rooms = db.session.scalars(select(Room).join(ResourceLink).where(ResourceLink.course_id == course.id)).all()
    for room in rooms:
        queue_room_scores(room)
    db.session.commit()
    log.info("course %s: roster of %d member(s) stored", course.id, len(entries))
    return len(entries)
