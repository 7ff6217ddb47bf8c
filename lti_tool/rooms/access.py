"""Who is asking, for which room, and what they may do there: every room view starts here.

`@room_view()` (or `@room_view(teacher=True)`) is the one access rule of room views: a POST
must come from the tool's own pages (`check_origin`), the ticket must name an enrolment in this
very room (`authorise`), and a teacher action needs the moderator role of the person's own
launch; the view then receives the `RoomAccess`.

`authorise(room_id)` reads the request's ticket (rooms/tickets.py: the page ticket from a URL,
the room ticket from a form or the page script's `X-Room-Ticket` header), checks that it names
an enrolment in this very room, and answers with a `RoomAccess`. What a person may do in the
tool follows the role of their own latest launch (`enrolment.role`), never a room setting:
"everyone joins as moderator" changes the role inside the video meeting only (the providers
apply it when they let a person join).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from ..exceptions import AccessDenied
from ..extensions import db
from ..logsafe import quoted
from ..lti.roles import MODERATOR
from ..models import Enrolment, Room
from ..request_log import note_room
from .tickets import PAGE, ROOM, Ticket, TicketError, issue_page_ticket, issue_ticket, read_ticket

TICKET_HEADER = "X-Room-Ticket"


@dataclass(frozen=True)
class RoomAccess:
    room: Room
    enrolment: Enrolment

    @property
    def role(self) -> str:
        """The person's role in the tool: their own launch's, whatever the room settings say."""
        return self.enrolment.role

    @property
    def is_moderator(self) -> bool:
        return self.role == MODERATOR

    @property
    def user(self):
        return self.enrolment.user


def _ticket_in_request() -> tuple[str | None, str]:
    """The ticket and its kind: URLs carry page tickets, forms and the page's script room tickets."""
    header = request.headers.get(TICKET_HEADER)
    if header:
        return header, ROOM
    if request.method in ("GET", "HEAD"):
        return request.args.get("t"), PAGE
    return request.form.get("t"), ROOM


def ticket_for_room(room_id: int) -> tuple[str, str, Ticket]:
    """The request's ticket (token, kind, what it names) when it is good for this room: signed,
    not expired, for this very room (`AccessDenied` otherwise). No database: the enrolment it
    names is checked by `authorise`."""
    token, kind = _ticket_in_request()
    try:
        ticket = read_ticket(token, kind)
    except TicketError as exc:
        message = (
            "Your access to this class has expired. Open the activity again from your course."
            if exc.expired
            else "Open this class from your course in the learning platform."
        )
        raise AccessDenied(str(exc), message, 401) from exc
    if ticket.room_id != room_id:
        raise AccessDenied(
            f"ticket for room {ticket.room_id} used on room {room_id}",
            "You have not opened this class from your course.",
        )
    return token, kind, ticket


def authorise(room_id: int) -> RoomAccess:
    token, kind, ticket = ticket_for_room(room_id)
    # One statement for the room, the enrolment and its user (what a crowd's polls and joins cost
    # the database; `enrolment.user` then needs none): no row when the room or the enrolment is
    # gone, or when the enrolment is in another link.
    found = db.session.execute(
        select(Room, Enrolment)
        .join(Enrolment, Enrolment.resource_link_id == Room.resource_link_id)
        .join(Enrolment.user)
        .options(contains_eager(Enrolment.user))
        .where(Room.id == room_id, Enrolment.id == ticket.enrolment_id)
    ).first()
    if found is None:
        raise AccessDenied("ticket names an enrolment outside this room", "You do not have access to this class.")
    room, enrolment = found
    # Forms of the page about to be rendered carry a room ticket: the one that came, or a new one
    # when the page was opened through a URL (page ticket).
    g.ticket = token if kind == ROOM else issue_ticket(enrolment.id, room.id)
    g.room_access = RoomAccess(room, enrolment)
    note_room(room.id, enrolment.user_id)  # for the request's log line, read now: no query later
    return g.room_access


def require_moderator(access: RoomAccess) -> None:
    if not access.is_moderator:
        raise AccessDenied(
            "teacher action by an attendee (the role of their own launch)",
            "Only the teachers of this course can do that.",
        )


def check_origin() -> None:
    """Browsers send Origin on POST: one from another site, or `null` (a sandboxed or opaque
    document), is not one of the tool's own forms (defence in depth next to the ticket)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    base = urlsplit(current_app.config["TOOL_BASE_URL"])
    if origin.rstrip("/") != f"{base.scheme}://{base.netloc}":
        raise AccessDenied(f"cross-site POST from Origin {quoted(origin)}", "This form was sent from another site.")


def page_url(endpoint: str, access: RoomAccess | None = None, **values) -> str:
    """A URL of one of the room's pages with a fresh page ticket for the person asking."""
    access = access or g.room_access
    ticket = issue_page_ticket(access.enrolment.id, access.room.id)
    return url_for(endpoint, room_id=access.room.id, t=ticket, **values)


def room_ticket_for(enrolment: Enrolment, room: Room) -> str:
    """The room ticket of another of the same person's rooms, for a link to it on a page of
    theirs (the course view, "My classes"): the link is an `_open.html` form posting it to
    that room's `/open`, which answers with that room's page and a fresh page ticket. The
    caller passes one of the person's own enrolments only."""
    if enrolment.resource_link_id != room.resource_link_id:
        raise ValueError("the enrolment is not in this room")
    return issue_ticket(enrolment.id, room.id)


def room_view(teacher: bool = False, json: bool = False, unchanged=None):
    """The access rule of a room view `view(access, **kwargs)` served at `/<int:room_id>/…`
    (`json`: the view speaks JSON only, and so do its refusals). `unchanged(room_id)`: an answer
    needing no database once the ticket is good for this room (a status poll of a page showing
    the current state), or None to go on to the view."""

    def decorate(view):
        @functools.wraps(view)
        def checked(room_id: int, **kwargs):
            if request.method == "POST":
                check_origin()
            if unchanged is not None:
                ticket_for_room(room_id)
                answer = unchanged(room_id)
                if answer is not None:
                    return answer
            access = authorise(room_id)
            if teacher:
                require_moderator(access)
            return view(access, **kwargs)

        checked.answers_json = json
        return checked

    return decorate
