"""The rules of a live classroom: who may join when, starting and ending, and the room's state.

Views call these functions after they have authorised the person; the functions talk to the
video provider through `providers.provider_for` and keep the room's state in the database, so
that a crowd of waiting students costs the video server at most one status call per room every
`ROOM_STATE_CHECK_SECONDS`, whatever the number of workers.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, fields
from datetime import datetime, timedelta

from flask import current_app, url_for
from sqlalchemy import or_, select, update

from ..extensions import db
from ..logsafe import quoted
from ..lti.platform_settings import settings_for
from ..lti.roles import MODERATOR
from ..models import Enrolment, Occasion, Room, User, fits, utcnow
from ..providers import is_ready, provider_for
from ..providers.base import ALL_SETTINGS, Attendee, JoinRole, MeetingSpec, ProviderError, RoomSettings, VideoProvider
from ..schedule.service import notify, open_occasion
from . import settings_form, shown
from .settings_form import SettingsRefused  # noqa: F401  (for the views)

log = logging.getLogger(__name__)
ROOM_REGISTRATIONS_KEPT = 10_000


class NotOpenYet(Exception):
    """An attendee tried to join before a moderator started the class."""


class ClassEnded(Exception):
    """A page offered to join a class that has ended since (a stale Join): nobody is let in and
    no new meeting is made; the page shows the end (docs/room-states.md)."""


# --- settings ---------------------------------------------------------------------------------
SETTING_NAMES = tuple(f.name for f in fields(RoomSettings))


def room_settings(room: Room) -> RoomSettings:
    stored = {k: v for k, v in (room.settings or {}).items() if k in SETTING_NAMES}
    return RoomSettings(**stored)


def supported_settings(room: Room) -> frozenset[str]:
    """The settings the room's video service honours (all, for a provider this site lacks)."""
    try:
        return provider_of(room).supported_settings()
    except ProviderError:
        return ALL_SETTINGS


def setting_groups(room: Room) -> list[settings_form.Group]:
    """The settings form's groups for this room: only what its video service honours."""
    return settings_form.groups_for(supported_settings(room))


def update_settings(room: Room, form) -> RoomSettings:
    """Apply a settings form (rooms/settings_form.py): `SettingsRefused` (a ValueError) when it
    contradicts itself, and then nothing is stored."""
    chosen = settings_form.read_form(form, room_settings(room), supported_settings(room))
    room.settings = asdict(chosen)
    db.session.commit()
    return chosen


# --- rooms ------------------------------------------------------------------------------------
def platform_settings_of(room: Room) -> dict[str, str]:
    """The video settings the room's platform registration sets over the environment's."""
    return settings_for(*_registration_of(room))


def _registration_of(room: Room) -> tuple[str, str]:
    """(issuer, client_id) of the room's course. A room never moves to another course, so each
    process keeps it: a crowd of polls and joins does not read the resource link and the course
    every time. Keyed by the meeting id, random and never reused (a room id can be, in SQLite)."""
    known = current_app.extensions.setdefault("room_registrations", {})
    found = known.get(room.meeting_id)
    if found is None:
        course = room.resource_link.course
        if len(known) >= ROOM_REGISTRATIONS_KEPT:
            known.clear()  # bounded: re-read once, never grown without end
        found = known[room.meeting_id] = (course.issuer, course.client_id)
    return found


def provider_of(room: Room) -> VideoProvider:
    """The room's video provider, with its platform's own settings where it has any."""
    return provider_for(room.provider, platform_settings_of(room))


def provider_ready(room: Room) -> bool:
    """Is the room's video service configured (for its platform)?"""
    return is_ready(room.provider, platform_settings_of(room))


def room_of_meeting(meeting_id: str) -> Room | None:
    """The room whose meeting this is; None for a meeting the tool does not know (and for an id
    no room could have: PostgreSQL cannot even look up one holding NUL)."""
    if not isinstance(meeting_id, str) or not fits(meeting_id, Room.meeting_id):
        return None
    return db.session.scalar(select(Room).where(Room.meeting_id == meeting_id))


