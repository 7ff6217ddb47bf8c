"""What the administration commands do to one registration (`flask --app wsgi platform
show|disable|enable|delete`): describe it with what uses it, turn it off and on, delete it.

A registration is named by its issuer and client id. Registrations from `TOOL_CONFIG` can be
shown but not changed here: the file is theirs. Launches refer to their platform by issuer and
client id (courses.issuer/client_id), so "what uses it" is counted, and deleted, by those.
Disabling keeps every row: launches are refused with a page that says the tool is turned off
for the platform, and enabling brings everything back as it was. Deleting a registration
whose courses have rooms is refused unless forced; forced, it deletes those courses and all
that hangs on them (rooms, class sessions, attendance, provider events, queued grades,
enrolments, rosters), the platform's cached access tokens and pending logins, in one
transaction. People (users) stay: they belong to the issuer, which other client ids may share.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import (
    AttendanceInterval,
    ClassSession,
    Course,
    Enrolment,
    LoginState,
    Platform,
    PlatformToken,
    ProviderEvent,
    ResourceLink,
    Room,
    RosterMember,
    ScoreDelivery,
)
from .registrations import PlatformRegistration, RegistrationStore


class AdminError(ValueError):
    """The command cannot do what was asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class Usage:
    courses: int
    rooms: int


@dataclass(frozen=True)
class Description:
    registration: PlatformRegistration  # as launches see it (file, or database)
    row: Platform | None  # the database row, when there is one
    active: bool
    shadowed: bool  # a database row hidden by the same registration in TOOL_CONFIG
    usage: Usage


@dataclass(frozen=True)
class Deleted:
    deployments: int
    courses: int
    rooms: int
    class_sessions: int


def _row(issuer: str, client_id: str) -> Platform | None:
    return db.session.scalar(select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id))


def usage(issuer: str, client_id: str) -> Usage:
    courses = select(Course.id).where(Course.issuer == issuer, Course.client_id == client_id)
    rooms = select(func.count(Room.id)).join(ResourceLink, Room.resource_link_id == ResourceLink.id).where(
        ResourceLink.course_id.in_(courses))
    return Usage(courses=db.session.scalar(select(func.count()).select_from(courses.subquery())),
                 rooms=db.session.scalar(rooms))


def describe(store: RegistrationStore, issuer: str, client_id: str) -> Description:
    file_registration = store.in_file(issuer, client_id)
    row = _row(issuer, client_id)
    if file_registration is None and row is None:
        raise AdminError(f"no registration for issuer {issuer} and client id {client_id} "
                         "(see `flask --app wsgi platform list`)")
    registration = file_registration or store.from_row(row)
    return Description(registration=registration, row=row,
                       active=file_registration is not None or row.active,
                       shadowed=file_registration is not None and row is not None,
                       usage=usage(issuer, client_id))


def _database_row(store: RegistrationStore, issuer: str, client_id: str) -> Platform:
    row = _row(issuer, client_id)
    if row is None and store.in_file(issuer, client_id):
        raise AdminError(f"{issuer} / {client_id} is registered in TOOL_CONFIG: change or remove it there")
    if row is None:
        raise AdminError(f"no registration for issuer {issuer} and client id {client_id} "
                         "(see `flask --app wsgi platform list`)")
    return row


def set_active(store: RegistrationStore, issuer: str, client_id: str, active: bool) -> tuple[Platform, bool]:
    """Turn a database registration on or off; returns (row, changed)."""
    row = _database_row(store, issuer, client_id)
    changed = row.active != active
    row.active = active
    db.session.commit()
    store.forget_cached()
    return row, changed


def _ids(query) -> list:
    return list(db.session.scalars(query))


def delete_registration(store: RegistrationStore, issuer: str, client_id: str, force: bool) -> Deleted:
    row = _database_row(store, issuer, client_id)
    used = usage(issuer, client_id)
    if used.rooms and not force:
        raise AdminError(f"{used.rooms} room(s) in {used.courses} course(s) use {issuer} / {client_id}: "
                         "`platform disable` keeps them and refuses launches; `platform delete --force` deletes "
                         "them with their class sessions, attendance and grades")
    try:
        deleted = _delete_everything(row, issuer, client_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    store.forget_cached()
    return deleted


def _delete_everything(row: Platform, issuer: str, client_id: str) -> Deleted:
    courses = _ids(select(Course.id).where(Course.issuer == issuer, Course.client_id == client_id))
    links = _ids(select(ResourceLink.id).where(ResourceLink.course_id.in_(courses)))
    rooms = db.session.execute(select(Room.id, Room.meeting_id).where(Room.resource_link_id.in_(links))).all()
    room_ids, meetings = [r.id for r in rooms], [r.meeting_id for r in rooms]
    sessions = _ids(select(ClassSession.id).where(ClassSession.room_id.in_(room_ids)))
    deployments = len(row.deployments)
    for statement in (
        delete(AttendanceInterval).where(AttendanceInterval.session_id.in_(sessions)),
        delete(ProviderEvent).where(ProviderEvent.meeting_id.in_(meetings)),
        delete(ClassSession).where(ClassSession.id.in_(sessions)),
        delete(ScoreDelivery).where(ScoreDelivery.resource_link_id.in_(links)),
        delete(Enrolment).where(Enrolment.resource_link_id.in_(links)),
        delete(Room).where(Room.id.in_(room_ids)),
        delete(ResourceLink).where(ResourceLink.id.in_(links)),
        delete(RosterMember).where(RosterMember.course_id.in_(courses)),
        delete(Course).where(Course.id.in_(courses)),
        delete(PlatformToken).where(PlatformToken.issuer == issuer, PlatformToken.client_id == client_id),
        delete(LoginState).where(LoginState.issuer == issuer, LoginState.client_id == client_id),
    ):
        db.session.execute(statement.execution_options(synchronize_session=False))
    db.session.delete(row)  # its deployments go with it (cascade)
    return Deleted(deployments=deployments, courses=len(courses), rooms=len(room_ids), class_sessions=len(sessions))
