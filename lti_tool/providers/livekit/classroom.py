"""The tool's own classroom page for LiveKit rooms, and the moderator actions it calls.

`join` on a LiveKit room redirects here with a fresh access token for that person and room;
the page (templates/livekit/classroom.html, livekit-client served from /static/vendor/) connects
to LIVEKIT_URL with it. Moderator actions go through the tool (which holds the API secret),
each checked like every other room action: ticket, room, moderator role.

Chat, raised hands and the recording state go through the tool too (`message`, messages.py):
tokens let no one publish data, so the tool sees, checks and counts every classroom message.

Recording (LiveKit Egress) is offered when LIVEKIT_RECORDING_FILEPATH is set and the room's
settings allow recording (`record`); teachers start and stop it, everyone sees that it runs.
"""
from __future__ import annotations

import logging

from flask import g, jsonify, render_template, request, url_for

from ...exceptions import InvalidInput, NotAvailable
from ...logsafe import quoted
from ...rooms import service
from ...rooms.access import RoomAccess, room_view
from ..base import MeetingNotFound, ProviderError
from . import messages
from .provider import LiveKitProvider
from .routes import bp  # the classroom lives beside the room's other pages (/rooms/<id>/live…)

PROVIDER = "livekit"  # this package's rooms


def _livekit_of(access: RoomAccess, refusal: type = NotAvailable) -> LiveKitProvider:
    """The LiveKit provider, for a room that is one of LiveKit's; `refusal` otherwise."""
    if access.room.provider != PROVIDER:
        raise refusal(f"LiveKit page or action asked for a {quoted(access.room.provider)} room",
                      "This room's video service does this from its own meeting window.")
    return service.provider_of(access.room)

log = logging.getLogger(__name__)


def _recording_problem(room, provider) -> str:
    """Why this room cannot be recorded ("" when it can): LiveKit Egress not configured, or the
    room's settings do not allow recording."""
    if room.provider != PROVIDER or not provider.recording_available:
        return "Recording is not set up for live classes on this site."
    if not service.room_settings(room).record:
        return "Recording is turned off in this room's settings."
    return ""


def _recording_now(room, provider) -> str | None:
    """The egress recording the room now, for the page as it loads; None when it is not
    recorded or LiveKit cannot say (the page must open all the same)."""
    try:
        return provider.active_recording(room.meeting_id)
    except ProviderError as exc:
        log.warning("room %s: could not ask LiveKit whether it is recorded: %s", room.id, quoted(exc.detail))
        return None


@bp.get("/rooms/<int:room_id>/live")
@room_view()
def classroom(access: RoomAccess):
    """The classroom page. Its access token comes in the URL's fragment (`#lk=`, from `join`),
    which no server sees; without one (a reload) the page asks `token` (below) for a fresh one."""
    room = access.room
    provider = _livekit_of(access, InvalidInput)
    recordable = not _recording_problem(room, provider)
    messages.open_engagement(room, access.user.public_id)
    return render_template(
        "livekit/classroom.html",
        room=room,
        user=access.user,
        is_moderator=access.is_moderator,
        settings=service.room_settings(room),
        livekit_url=provider.ws_url,  # the room's platform may have a LiveKit server of its own
        ticket=g.ticket,
        identity=access.user.public_id,
        leave_url=access.enrolment.return_url or url_for("rooms.left", room_id=room.id),
        token_url=url_for("livekit.token", room_id=room.id),
        action_url=url_for("livekit.action", room_id=room.id),
        message_url=url_for("livekit.message", room_id=room.id),
        end_url=url_for("rooms.end", room_id=room.id),
        recording_available=recordable and access.is_moderator,
        recording_active=recordable and _recording_now(room, provider) is not None,
        recording_url=url_for("livekit.recording", room_id=room.id),
    )


@bp.post("/rooms/<int:room_id>/live/token")
@room_view(json=True)
def token(access: RoomAccess):
    """A fresh token for a page that (re)connects without a valid one (JSON)."""
    provider = _livekit_of(access)
    try:
        spec, attendee = service.admit(access.room, access.user, access.role)
    except service.NotOpenYet:
        return jsonify({"error": "The class is not running."}), 409
    return jsonify({"token": provider.access_token(spec, attendee)})


