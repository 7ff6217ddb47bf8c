"""BigBlueButton's callbacks, each authenticated as BBB authenticates it, then stored in the
inbox and applied (lti_tool/attendance/service.py).

- POST /webhooks/bbb: bbb-webhooks events (checksum over URL + body + secret, older variants,
  or `Authorization: Bearer <secret>`); the tool registers this URL through the hooks API and
  also accepts events from a permanent hook an operator configured at the same URL.
- POST /webhooks/bbb/analytics: the analytics callback (Bearer JWT HS512).
- POST /webhooks/bbb/recording-ready: `signed_parameters` (JWT HS256); kept for recordings.
- GET /webhooks/bbb/end: the end-of-meeting callback; BBB does not sign it, so the URL carries
  the tool's own HMAC, and even then the server is asked (throttled) before anything changes
  (lti_tool/providers/bbb/end_callback.py).

Answers are JSON: 401 when authentication fails (nothing stored), 400 when the body as a whole
is unreadable. Otherwise 200 with counts, `{"received": 3, "new": 2, "refused": 1}`: each event
is checked and stored on its own, and a refused one (logged with its reason) costs only itself
— a 4xx would make bbb-webhooks retry, then drop the hook, for every meeting on the server.
"""
from __future__ import annotations

import logging

from flask import current_app, jsonify, request
from sqlalchemy import select

from ..providers.bbb.end_callback import report_end
from ..attendance.events import Batch
from ..attendance.service import fits, log_refusals, receive, to_ms
from ..extensions import db
from ..logsafe import quoted
from ..models import Room, utcnow
from ..providers.bbb import callbacks
from . import bp
from ..providers.bbb.signing import signature_matches

log = logging.getLogger(__name__)


def _bbb_secret() -> str:
    return current_app.config["BBB_SHARED_SECRET"]


def webhook_url() -> str:
    return current_app.config["TOOL_BASE_URL"] + "/webhooks/bbb"


def _refuse(status: int, message: str, reason: str):
    log.warning("%s %s refused (%s): %s", request.method, request.path, status, reason)
    return jsonify({"error": message}), status


def _receive(batch: Batch, what: str):
    receipt = receive(batch.events)
    refused = batch.refused + receipt.refused
    log_refusals(what, refused)
    counts = {"received": len(batch.events) + len(batch.refused), "new": len(receipt.new), "refused": len(refused)}
    log.info("%s: %d event(s), %d new, %d refused", what, counts["received"], counts["new"], counts["refused"])
    return jsonify(counts)


@bp.post("/bbb")
def bbb_events():
    if not _bbb_secret():
        return _refuse(503, "BigBlueButton is not configured", "no BBB_SHARED_SECRET")
    raw = request.get_data(cache=True)
    checksum = request.args.get("checksum")
    variant = callbacks.verify_webhook(
        webhook_url(), raw, checksum, request.headers.get("Authorization"), _bbb_secret(),
        accept_legacy_checksum=current_app.config["BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM"],
    )
    if variant is None:
        if callbacks.legacy_checksum_matches(webhook_url(), checksum, _bbb_secret()):
            return _refuse(401, "checksum does not match", "bbb-webhooks 3.0-3.3 checksum, which does not cover "
                           "the body: refused unless BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM is on")
        return _refuse(401, "checksum does not match", "bbb-webhooks checksum/authorization invalid")
    try:
        batch = callbacks.parse_webhook_batch(raw)
    except callbacks.CallbackFormatError as exc:
        return _refuse(400, "malformed webhook body", str(exc))
    return _receive(batch, f"bbb-webhooks ({variant})")


@bp.post("/bbb/analytics")
def bbb_analytics():
    if not _bbb_secret() or not callbacks.verify_analytics(request.headers.get("Authorization"), _bbb_secret()):
        return _refuse(401, "invalid token", "analytics callback token invalid")
    try:
        body = callbacks.load_json(request.get_data(cache=True), "analytics callback body")
        batch = callbacks.parse_analytics_batch(body)
    except callbacks.CallbackFormatError as exc:
        return _refuse(400, "malformed analytics body", str(exc))
    return _receive(batch, "bbb analytics callback")


@bp.post("/bbb/recording-ready")
def bbb_recording_ready():
    try:
        claims = callbacks.verify_recording_ready(request.form.get("signed_parameters", ""), _bbb_secret())
    except callbacks.CallbackAuthError as exc:
        return _refuse(401, "invalid signed_parameters", str(exc))  # its PyJWT part is quoted
    return _receive(Batch([callbacks.recording_ready_event(claims)]), "bbb recording-ready callback")


@bp.get("/bbb/end")
def bbb_meeting_ended():
    meeting_id = request.args.get("meetingID", "")
    if not signature_matches("end", meeting_id, request.args.get("sig")):
        return _refuse(401, "bad signature", f"end callback signature invalid for meeting {quoted(meeting_id, 64)}")
    room = _room_of(meeting_id)
    if room is None:
        return _refuse(404, "unknown meeting", f"end callback for unknown meeting {quoted(meeting_id, 64)}")
    ended = report_end(room)
    log.info("end callback for room %s: %s", room.id, "ended" if ended else "not confirmed (yet)")
    return jsonify({"ended": ended})


def _room_of(meeting_id: str) -> Room | None:
    if not fits(meeting_id, Room.meeting_id):  # no room has it, and PostgreSQL cannot even look up a NUL
        return None
    return db.session.scalar(select(Room).where(Room.meeting_id == meeting_id))


@bp.post("/livekit")
def livekit_events():
    """LiveKit's signed webhooks (`Authorization: <JWT>` whose sha256 claim covers the raw body;
    configure `webhook.urls` in livekit.yaml with `<TOOL_BASE_URL>/webhooks/livekit`)."""
    from ..providers.livekit import callbacks as livekit_callbacks

    key, secret = current_app.config["LIVEKIT_API_KEY"], current_app.config["LIVEKIT_API_SECRET"]
    if not key or not secret:
        return _refuse(503, "LiveKit is not configured", "no LIVEKIT_API_KEY/LIVEKIT_API_SECRET")
    raw = request.get_data(cache=True)
    try:
        event = livekit_callbacks.verify_and_parse(raw, request.headers.get("Authorization"), key, secret)
    except livekit_callbacks.CallbackAuthError as exc:
        return _refuse(401, "invalid webhook signature", str(exc))
    except livekit_callbacks.CallbackFormatError as exc:
        return _refuse(400, "malformed webhook body", str(exc))
    try:
        batch = Batch(livekit_callbacks.events_from_webhook(event, received_at_ms=to_ms(utcnow())))
    except livekit_callbacks.CallbackFormatError as exc:  # an authentic body, an event unusable
        batch = Batch(refused=[str(exc)])
    return _receive(batch, f"livekit webhook {quoted(event.get('event'), 40)}")
