"""Room tickets: what a launch hands the browser so it can act on its room afterwards.

A ticket is a signed, expiring token naming one enrolment (a user in a resource link) and one
room. It travels with the requests instead of a cookie, because the LMS frames the tool and
browsers increasingly drop third-party cookies. There are two kinds, so that the long-lived one
never appears in a URL (access logs, browser history, a screen share of the address bar):

- the **room ticket** (`ROOM_TICKET_SECONDS`, 12 hours by default) lives only inside the page:
  hidden form fields (`t`) and the `X-Room-Ticket` header of the page's own script. A page on
  another site cannot read it, so it also protects the forms against cross-site request forgery;
- the **page ticket** (`PAGE_TICKET_SECONDS`, 10 minutes by default) is what URLs carry (`?t=`):
  it opens pages (GET) and nothing else. Links between the tool's pages are small forms that
  trade the room ticket for a fresh page ticket (`POST /rooms/<id>/open`).

The two are signed with different salts: one can never be taken for the other.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

ROOM = "room-ticket-v1"
PAGE = "room-page-ticket-v1"
LEAVE = "room-leave-v1"
LIFETIMES = {ROOM: "ROOM_TICKET_SECONDS", PAGE: "PAGE_TICKET_SECONDS", LEAVE: "ROOM_TICKET_SECONDS"}


@dataclass(frozen=True)
class Ticket:
    enrolment_id: int
    room_id: int


class TicketError(Exception):
    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.expired = expired


def _serializer(kind: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=kind)


def issue_ticket(enrolment_id: int, room_id: int, kind: str = ROOM) -> str:
    return _serializer(kind).dumps({"e": enrolment_id, "r": room_id})


def issue_page_ticket(enrolment_id: int, room_id: int) -> str:
    return issue_ticket(enrolment_id, room_id, PAGE)


def read_ticket(token: str | None, kind: str = ROOM) -> Ticket:
    if not token:
        raise TicketError("no ticket")
    try:
        data = _serializer(kind).loads(token, max_age=current_app.config[LIFETIMES[kind]])
    except SignatureExpired as exc:
        raise TicketError(f"{kind} expired", expired=True) from exc
    except BadSignature as exc:
        raise TicketError(f"{kind} signature invalid") from exc
    try:
        return Ticket(enrolment_id=int(data["e"]), room_id=int(data["r"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TicketError(f"{kind} payload malformed") from exc
