"""BigBlueButton's callbacks (under /webhooks/bbb), each authenticated as BBB authenticates it,
then stored in the inbox and applied (lti_tool/webhooks.py, lti_tool/attendance/service.py).

- POST /webhooks/bbb: bbb-webhooks events (checksum over URL + body + secret, older variants,
  or `Authorization: Bearer <secret>`); the provider registers this URL through the hooks API
  and also accepts events from a permanent hook an operator configured at the same URL.
- POST /webhooks/bbb/analytics: the analytics callback (Bearer JWT HS512).
- POST /webhooks/bbb/recording-ready: `signed_parameters` (JWT HS256); kept for recordings.
- GET /webhooks/bbb/end: the end-of-meeting callback; BBB does not sign it, so the URL carries
  the tool's own HMAC, and even then the server is asked (throttled) before anything changes
  (end_callback.py).
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from ...attendance.engagement import record_engagement
from ...attendance.events import Batch
from ...attendance.service import log_refusals
from ...logsafe import quoted
from ...lti.platform_settings import every_platform_settings
from ...rooms.service import platform_settings_of, room_of_meeting
from ...webhooks import accept, refuse
from . import callbacks
from .end_callback import report_end
from .signing import HOOK_PATH, signature_matches

log = logging.getLogger(__name__)
bp = Blueprint("bbb", __name__, url_prefix=HOOK_PATH)


def _secrets() -> list[str]:
    """Every BBB server's secret the tool knows: the environment's and the platforms' own (one
    tool may serve several institutions, each with its BBB server; all post to this URL)."""
    found = [current_app.config["BBB_SHARED_SECRET"]]
    found += [settings.get("BBB_SHARED_SECRET", "") for settings in every_platform_settings()]
    return list(dict.fromkeys(secret for secret in found if secret))


def _room_secret(room) -> str:
    return platform_settings_of(room).get("BBB_SHARED_SECRET") or current_app.config["BBB_SHARED_SECRET"]


def _signed_for_its_rooms(batch: Batch, secret: str) -> Batch:
    """With several BBB servers, a server's secret speaks for its own rooms only: an event
    signed with one institution's secret cannot touch another institution's class."""
    if len(_secrets()) < 2:
        return batch
    kept = Batch(refused=list(batch.refused))
    for event in batch.events:
        room = room_of_meeting(event.meeting_id)
        if room is not None and _room_secret(room) != secret:
            kept.refused.append(f"{event.kind} for meeting {quoted(event.meeting_id, 40)}: "
                                "signed with another BBB server's secret")
        else:
            kept.events.append(event)
    return kept


def _hook_url() -> str:
    return current_app.config["TOOL_BASE_URL"] + HOOK_PATH


@bp.post("")
def events():
    if not _secrets():
        return refuse(503, "BigBlueButton is not configured", "no BBB_SHARED_SECRET")
    raw = request.get_data(cache=True)
    checksum, authorization = request.args.get("checksum"), request.headers.get("Authorization")
    for secret in _secrets():
        variant = callbacks.verify_webhook(
            _hook_url(), raw, checksum, authorization, secret,
            accept_legacy_checksum=current_app.config["BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM"],
        )
        if variant is not None:
            break
    else:
        if any(callbacks.legacy_checksum_matches(_hook_url(), checksum, secret) for secret in _secrets()):
            return refuse(401, "checksum does not match", "bbb-webhooks 3.0-3.3 checksum, which does not cover "
                          "the body: refused unless BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM is on")
        return refuse(401, "checksum does not match", "bbb-webhooks checksum/authorization invalid")
    try:
        batch = callbacks.parse_webhook_batch(raw)
    except callbacks.CallbackFormatError as exc:
        return refuse(400, "malformed webhook body", str(exc))
    return accept(_signed_for_its_rooms(batch, secret), f"bbb-webhooks ({variant})")


@bp.post("/analytics")
def analytics():
    authorization = request.headers.get("Authorization")
    secret = next((s for s in _secrets() if callbacks.verify_analytics(authorization, s)), None)
    if secret is None:
        return refuse(401, "invalid token", "analytics callback token invalid")
    try:
        body = callbacks.load_json(request.get_data(cache=True), "analytics callback body")
        batch = callbacks.parse_analytics_batch(body)
        reports, refused = callbacks.parse_analytics_engagement(body)
    except callbacks.CallbackFormatError as exc:
        return refuse(400, "malformed analytics body", str(exc))
    answer = accept(_signed_for_its_rooms(batch, secret), "bbb analytics callback")
    # After the events: applying them made the run's class session the engagement belongs to.
    _record_engagement(reports, refused, secret)
    return answer


def _record_engagement(reports: list, refused: list[str], secret: str) -> None:
    room = room_of_meeting(reports[0].meeting_id) if reports else None
    if room is not None and len(_secrets()) > 1 and _room_secret(room) != secret:
        refused, reports = refused + [f"engagement for meeting {quoted(room.meeting_id, 40)}: signed with "
                                      "another BBB server's secret"], []
    receipt = record_engagement(reports)
    log_refusals("bbb analytics engagement", refused + receipt.refused)
    log.info("bbb analytics callback: engagement of %d person(s) stored, %d refused",
             receipt.stored, len(refused) + len(receipt.refused))


@bp.post("/recording-ready")
def recording_ready():
    signed, problem = request.form.get("signed_parameters", ""), "no BBB_SHARED_SECRET"
    for secret in _secrets():
        try:
            claims = callbacks.verify_recording_ready(signed, secret)
        except callbacks.CallbackAuthError as exc:
            problem = str(exc)  # its PyJWT part is quoted
            continue
        return accept(_signed_for_its_rooms(Batch([callbacks.recording_ready_event(claims)]), secret),
                      "bbb recording-ready callback")
    return refuse(401, "invalid signed_parameters", problem)


@bp.get("/end")
def meeting_ended():
    meeting_id = request.args.get("meetingID", "")
    if not signature_matches(current_app.config["SECRET_KEY"], "end", meeting_id, request.args.get("sig")):
        return refuse(401, "bad signature", f"end callback signature invalid for meeting {quoted(meeting_id, 64)}")
    room = room_of_meeting(meeting_id)
    if room is None:
        return refuse(404, "unknown meeting", f"end callback for unknown meeting {quoted(meeting_id, 64)}")
    ended = report_end(room)
    log.info("end callback for room %s: %s", room.id, "ended" if ended else "not confirmed (yet)")
    return jsonify({"ended": ended})
