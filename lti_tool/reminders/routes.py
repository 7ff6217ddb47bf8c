"""Reminder views: the e-mail's stop link and the room page's on/off form.

`GET /reminders/stop/<token>` only shows what the link would do (mail scanners follow links);
`POST` to the same address stops the room's e-mails (RFC 8058 one-click: a mail client posts
`List-Unsubscribe=One-Click`; the page's button does the same) or, with `action=resume`, starts
them again. The token (messages.py) is the only credential: no ticket, no login.

`POST /rooms/<id>/reminders` is the room page's form (the room ticket, `@room_view`), and the
template global `reminder_choice()` gives templates/rooms/_reminders.html what it shows.
"""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request

from ..exceptions import InvalidInput, NotAvailable
from ..extensions import db
from ..models import Room
from ..rooms.access import RoomAccess, page_url, room_view
from . import messages, service
from .recipients import address_of

bp = Blueprint("reminders", __name__)


def reminder_choice() -> dict | None:
    """What the room page's partial needs: None when mail is off or no person is known."""
    access = getattr(g, "room_access", None)
    if access is None or not service.mail_is_on():
        return None
    user = access.user
    return {
        "on": not service.is_stopped(access.room.id, user.issuer, user.sub),
        "address": address_of(access.room, user.sub),
        "changed": request.args.get("reminders"),
    }


bp.add_app_template_global(reminder_choice, "reminder_choice")


def _mail_on() -> None:
    if not service.mail_is_on():
        raise NotAvailable("reminder request while SMTP_URL is not set", "This tool sends no e-mails.", 404)


def _room_of(token: str) -> tuple[Room, messages.StopToken]:
    _mail_on()
    stop = messages.read_stop_token(token)
    room = db.session.get(Room, stop.room_id) if stop else None
    if room is None:
        raise InvalidInput("stop link with a bad signature or for a deleted room",
                           "This link does not work (it may be cut short, or the class was deleted).", 404)
    return room, stop


@bp.route("/reminders/stop/<token>", methods=["GET", "POST"])
def stop_link(token: str):
    room, stop = _room_of(token)
    done = None
    if request.method == "POST":
        if request.form.get("action") == "resume":
            service.resume(room, stop.issuer, stop.sub)
            done = "resumed"
        else:  # the page's button, or a mail client's List-Unsubscribe=One-Click
            service.stop(room, stop.issuer, stop.sub)
            done = "stopped"
    stopped = service.is_stopped(room.id, stop.issuer, stop.sub)
    return render_template("reminders/stop.html", room=room, stopped=stopped, done=done,
                           action=messages.STOP_PATH + token)


@bp.post("/rooms/<int:room_id>/reminders")
@room_view()
def choose(access: RoomAccess):
    _mail_on()
    choice = request.form.get("email")
    if choice not in ("on", "off"):
        raise InvalidInput("reminder choice neither on nor off", "Choose on or off.")
    user = access.user
    if choice == "on":
        service.resume(access.room, user.issuer, user.sub)
    else:
        service.stop(access.room, user.issuer, user.sub)
    return redirect(page_url("rooms.show", reminders=choice), code=303)


