"""What a validated launch of a resource link (a resource link request, or a submission review)
records: the user, the course, the resource link (with the AGS scopes its launch granted), its
room (made on the first launch as the link's custom parameters say: rooms/setup.py) and the
user's enrolment with the role the launch gave them.

Everything happens in one transaction together with spending the login's state and nonce, so
a launch is either recorded whole or not at all. A repeat launch reads its five rows in one
SELECT and writes only what changed (its enrolment's last launch, at least). Two first launches
of the same link at the same moment (a class-start rush on PostgreSQL) are resolved by the
unique keys: each missing row is an `INSERT … ON CONFLICT DO NOTHING`, and the loser reads the
winner's row. Identifiers were checked before (claims.py refuses what
cannot be stored as it is); display values are cleaned and cut to their columns here.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache

from flask import current_app
from sqlalchemy import Select, Update, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value

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


def _insert_or_get(model, keys: dict, values: dict):
    """The row with these unique keys: inserted now (True) or found (False), without a
    savepoint. `INSERT … ON CONFLICT DO NOTHING RETURNING` settles a concurrent first launch in
    the statement itself: the loser inserts nothing and reads the winner's row (committed by
    then: PostgreSQL waits for it), where a failed INSERT would have needed a savepoint."""
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    statement = insert(model).values(**keys, **values).on_conflict_do_nothing(index_elements=list(keys))
    row = db.session.scalars(statement.returning(model)).first()
    if row is not None:
        return row, True
    return db.session.scalars(select(model).filter_by(**keys)).one(), False


def _update(row, values: dict) -> None:
    """Set what changed (an unchanged value writes nothing: the ORM compares)."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def _fit(model, column: str, value: str) -> str:
    """A display value cut to its column (identifiers are never cut: claims.py refuses them)."""
    return value[: model.__table__.c[column].type.length]


@dataclass
class _Known:
    """What one SELECT found of a launch's rows (None: not there yet)."""

    course: Course | None = None
    link: ResourceLink | None = None
    room: Room | None = None
    user: User | None = None
    enrolment: Enrolment | None = None


@cache
def _known_rows_statement() -> Select:
    """Built once per process, with bound parameters: building it and its cache key at every
    launch cost more worker CPU than running it (py-spy)."""
    link_on = and_(ResourceLink.course_id == Course.id, ResourceLink.resource_link_id == bindparam("link"))
    return (
        select(Course, ResourceLink, Room, User, Enrolment)
        .select_from(Course)
        .outerjoin(ResourceLink, link_on)
        .outerjoin(Room, Room.resource_link_id == ResourceLink.id)
        .outerjoin(User, and_(User.issuer == bindparam("issuer"), User.sub == bindparam("sub")))
        .outerjoin(Enrolment, and_(Enrolment.user_id == User.id, Enrolment.resource_link_id == ResourceLink.id))
        .where(Course.issuer == bindparam("issuer"), Course.deployment_id == bindparam("deployment"),
               Course.context_id == bindparam("context"))
    )


def _known_rows(claims: LaunchClaims, context_id: str) -> _Known:
    """The course, link, room, user and enrolment of a launch in one statement; a repeat
    launch finds them all. Without the course, nothing else of it can exist but the user."""
    row = db.session.execute(_known_rows_statement(), {
        "link": claims.resource_link_id, "issuer": claims.issuer, "sub": claims.sub,
        "deployment": claims.deployment_id, "context": context_id,
    }).first()
    return _Known(*row) if row is not None else _Known()


def _record_user(claims: LaunchClaims, user: User | None) -> User:
    profile = {
        name: _fit(User, name, claims.display(name)) for name in ("name", "given_name", "family_name", "email")
    }
    if user is None:
        user, created = _insert_or_get(User, {"issuer": claims.issuer, "sub": claims.sub}, profile)
        if created:
            return user
    _update(user, {name: value for name, value in profile.items() if value})
    return user


def _no_context_id(resource_link_id: str) -> str:
    """A launch without a context still gets a course of its own per resource link; a link id
    too long to fit after the prefix is named by its hash (a cut could make two links one)."""
    context_id = f"no-context:{resource_link_id}"
    if len(context_id) <= Course.__table__.c.context_id.type.length:
        return context_id
    return "no-context-sha256:" + hashlib.sha256(resource_link_id.encode()).hexdigest()


