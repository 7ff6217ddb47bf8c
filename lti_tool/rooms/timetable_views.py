"""Timetable views: the teacher's changes to a room's timetable (add a class or a weekly
series, move one class, cancel one or the rest of its series, the students' early-entry
minutes), the course view (every room of the course the teacher launched) and "My classes"
(every room the person launched, across their courses).

The forms carry the room ticket and answer 303 back to the room page's timetable with a notice;
a form the timetable refuses gets a readable 400 page and changes nothing
(schedule.service.ScheduleError is a sentence for the teacher).
"""
from __future__ import annotations

from flask import g, redirect, render_template, request

from ..exceptions import InvalidInput
from ..logsafe import quoted
from ..schedule import dashboard
from ..schedule.service import (
    ScheduleError,
    add_series,
    cancel_occasion,
    move_occasion,
    parse_local_start,
    set_early_join,
)
from .access import RoomAccess, page_url, room_ticket_for, room_view
from .blueprint import bp

NOTICES = ("added", "moved", "cancelled", "early")  # what the room page says after a change


def _refused(exc: Exception):
    return InvalidInput(f"timetable change refused: {quoted(str(exc))}", str(exc))


def _number(name: str, label: str) -> int:
    text = (request.form.get(name) or "").strip()
    if not text.lstrip("-").isdigit() or len(text) > 6:
        raise InvalidInput(f"{name} not a whole number: {quoted(text, 40)}", f"Give the {label} as a whole number.")
    return int(text)


def _start() -> object:
    """The class's start: the form's local date and time, in the browser's time zone."""
    form = request.form
    return parse_local_start(form.get("start", "")[:40], form.get("time_zone", "")[:64], form.get("tz_offset", "")[:6])


def _back(notice: str):
    return redirect(page_url("rooms.show", timetable=notice) + "#timetable", code=303)


@bp.post("/<int:room_id>/timetable/add")
@room_view(teacher=True)
def add_classes(access: RoomAccess):
    try:
        minutes, weeks = _number("minutes", "length in minutes"), _number("weeks", "number of weeks")
        add_series(access.room, _start(), minutes, weeks, request.form.get("time_zone", "")[:64] or None)
    except ScheduleError as exc:
        raise _refused(exc) from exc
    return _back("added")


@bp.post("/<int:room_id>/timetable/move")
@room_view(teacher=True)
def move_class(access: RoomAccess):
    try:
        occasion, minutes = _number("occasion", "class"), _number("minutes", "length in minutes")
        move_occasion(access.room, occasion, _start(), minutes, request.form.get("reason", ""))
    except ScheduleError as exc:
        raise _refused(exc) from exc
    return _back("moved")


@bp.post("/<int:room_id>/timetable/cancel")
@room_view(teacher=True)
def cancel_class(access: RoomAccess):
    rest = request.form.get("rest_of_series") in ("on", "1", "true")
    try:
        cancel_occasion(access.room, _number("occasion", "class"), request.form.get("reason", ""), rest_of_series=rest)
    except ScheduleError as exc:
        raise _refused(exc) from exc
    return _back("cancelled")


@bp.post("/<int:room_id>/timetable/early")
@room_view(teacher=True)
def early_entry(access: RoomAccess):
    try:
        set_early_join(access.room, _number("early_minutes", "minutes before the start"))
    except ScheduleError as exc:
        raise _refused(exc) from exc
    return _back("early")


@bp.get("/<int:room_id>/course")
@room_view(teacher=True)
def course(access: RoomAccess):
    """Every room of this course the teacher launched (their own enrolments only)."""
    course_ = access.room.resource_link.course
    return render_template(
        "rooms/rooms_list.html", view="course", room=access.room, user=access.user, ticket=g.ticket,
        is_moderator=access.is_moderator, title=f"Classes of {course_.title or course_.label or 'this course'}",
        listing=dashboard.course_rooms(access.user, course_.id), ticket_for=room_ticket_for,
    )


@bp.get("/<int:room_id>/mine")
@room_view()
def mine(access: RoomAccess):
    """Every room the person launched, across their courses on this platform."""
    return render_template(
        "rooms/rooms_list.html", view="mine", room=access.room, user=access.user, ticket=g.ticket,
        is_moderator=access.is_moderator, title="My classes",
        listing=dashboard.my_rooms(access.user), ticket_for=room_ticket_for,
    )
