"""What a validated launch of a resource link (a resource link request, or a submission review)
records: the user, the course, the resource link (with the AGS scopes its launch granted), its
room (made on the first launch as the link's custom parameters say: rooms/setup.py) and the
user's enrolment with the role the launch gave them.

Everything happens in one transaction together with spending the login's state and nonce, so
a launch is either recorded whole or not at all. Two first launches of the same link at the
same moment (a class-start rush on PostgreSQL) are resolved by the unique keys: the loser
retries and finds the winner's rows. Identifiers were checked before (claims.py refuses what
cannot be stored as it is); display values are cleaned and cut to their columns here.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logsafe import quoted
from ..models import Course, Enrolment, ResourceLink, Room, User, utcnow
from ..providers import provider_names
from ..rooms.service import new_meeting_id
from ..rooms.setup import room_setup
from ..schedule.service import schedule_first
from .claims import LaunchClaims, clean_display, url_problem
from .errors import LaunchError
from .launch import ValidatedLaunch, consume_login
from .platform_settings import settings_for
from .registrations import adopt_deployment
from .roles import MODERATOR, room_role

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


def _fit(model, column: str, value: str) -> str:
    """A display value cut to its column (identifiers are never cut: claims.py refuses them)."""
    return value[: model.__table__.c[column].type.length]


def _record_user(claims: LaunchClaims) -> User:
    profile = {
        name: _fit(User, name, claims.display(name)) for name in ("name", "given_name", "family_name", "email")
    }
    user, created = _get_or_create(User, {"issuer": claims.issuer, "sub": claims.sub}, profile)
    if not created:
        for name, value in profile.items():
            if value and getattr(user, name) != value:
                setattr(user, name, value)
    return user


def _no_context_id(resource_link_id: str) -> str:
    """A launch without a context still gets a course of its own per resource link; a link id
    too long to fit after the prefix is named by its hash (a cut could make two links one)."""
    context_id = f"no-context:{resource_link_id}"
    if len(context_id) <= Course.__table__.c.context_id.type.length:
        return context_id
    return "no-context-sha256:" + hashlib.sha256(resource_link_id.encode()).hexdigest()


def _record_course(claims: LaunchClaims, client_id: str) -> Course:
    context = claims.context
    context_id = claims.context_id or _no_context_id(claims.resource_link_id)
    course, _ = _get_or_create(
        Course,
        {"issuer": claims.issuer, "deployment_id": claims.deployment_id, "context_id": context_id},
        {"client_id": client_id},
    )
    course.label = _fit(Course, "label", clean_display(context.get("label"))) or course.label or ""
    course.title = _fit(Course, "title", clean_display(context.get("title"))) or course.title or ""
    course.memberships_url = claims.memberships_url or course.memberships_url
    course.product_family = claims.product_family or course.product_family
    return course


def _record_link(claims: LaunchClaims, course: Course) -> ResourceLink:
    link, _ = _get_or_create(
        ResourceLink, {"course_id": course.id, "resource_link_id": claims.resource_link_id}, {}
    )
    title = _fit(ResourceLink, "title", clean_display(claims.resource_link.get("title")))
    link.title = title or link.title or ""
    link.lineitem_url = claims.ags.get("lineitem") or link.lineitem_url
    link.lineitems_url = claims.ags.get("lineitems") or link.lineitems_url
    if claims.ags_scopes is not None:
        link.ags_scopes = claims.ags_scopes
    return link


def platform_default_provider(issuer: str, client_id: str) -> str:
    """The provider of a platform's new rooms: its own VIDEO_PROVIDER, else the environment's
    (a link's `provider` custom parameter still wins: rooms/setup.py)."""
    platform_choice = settings_for(issuer, client_id).get("VIDEO_PROVIDER", "").strip().lower()
    return platform_choice if platform_choice in provider_names() else current_app.config["VIDEO_PROVIDER"]


def _record_room(claims: LaunchClaims, link: ResourceLink, course: Course) -> Room:
    """The link's room; on its first launch, made as the link's custom parameters say
    (rooms/setup.py: provider, first schedule, settings, grading)."""
    room = db.session.scalar(select(Room).where(Room.resource_link_id == link.id))
    if room is not None:
        return room
    title = link.title or course.title or "Live class"
    setup = room_setup(claims.custom, platform_default_provider(claims.issuer, course.client_id))
    room, created = _get_or_create(
        Room,
        {"resource_link_id": link.id},
        {"meeting_id": new_meeting_id(), "name": _fit(Room, "name", title), **setup.room_values()},
    )
    if created:  # only the launch that made the room gives it its first timetable
        db.session.flush()
        schedule_first(room)
    return room


def check_review(claims: LaunchClaims) -> None:
    """A submission review: teachers review anyone's attendance, others only their own."""
    if room_role(claims.roles) != MODERATOR and claims.for_user_id != claims.sub:
        raise LaunchError(
            f"submission review of {quoted(claims.for_user_id)} asked by non-teacher {quoted(claims.sub)}",
            "You can only review your own attendance.",
            403,
        )


def reviewed_person(claims: LaunchClaims) -> User | None:
    """The person a submission review is about, when the tool knows them (they launched the
    activity, or the course roster names them)."""
    return db.session.scalar(select(User).where(User.issuer == claims.issuer, User.sub == claims.for_user_id))


def own_return_url(claims: LaunchClaims) -> str | None:
    """The launch's return URL, for this person only, when it is a plain http(s) URL: anything
    else (`javascript:`, `data:`, relative, over-long) would run or break in the tool's origin."""
    url = claims.return_url
    return url if url and url_problem(url) is None else None


def record_launch(validated: ValidatedLaunch) -> RecordedLaunch:
    claims = validated.claims
    try:
        consume_login(validated)
        if validated.adopts_deployment:
            adopt_deployment(validated.registration, claims.deployment_id)
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
        enrolment.return_url = own_return_url(claims)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if validated.adopts_deployment:
        current_app.extensions["registrations"].forget_cached()  # its copy lacks the deployment
        log.info("launch: deployment %s adopted by %s / %s (its first launch)", quoted(claims.deployment_id),
                 quoted(claims.issuer), quoted(validated.registration.client_id))
    log.info(
        "launch: iss=%s sub=%s link=%s role=%s room=%s",
        quoted(claims.issuer), quoted(claims.sub), quoted(link.resource_link_id), enrolment.role, room.id,
    )
    return RecordedLaunch(enrolment=enrolment, room=room)
