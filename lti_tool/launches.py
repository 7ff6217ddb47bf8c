"""What a validated resource-link launch records: the user, the course, the resource link, its
room (made on the first launch) and the user's enrolment with the role the launch gave them.

Everything happens in one transaction together with spending the login's state and nonce, so
a launch is either recorded whole or not at all. Two first launches of the same link at the
same moment (a class-start rush on PostgreSQL) are resolved by the unique keys: the loser
retries and finds the winner's rows.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .logsafe import quoted
from .lti.claims import LaunchClaims
from .lti.launch import ValidatedLaunch, consume_login
from .lti.roles import room_role
from .models import Course, Enrolment, ResourceLink, Room, User, utcnow
from .providers import PROVIDER_NAMES
from .providers.base import RoomSettings
from .rooms.service import new_meeting_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedLaunch:
    enrolment: Enrolment
    room: Room


def _get_or_create(model, keys: dict, defaults: dict):
    """Find a row by its unique keys or insert it; a concurrent insert is caught in a savepoint."""
    row = db.session.scalar(select(model).filter_by(**keys))
    if row is not None:
        return row, False
    try:
        with db.session.begin_nested():
            row = model(**keys, **defaults)
            db.session.add(row)
        return row, True
    except IntegrityError:
        return db.session.scalar(select(model).filter_by(**keys)), False


def _record_user(claims: LaunchClaims) -> User:
    raw = claims.raw
    profile = {
        "name": raw.get("name") or "",
        "given_name": raw.get("given_name") or "",
        "family_name": raw.get("family_name") or "",
        "email": raw.get("email") or "",
    }
    user, created = _get_or_create(User, {"issuer": claims.issuer, "sub": claims.sub}, profile)
    if not created:
        for name, value in profile.items():
            if value and getattr(user, name) != value:
                setattr(user, name, value)
    return user


def _record_course(claims: LaunchClaims, client_id: str) -> Course:
    context = claims.context
    # A launch without a context still gets a course of its own per resource link.
    context_id = str(context.get("id") or f"no-context:{claims.resource_link.get('id')}")
    course, _ = _get_or_create(
        Course,
        {"issuer": claims.issuer, "deployment_id": claims.deployment_id, "context_id": context_id},
        {"client_id": client_id},
    )
    course.label = context.get("label") or course.label or ""
    course.title = context.get("title") or course.title or ""
    course.memberships_url = claims.memberships_url or course.memberships_url
    return course


def _record_link(claims: LaunchClaims, course: Course) -> ResourceLink:
    link_claim = claims.resource_link
    link, _ = _get_or_create(
        ResourceLink, {"course_id": course.id, "resource_link_id": str(link_claim["id"])}, {}
    )
    link.title = link_claim.get("title") or link.title or ""
    link.lineitem_url = claims.ags.get("lineitem") or link.lineitem_url
    link.lineitems_url = claims.ags.get("lineitems") or link.lineitems_url
    return link


def choose_provider(claims: LaunchClaims) -> str:
    wanted = str(claims.custom.get("provider") or "").strip().lower()
    if wanted in PROVIDER_NAMES:
        return wanted
    if wanted:
        log.warning("ignoring unknown custom provider %s; using VIDEO_PROVIDER", quoted(wanted))
    return current_app.config["VIDEO_PROVIDER"]


def _record_room(claims: LaunchClaims, link: ResourceLink, course: Course) -> Room:
    title = link.title or course.title or "Live class"
    room, _ = _get_or_create(
        Room,
        {"resource_link_id": link.id},
        {
            "provider": choose_provider(claims),
            "meeting_id": new_meeting_id(),
            "name": title[:255],
            "settings": asdict(RoomSettings()),
            "return_url": claims.return_url or None,
        },
    )
    return room


def record_launch(validated: ValidatedLaunch) -> RecordedLaunch:
    claims = validated.claims
    try:
        consume_login(validated)
        user = _record_user(claims)
        course = _record_course(claims, validated.registration.client_id)
        db.session.flush()
        link = _record_link(claims, course)
        db.session.flush()
        room = _record_room(claims, link, course)
        enrolment, _ = _get_or_create(
            Enrolment, {"user_id": user.id, "resource_link_id": link.id}, {"role": "attendee"}
        )
        enrolment.role = room_role(claims.roles)
        enrolment.lti_roles = claims.roles
        enrolment.last_launch_at = utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info(
        "launch: iss=%s sub=%s link=%s role=%s room=%s",
        quoted(claims.issuer), quoted(claims.sub), quoted(link.resource_link_id), enrolment.role, room.id,
    )
    return RecordedLaunch(enrolment=enrolment, room=room)
