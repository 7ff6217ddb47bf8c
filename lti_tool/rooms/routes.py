"""Room views: authorise with the room ticket, then call rooms.service.

Every view here needs a ticket (`t`) for this very room; moderator actions need the moderator
role that the user's latest launch of this resource link gave them.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import current_app, g, jsonify, redirect, render_template, request, url_for

from ..extensions import db
from ..lti.roles import MODERATOR
from ..models import Enrolment, Room
from ..providers import is_ready
from ..providers.base import ProviderError
from . import bp, service
from .tickets import TicketError, read_ticket

log = logging.getLogger(__name__)


class RoomAccessDenied(Exception):
    def __init__(self, reason: str, message: str, status: int = 403):
        super().__init__(reason)
        self.reason, self.message, self.status = reason, message, status


def _check_origin() -> None:
    """Browsers send Origin on POST: one from another site is a forged form (defence in depth
    next to the ticket)."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        base = urlsplit(current_app.config["TOOL_BASE_URL"])
        if origin.rstrip("/") != f"{base.scheme}://{base.netloc}":
            raise RoomAccessDenied(f"cross-site POST from {origin}", "This form was sent from another site.")


def _authorise(room_id: int) -> tuple[Room, Enrolment, str]:
    token = request.values.get("t")
    try:
        ticket = read_ticket(token)
    except TicketError as exc:
        message = (
            "Your access to this class has expired. Open the activity again from your course."
            if exc.expired
            else "Open this class from your course in the learning platform."
        )
        raise RoomAccessDenied(str(exc), message, 401) from exc
    if ticket.room_id != room_id:
        raise RoomAccessDenied(
            f"ticket for room {ticket.room_id} used on room {room_id}",
            "You have not opened this class from your course.",
        )
    room = db.session.get(Room, room_id)
    enrolment = db.session.get(Enrolment, ticket.enrolment_id)
    if room is None or enrolment is None or enrolment.resource_link_id != room.resource_link_id:
        raise RoomAccessDenied("ticket names an enrolment outside this room", "You do not have access to this class.")
    g.ticket = token
    return room, enrolment, service.effective_role(room, enrolment)


def _require_moderator(role: str) -> None:
    if role != MODERATOR:
        raise RoomAccessDenied("moderator action by an attendee", "Only the teachers of this course can do that.")


@bp.get("/<int:room_id>")
def show(room_id: int):
    room, enrolment, role = _authorise(room_id)
    configured = is_ready(room.provider)
    can_join = configured and service.may_join_now(room, role)
    template = "rooms/room.html" if can_join or role == MODERATOR else "rooms/waiting.html"
    return render_template(
        template,
        room=room,
        user=enrolment.user,
        role=role,
        is_moderator=role == MODERATOR,
        is_open=room.started_since_last_end or room.running,
        provider_configured=configured,
        settings=service.room_settings(room),
        ticket=g.ticket,
        refresh_seconds=current_app.config["WAITING_REFRESH_SECONDS"],
    )


@bp.get("/<int:room_id>/status")
def status(room_id: int):
    room, _, role = _authorise(room_id)
    return jsonify({"open": service.may_join_now(room, role)})


@bp.post("/<int:room_id>/join")
def join(room_id: int):
    _check_origin()
    room, enrolment, role = _authorise(room_id)
    try:
        url = service.join_url(room, enrolment.user, role)
    except service.NotOpenYet:
        return redirect(url_for("rooms.show", room_id=room.id, t=g.ticket), code=303)
    if room.provider == "livekit":
        # LiveKit has no client of its own to send people to: the tool's page, with the token.
        url = url_for("rooms.livekit_page", room_id=room.id, t=g.ticket, lk=url)
    return redirect(url, code=302)


@bp.post("/<int:room_id>/end")
def end(room_id: int):
    _check_origin()
    room, enrolment, role = _authorise(room_id)
    _require_moderator(role)
    service.end_class(room, enrolment.user)
    return redirect(url_for("rooms.show", room_id=room.id, t=g.ticket), code=303)


@bp.post("/<int:room_id>/settings")
def settings(room_id: int):
    _check_origin()
    room, _, role = _authorise(room_id)
    _require_moderator(role)
    try:
        service.update_settings(room, request.form)
    except ValueError as exc:
        raise RoomAccessDenied(f"bad settings: {exc}", str(exc), 400) from exc
    return redirect(url_for("rooms.show", room_id=room.id, t=g.ticket, saved=1), code=303)


@bp.get("/<int:room_id>/left")
def left(room_id: int):
    """Where the video client sends people when no LMS return URL is known."""
    return render_template("rooms/left.html")


def render_access_denied(error: RoomAccessDenied):
    log.warning("room access refused (%s): %s", error.status, error.reason)
    if request.accept_mimetypes.best == "application/json" or request.path.endswith("/status"):
        return jsonify({"error": error.message}), error.status
    return render_template("errors/error.html", message=error.message, status=error.status), error.status


def render_provider_error(error: ProviderError):
    log.error("video provider error: %s: %s", error.__class__.__name__, error.detail)
    if request.path.endswith("/status"):
        return jsonify({"error": error.user_message}), error.http_status
    return render_template("errors/error.html", message=error.user_message, status=error.http_status), error.http_status
