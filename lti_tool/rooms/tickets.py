"""Room tickets: what a launch hands the browser so it can act on its room afterwards.

A ticket is a signed, expiring token naming one enrolment (a user in a resource link) and one
room. It travels in the page's URL and forms instead of a cookie, because the LMS frames the
tool and browsers increasingly drop third-party cookies. Forms that change anything carry it
as a hidden field: a page on another site cannot read it, so it also protects those forms
against cross-site request forgery.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "room-ticket-v1"


@dataclass(frozen=True)
class Ticket:
    enrolment_id: int
    room_id: int


class TicketError(Exception):
    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.expired = expired


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue_ticket(enrolment_id: int, room_id: int) -> str:
    return _serializer().dumps({"e": enrolment_id, "r": room_id})


def read_ticket(token: str | None) -> Ticket:
    if not token:
        raise TicketError("no ticket")
    try:
        data = _serializer().loads(token, max_age=current_app.config["ROOM_TICKET_SECONDS"])
    except SignatureExpired as exc:
        raise TicketError("ticket expired", expired=True) from exc
    except BadSignature as exc:
        raise TicketError("ticket signature invalid") from exc
    try:
        return Ticket(enrolment_id=int(data["e"]), room_id=int(data["r"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TicketError("ticket payload malformed") from exc