def _course_values(claims: LaunchClaims, course: Course | None) -> dict:
    """What the launch says of its course; what it leaves out keeps its stored value."""
    context = claims.context
    return {
        "label": _fit(Course, "label", clean_display(context.get("label"))) or (course and course.label) or "",
        "title": _fit(Course, "title", clean_display(context.get("title"))) or (course and course.title) or "",
        "memberships_url": claims.memberships_url or (course and course.memberships_url),
        "product_family": claims.product_family or (course and course.product_family),
    }


def _record_course(claims: LaunchClaims, client_id: str, context_id: str, course: Course | None) -> Course:
    if course is None:
        keys = {"issuer": claims.issuer, "deployment_id": claims.deployment_id, "context_id": context_id}
        course, created = _insert_or_get(Course, keys, {"client_id": client_id, **_course_values(claims, None)})
        if created:
            return course
    _update(course, _course_values(claims, course))
    return course


def _link_values(claims: LaunchClaims, link: ResourceLink | None) -> dict:
    title = _fit(ResourceLink, "title", clean_display(claims.resource_link.get("title")))
    values = {
        "title": title or (link and link.title) or "",
        "lineitem_url": claims.ags.get("lineitem") or (link and link.lineitem_url),
        "lineitems_url": claims.ags.get("lineitems") or (link and link.lineitems_url),
    }
    if claims.ags_scopes is not None:
        values["ags_scopes"] = claims.ags_scopes
    return values


def _record_link(claims: LaunchClaims, course: Course, link: ResourceLink | None) -> ResourceLink:
    if link is None:
        keys = {"course_id": course.id, "resource_link_id": claims.resource_link_id}
        link, created = _insert_or_get(ResourceLink, keys, _link_values(claims, None))
        if created:
            return link
    _update(link, _link_values(claims, link))
    return link


def platform_default_provider(issuer: str, client_id: str) -> str:
    """The provider of a platform's new rooms: its own VIDEO_PROVIDER, else the environment's
    (a link's `provider` custom parameter still wins: rooms/setup.py)."""
    platform_choice = settings_for(issuer, client_id).get("VIDEO_PROVIDER", "").strip().lower()
    return platform_choice if platform_choice in provider_names() else current_app.config["VIDEO_PROVIDER"]


def _record_room(claims: LaunchClaims, link: ResourceLink, course: Course, room: Room | None) -> Room:
    """The link's room; on its first launch, made as the link's custom parameters say
    (rooms/setup.py: provider, first schedule, settings, grading)."""
    if room is not None:
        return room
    title = link.title or course.title or "Live class"
    setup = room_setup(claims.custom, platform_default_provider(claims.issuer, course.client_id))
    room, created = _insert_or_get(
        Room,
        {"resource_link_id": link.id},
        {"meeting_id": new_meeting_id(), "name": _fit(Room, "name", title), **setup.room_values()},
    )
    if created:  # only the launch that made the room gives it its first timetable
        schedule_first(room)
    return room


def _record_enrolment(claims: LaunchClaims, user: User, link: ResourceLink, enrolment: Enrolment | None):
    values = {"role": room_role(claims.roles), "lti_roles": claims.roles, "last_launch_at": utcnow(),
              "return_url": own_return_url(claims)}
    if enrolment is None:
        enrolment, created = _insert_or_get(Enrolment, {"user_id": user.id, "resource_link_id": link.id}, values)
        if created:
            return enrolment
    changed = {name: value for name, value in values.items() if getattr(enrolment, name) != value}
    if changed.keys() == {"last_launch_at"}:  # a returning person's usual launch: only its time
        _touch_enrolment(enrolment, changed["last_launch_at"])
    else:
        _update(enrolment, changed)
    return enrolment


@cache
def _touch_statement() -> Update:
    enrolments = Enrolment.__table__
    return update(enrolments).where(enrolments.c.id == bindparam("row_id")).values(last_launch_at=bindparam("at"))


def _touch_enrolment(enrolment: Enrolment, at) -> None:
    """The same UPDATE the unit of work would send at commit, sent now by a statement built once
    per process: the flush of one changed attribute cost more worker CPU than the round trip
    (py-spy). The loaded row is told the stored value, so the session has nothing left to write."""
    db.session.execute(_touch_statement(), {"row_id": enrolment.id, "at": at})
    set_committed_value(enrolment, "last_launch_at", at)


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
        context_id = claims.context_id or _no_context_id(claims.resource_link_id)
        known = _known_rows(claims, context_id)
        user = _record_user(claims, known.user)
        course = _record_course(claims, validated.registration.client_id, context_id, known.course)
        link = _record_link(claims, course, known.link)
        room = _record_room(claims, link, course, known.room)
        enrolment = _record_enrolment(claims, user, link, known.enrolment)
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
