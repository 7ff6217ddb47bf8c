"""Recording views (docs/recordings.md), on the rooms blueprint's addresses:

- `GET /rooms/<id>/recordings`: the room page's recordings list alone (templates/rooms/
  _recordings.html), which static/recordings.js fetches again while a class ran recently;
- `POST /rooms/<id>/recordings/publish|rename|delete` (`record_id`; `publish=true|false`,
  `name`): teachers only (`room_view(teacher=True)`), answered with the room page.

The template global `room_recordings()` gives the partial what it shows, for the person asking.
"""
from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request

from ..exceptions import InvalidInput
from ..logsafe import quoted
from ..rooms.access import RoomAccess, page_url, room_view
from . import service

bp = Blueprint("recordings", __name__, url_prefix="/rooms")


def room_recordings() -> dict | None:
    """What templates/rooms/_recordings.html needs; None outside a room view."""
    access = getattr(g, "room_access", None)
    if access is None:
        return None
    listed = service.listing(access.room, access.is_moderator)
    return {
        "listed": listed,
        "moderator": access.is_moderator,
        "version": service.version(listed),
        "poll_seconds": (current_app.config["RECORDINGS_PAGE_REFRESH_SECONDS"]
                         if service.class_ran_recently(access.room) else 0),
        "retention_days": service.retention_days(access.room),
        "changed": request.args.get("recording"),
    }


bp.add_app_template_global(room_recordings, "room_recordings")


@bp.get("/<int:room_id>/recordings")
@room_view()
def recordings_list(access: RoomAccess):
    return render_template("rooms/_recordings.html", room=access.room, ticket=g.ticket)


def _record_id() -> str:
    record_id = request.form.get("record_id", "")
    if not record_id:
        raise InvalidInput("recording action without record_id", "Which recording? The form was incomplete.")
    return record_id


def _back(what: str):
    return redirect(page_url("rooms.show", recording=what) + "#recordings", code=303)


@bp.post("/<int:room_id>/recordings/publish")
@room_view(teacher=True)
def publish(access: RoomAccess):
    choice = request.form.get("publish", "")
    if choice not in ("true", "false"):
        raise InvalidInput(f"publish={quoted(choice, 20)}", "Choose to publish or unpublish the recording.")
    service.publish(access.room, _record_id(), choice == "true")
    return _back("published" if choice == "true" else "unpublished")


@bp.post("/<int:room_id>/recordings/rename")
@room_view(teacher=True)
def rename(access: RoomAccess):
    service.rename(access.room, _record_id(), request.form.get("name", ""))
    return _back("renamed")


@bp.post("/<int:room_id>/recordings/delete")
@room_view(teacher=True)
def delete(access: RoomAccess):
    service.delete(access.room, _record_id())
    return _back("deleted")
