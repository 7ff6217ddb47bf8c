"""BigBlueButton's end-of-meeting callback (`meta_endCallbackUrl`).

The callback is unsigned by BBB, so the URL carries our own HMAC; even then it is only a hint:
the tool asks the server whether the meeting is really gone before closing the room.
"""
from __future__ import annotations

import logging

from flask import jsonify, request
from sqlalchemy import select

from ..extensions import db
from ..models import Room
from ..rooms import service
from . import bp
from .signing import signature_matches

log = logging.getLogger(__name__)


@bp.get("/bbb/end")
def bbb_meeting_ended():
    meeting_id = request.args.get("meetingID", "")
    if not signature_matches("end", meeting_id, request.args.get("sig")):
        log.warning("end callback with a bad signature for meeting %r", meeting_id[:64])
        return jsonify({"error": "bad signature"}), 401
    room = db.session.scalar(select(Room).where(Room.meeting_id == meeting_id))
    if room is None:
        log.warning("end callback for unknown meeting %r", meeting_id)
        return jsonify({"error": "unknown meeting"}), 404
    ended = service.confirm_meeting_ended(room)
    log.info("end callback for room %s: %s", room.id, "ended" if ended else "still running on the server")
    return jsonify({"ended": ended})
