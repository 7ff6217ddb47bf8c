"""The tool's own classroom page for LiveKit rooms, and the moderator actions it calls.

`join` on a LiveKit room redirects here with a fresh access token for that person and room;
the page (templates/rooms/livekit.html, livekit-client served from /static/vendor/) connects
to LIVEKIT_URL with it. Moderator actions go through the tool (which holds the API secret),
each checked like every other room action: ticket, room, moderator role.
"""
from __future__ import annotations

from flask import current_app, g, jsonify, render_template, request, url_for

from ..lti.roles import MODERATOR
from ..providers import provider_for
from . import bp, service
from .routes import _authorise, _check_origin, _require_moderator


@bp.get("/<int:room_id>/live")
def livekit_page(room_id: int):
    room, enrolment, role = _authorise(room_id)
    token = request.args.get("lk", "")
    if room.provider != "livekit" or not token:
        return render_template("errors/error.html", message="Open the class from its room page.", status=400), 400
    return render_template(
        "rooms/livekit.html",
        room=room,
        user=enrolment.user,
        is_moderator=role == MODERATOR,
        settings=service.room_settings(room),
        livekit_url=current_app.config["LIVEKIT_URL"],
        token=token,
        ticket=g.ticket,
        identity=enrolment.user.public_id,
        leave_url=room.return_url or url_for("rooms.left", room_id=room.id),
        room_url=url_for("rooms.show", room_id=room.id, t=g.ticket),
        token_url=url_for("rooms.livekit_token", room_id=room.id),
        action_url=url_for("rooms.livekit_action", room_id=room.id),
        end_url=url_for("rooms.end", room_id=room.id),
    )


@bp.post("/<int:room_id>/live/token")
def livekit_token(room_id: int):
    """A fresh token for a page that reconnects after its token expired (JSON)."""
    _check_origin()
    room, enrolment, role = _authorise(room_id)
    try:
        token = service.join_url(room, enrolment.user, role)
    except service.NotOpenYet:
        return jsonify({"error": "The class is not running."}), 409
    return jsonify({"token": token})


@bp.post("/<int:room_id>/live/action")
def livekit_action(room_id: int):
    """Moderator actions on participants: mute a track, remove a participant (JSON)."""
    _check_origin()
    room, _, role = _authorise(room_id)
    _require_moderator(role)
    action, identity = request.form.get("action"), request.form.get("identity", "")
    provider = provider_for(room.provider)
    if action == "mute" and identity and request.form.get("track"):
        done = provider.mute_participant(room.meeting_id, identity, request.form["track"], True)
    elif action == "remove" and identity:
        done = provider.remove_participant(room.meeting_id, identity)
    else:
        return jsonify({"error": "Unknown action or missing participant."}), 400
    if not done:
        return jsonify({"ok": False, "error": "That person or track has already left."}), 409
    return jsonify({"ok": True})