def new_meeting_id() -> str:
    # Random and stored: nobody can derive it from course or link ids.
    return secrets.token_hex(16)


def meeting_spec(room: Room) -> MeetingSpec:
    base = current_app.config["TOOL_BASE_URL"]
    return MeetingSpec(
        meeting_id=room.meeting_id,
        name=room.name,
        settings=room_settings(room),
        # One URL for the whole meeting, so never a person's own return URL (in Moodle it holds
        # their session key): the tool's page sends each person back to their own LMS page.
        logout_url=base + url_for("rooms.left", room_id=room.id),
    )


def _attendee(user: User, role: str) -> Attendee:
    return Attendee(
        user_id=user.public_id,
        full_name=user.display_name,
        role=JoinRole.MODERATOR if role == MODERATOR else JoinRole.ATTENDEE,
    )


# --- state ------------------------------------------------------------------------------------
def _claim_state_check(room: Room, now: datetime) -> bool:
    """Atomically take the right to ask the provider; false if someone asked recently.

    The already-loaded `checked_at` answers most calls without touching the database, so a
    crowd of polling students costs reads, not writes; only a stale value tries the
    conditional UPDATE, which exactly one worker wins."""
    interval = timedelta(seconds=current_app.config["ROOM_STATE_CHECK_SECONDS"])
    if room.checked_at is not None and room.checked_at >= now - interval:
        return False
    result = db.session.execute(
        update(Room)
        .where(Room.id == room.id, or_(Room.checked_at.is_(None), Room.checked_at < now - interval))
        .values(checked_at=now)
    )
    db.session.commit()
    return result.rowcount == 1


def refresh_state(room: Room, force: bool = False) -> bool:
    """Ask the provider about the room's meeting, at most once per interval across workers
    (unless `force`). True when the provider answered this call; False when another check
    was recent enough or the provider did not answer (the last known state stays)."""
    check_started = utcnow()
    if not force and not _claim_state_check(room, check_started):
        return False
    try:
        status = provider_of(room).meeting_status(room.meeting_id)
    except ProviderError as exc:
        log.warning("room %s: state check failed, keeping the last known state: %s", room.id, quoted(exc.detail))
        return False
    if status.exists:
        values = {"running": status.running}
        if status.run_id:
            values["run_id"] = status.run_id
        db.session.execute(update(Room).where(Room.id == room.id).values(**values))
    else:
        # Gone from the server: ended or expired. Only a start older than this check counts as
        # ended, so a moderator's start racing with the check is never undone.
        db.session.execute(
            update(Room)
            .where(Room.id == room.id, or_(Room.started_at.is_(None), Room.started_at < check_started))
            .values(running=False, ended_at=check_started)
        )
    db.session.commit()
    db.session.refresh(room)
    shown.forget(room.id)
    return True


def is_open(room: Room) -> bool:
    """May attendees join now? A moderator started it since the last end, or it runs."""
    refresh_state(room)
    return room.started_since_last_end or room.running


def scheduled_entry_open(room: Room) -> bool:
    """Is a scheduled occasion open for students to enter on their own (from the room's
    early-entry minutes before its start to its end: a scheduled class opens by itself)? Not
    once a teacher has ended it, nor once a class started in this window has ended: a stale Join
    must not open it again."""
    slot = open_occasion(room)
    if slot is None:
        return False
    opened_at = slot.starts_at - timedelta(minutes=room.early_join_minutes or 0)
    if room.started_at is not None and room.started_at >= opened_at and not room.started_since_last_end:
        return False
    return room.ended_by_teacher_at is None or room.ended_by_teacher_at < opened_at


def may_join_now(room: Room, role: str) -> bool:
    """Teachers always; students when they need not wait for a teacher, when the class is open,
    or within a scheduled occasion's entry window. Cheapest first: a crowd polling a running
    class never reads the timetable."""
    if role == MODERATOR or not room_settings(room).wait_for_moderator:
        return True
    return is_open(room) or scheduled_entry_open(room)


