"""Room views: authorise (rooms/access.py), then call rooms.service.

Every view needs a ticket for this very room (a page ticket in a URL, the room ticket in a form
or the page script's header); teacher actions need the moderator role of the person's own
latest launch of this resource link.
"""
from __future__ import annotations

import hashlib
import json
import logging

from flask import current_app, g, get_template_attribute, jsonify, redirect, render_template, request

from ..exceptions import InvalidInput
from ..logsafe import quoted
from ..lti.roles import is_site_administrator
from ..schedule import dashboard
from ..web import browser_cookie_attributes, wants_json
from . import service
from . import shown as shown_versions
from .access import RoomAccess, page_url, room_view
from .blueprint import bp
from .state import class_state, crowd_poll_seconds
from .tickets import LEAVE, TicketError, issue_ticket, read_ticket

log = logging.getLogger(__name__)

# Pages a room ticket may open through POST /rooms/<id>/open (links between the tool's pages).
OPENABLE_PAGES = {
    "room": "rooms.show", "attendance": "rooms.attendance", "course": "rooms.course", "mine": "rooms.mine",
}


def leave_cookie_name(room_id: int) -> str:
    return f"lti_leave_{room_id}"


@bp.get("/<int:room_id>")
@room_view()
def show(access: RoomAccess):
    room = access.room
    live = class_state(room, access.role)
    template = "rooms/room.html" if live.may_join or access.is_moderator else "rooms/waiting.html"
    return render_template(
        template,
        room=room,
        user=access.user,
        is_moderator=access.is_moderator,
        live=live,
        provider_configured=service.provider_ready(room),
        settings=service.room_settings(room),
        ticket=g.ticket,
        return_url=access.enrolment.return_url,
        is_platform_admin=is_site_administrator(access.enrolment.lti_roles or []),
        refresh_url=page_url("rooms.show"),
        refresh_seconds=current_app.config["WAITING_REFRESH_SECONDS"],
        schedule=dashboard.page_schedule(room, access.user, access.is_moderator),
    )


def _unchanged_status(room_id: int):
    """A page that says it shows what this process worked out for the room within the last
    second gets `same` without the database: what most of a waiting crowd's polls are."""
    shown = request.headers.get("X-Shown-Version")
    facts = shown_versions.current_facts(room_id, shown)
    return jsonify({**facts, "version": shown, "same": True}) if facts is not None else None


@bp.get("/<int:room_id>/status")
@room_view(json=True, unchanged=_unchanged_status)
def status(access: RoomAccess):
    """The class's state for the page's script (docs/room-states.md): the facts, the page's
    status area as the server words it (`html`), and where to go now with a fresh page ticket
    (`url`: a page open for longer than a ticket lives moves on). What a crowd of pages asks
    every few seconds: database reads only (rooms/state.py)."""
    live = class_state(access.room, access.role)
    facts = live.as_json()
    poll = crowd_poll_seconds(access.room)
    # The words depend on the facts and the role only (the page's own ticket is fixed): a page
    # that says it shows this version gets "same", without rendering or signing anything.
    version = hashlib.sha256(json.dumps([facts, access.is_moderator], sort_keys=True).encode()).hexdigest()[:16]
    shown_versions.remember(access.room.id, access.is_moderator, version, {**facts, "poll": poll})
    if request.headers.get("X-Shown-Version") == version:
        return jsonify({**facts, "poll": poll, "version": version, "same": True})
    words = {
        part: get_template_attribute("rooms/_class_state.html", part)
        for part in ("status_text", "controls")
    }
    html = {
        "status": str(words["status_text"](access.room, live, access.is_moderator)),
        "controls": str(words["controls"](access.room, live, access.is_moderator, g.ticket)),
    }
    return jsonify({**facts, "poll": poll, "version": version, "url": page_url("rooms.show"), "html": html})


@bp.post("/<int:room_id>/open")
@room_view()
def open_page(access: RoomAccess):
    """A link between the tool's pages: the room ticket (a form field, never in a URL) is traded
    for a fresh page ticket in the address of the page asked for."""
    endpoint = OPENABLE_PAGES.get(request.form.get("page", "room"))
    if endpoint is None:
        raise InvalidInput(f"unknown page {quoted(request.form.get('page'), 40)}", "This page does not exist.", 404)
    return redirect(page_url(endpoint), code=303)


@bp.post("/<int:room_id>/join")
@room_view()
def join(access: RoomAccess):
    """Follow `join`: a 302 to the class. The page's script asks for JSON instead (the class's
    address, or why not), so a failed start shows in the course tab (docs/room-states.md)."""
    joining_started = request.form.get("intent") == "join"
    try:
        url = service.join_url(access.room, access.user, access.role, tool_page=page_url,
                               joining_started=joining_started)
    except (service.NotOpenYet, service.ClassEnded) as refused:
        if wants_json():
            ended = isinstance(refused, service.ClassEnded)
            return jsonify({"error": "The class has ended." if ended else "The class has not started yet.",
                            "state": "ended" if ended else "not_started", "url": page_url("rooms.show")}), 409
        return redirect(page_url("rooms.show"), code=303)
    response = jsonify({"url": url}) if wants_json() else redirect(url, code=302)
    _remember_who_leaves(response, access)
    return response


def _remember_who_leaves(response, access: RoomAccess) -> None:
    """The meeting's logout URL is the same for everyone (rooms.left); a cookie scoped to that
    page tells it whose return URL to send the person to."""
    response.set_cookie(
        leave_cookie_name(access.room.id),
        issue_ticket(access.enrolment.id, access.room.id, LEAVE),
        max_age=int(current_app.config["ROOM_TICKET_SECONDS"]),
        path=f"/rooms/{access.room.id}/left",
        **browser_cookie_attributes(),
    )


@bp.post("/<int:room_id>/end")
@room_view(teacher=True)
def end(access: RoomAccess):
    service.end_class(access.room, access.user)
    return redirect(page_url("rooms.show"), code=303)


@bp.get("/<int:room_id>/left")
def left(room_id: int):
    """Where the video client sends people when they leave: each to their own LMS page."""
    return_url = service.own_return_url(room_id, _leave_ticket(room_id))
    if return_url:
        return redirect(return_url, code=303)
    return render_template("rooms/left.html", room_id=room_id)


def _leave_ticket(room_id: int):
    try:
        return read_ticket(request.cookies.get(leave_cookie_name(room_id)), LEAVE)
    except TicketError:
        return None