@bp.post("/rooms/<int:room_id>/live/action")
@room_view(teacher=True, json=True)
def action(access: RoomAccess):
    """Teacher actions on participants of a LiveKit room: mute a track, remove a participant (JSON)."""
    room = access.room
    provider = _livekit_of(access)
    action, identity = request.form.get("action"), request.form.get("identity", "")
    if action == "mute" and identity and request.form.get("track"):
        done = provider.mute_participant(room.meeting_id, identity, request.form["track"], True)
    elif action == "remove" and identity:
        done = provider.remove_participant(room.meeting_id, identity)
    else:
        return jsonify({"error": "Unknown action or missing participant."}), 400
    if not done:
        return jsonify({"ok": False, "error": "That person or track has already left."}), 409
    return jsonify({"ok": True})


@bp.post("/rooms/<int:room_id>/live/recording")
@room_view(teacher=True, json=True)
def recording(access: RoomAccess):
    """Start or stop recording the room (`action=start|stop`), teachers only (JSON).

    Answers `{"recording": bool, "egress_id": str|null}`; 409 with `error` (and the state the
    room is in) when recording is not configured or allowed here, or is already started/stopped.
    Stopping stops every egress recording the room (two teachers may have started one each).
    """
    room = access.room
    action = request.form.get("action")
    if action not in ("start", "stop"):
        return jsonify({"error": "Unknown recording action."}), 400
    provider = service.provider_of(room)
    problem = _recording_problem(room, provider)
    if problem:
        return jsonify({"error": problem, "recording": False, "egress_id": None}), 409
    try:
        active = provider.active_recordings(room.meeting_id)
        if action == "start":
            if active:
                return jsonify({"error": "The class is already being recorded.", "recording": True,
                                "egress_id": active[0]}), 409
            egress_id = provider.start_recording(room.meeting_id)
            log.info("room %s: recording started (egress %s)", room.id, quoted(egress_id))
            return jsonify({"recording": True, "egress_id": egress_id})
        if not active:
            return jsonify({"error": "The class is not being recorded.", "recording": False, "egress_id": None}), 409
        for egress_id in active:
            provider.stop_recording(egress_id)
        log.info("room %s: recording stopped (egress %s)", room.id, quoted(active))
        return jsonify({"recording": False, "egress_id": active[0]})
    except MeetingNotFound:
        return jsonify({"error": "The class is not running, so it cannot be recorded.", "recording": False,
                        "egress_id": None}), 409
    except ProviderError as exc:
        log.error("room %s: recording %s failed: %s: %s", room.id, action, type(exc).__name__, quoted(exc.detail))
        what = "started" if action == "start" else "stopped"
        return jsonify({"error": f"The recording could not be {what}. {exc.user_message}"}), exc.http_status


@bp.post("/rooms/<int:room_id>/live/message")
@room_view(json=True)
def message(access: RoomAccess):
    """A classroom message (`type` chat|hand|recording), checked, counted and sent to the room
    by the tool (messages.py); answers `{"ok": true}`, or 400/403/409 with `error` (JSON)."""
    room = access.room
    provider = _livekit_of(access)
    try:
        sent = messages.relay(room, provider, access.enrolment, request.form)
    except messages.Refused as refusal:
        log.info("room %s: classroom message from %s refused (%d): %s", room.id, access.user.id,
                 refusal.status, refusal.reason)
        return jsonify({"error": refusal.reason}), refusal.status
    except MeetingNotFound:
        return jsonify({"error": "The class is not running, so the message was not sent."}), 409
    except ProviderError as exc:
        log.error("room %s: classroom message not sent: %s: %s", room.id, type(exc).__name__, quoted(exc.detail))
        return jsonify({"error": f"The message could not be sent. {exc.user_message}"}), exc.http_status
    log.info("room %s: classroom message from %s relayed: %s", room.id, access.user.id, messages.describe(sent))
    return jsonify({"ok": True})