def _starts_meeting(room: Room, role: str) -> bool:
    """Does this person's join start (create) the meeting? Teachers always (an unscheduled class
    counts as its own occasion); students when they need not wait for a teacher, or when they
    enter a scheduled class that is not open yet — once it is, they simply join."""
    if role == MODERATOR or not room_settings(room).wait_for_moderator:
        return True
    return not is_open(room) and scheduled_entry_open(room)


# --- actions ----------------------------------------------------------------------------------
def admit(room: Room, user: User, role: str, joining_started: bool = False) -> tuple[MeetingSpec, Attendee]:
    """Let this person in (`role`: their role in the tool): teachers, or everyone when students
    need not wait, start the meeting (safe to repeat); others may come once it is open
    (`NotOpenYet` otherwise). `joining_started`: the page offered to join a class that had
    started (not to start one); when that class has ended since, `ClassEnded`, and nothing is
    started. Returns what the provider needs to let them join."""
    provider = provider_of(room)
    spec = meeting_spec(room)
    if joining_started and _offered_class_ended(room, role):
        log.info("room %s: %s %s followed a Join of a class that has ended", room.id, role, user.id)
        raise ClassEnded()
    if _starts_meeting(room, role):
        status = provider.start_meeting(spec)
        room.run_id = status.run_id or room.run_id
        room.running = status.running
        # The tool's own start changed the state: the next look (a page's poll, the end
        # callback) asks the server again rather than trust a check made before it.
        room.checked_at = None
        shown.forget(room.id)
        if role != MODERATOR and room_settings(room).wait_for_moderator:
            # A student opened a scheduled class: it is open now, and the next students join it
            # without asking the server to create it again.
            room.started_at = utcnow()
        if role == MODERATOR:
            room.started_at = utcnow()
            # Students are e-mailed (reminders/; nothing while mail is off): once per run.
            slot = open_occasion(room)
            notify(room, "live", f"live:{room.id}:{room.run_id or room.ended_at}",
                   db.session.get(Occasion, slot.key) if slot else None)
        db.session.commit()
        log.info("room %s: %s %s joined, meeting started", room.id, role, user.id)
    elif not is_open(room):
        raise NotOpenYet()
    elif room.run_id is None:
        room.run_id = provider.meeting_status(room.meeting_id).run_id or None
        db.session.commit()
    # "Everyone joins as moderator" is the provider's to apply, inside the meeting only (the
    # spec carries the room settings); here `role` stays the person's own.
    return spec, _attendee(user, role)


def _offered_class_ended(room: Room, role: str) -> bool:
    """Has the class a page offered to join ended? Whoever would start a new meeting by joining
    asks the provider now (one status call: a stale Join must not silently start a class);
    the others read the state as the last check left it."""
    if role == MODERATOR or not room_settings(room).wait_for_moderator:
        if room.started_since_last_end or room.running:
            refresh_state(room, force=True)
        return not (room.started_since_last_end or room.running)
    return not is_open(room)


def join_url(room: Room, user: User, role: str, tool_page, joining_started: bool = False) -> str:
    """Where `join` sends this person: the provider's URL for them (`tool_page(endpoint)` makes
    the address of one of the tool's pages for them, for providers with a page of their own)."""
    spec, attendee = admit(room, user, role, joining_started)
    return provider_of(room).join(spec, attendee, room.run_id, tool_page)


def own_return_url(room_id: int, leave_ticket) -> str | None:
    """The return URL of the person a leave ticket names, when it is for this room."""
    if leave_ticket is None or leave_ticket.room_id != room_id:
        return None
    enrolment = db.session.get(Enrolment, leave_ticket.enrolment_id)
    return enrolment.return_url if enrolment is not None else None


def end_class(room: Room, user: User) -> None:
    provider_of(room).end_meeting(room.meeting_id)
    room.ended_at = room.ended_by_teacher_at = utcnow()
    room.running = False
    db.session.commit()
    shown.forget(room.id)
    log.info("room %s: ended by user %s", room.id, user.id)
