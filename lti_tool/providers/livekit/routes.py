"""LiveKit's routes: its signed webhooks at /webhooks/livekit, and (classroom.py, registered on
the same blueprint) the tool's own classroom page beside the room's other pages.

Webhooks: `Authorization: <JWT>` whose sha256 claim covers the raw body; configure
`webhook.urls` in livekit.yaml with `<TOOL_BASE_URL>/webhooks/livekit`.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from ...attendance.events import Batch
from ...attendance.service import to_ms
from ...logsafe import quoted
from ...lti.platform_settings import every_platform_settings
from ...models import utcnow
from ...rooms.service import platform_settings_of, room_of_meeting
from ...webhooks import accept, refuse
from . import callbacks

bp = Blueprint("livekit", __name__)


def _credentials() -> dict[str, str]:
    """API key → secret of every LiveKit server the tool knows (the environment's, and the
    platforms' own: one tool may serve several institutions)."""
    config = current_app.config
    pairs = [(config["LIVEKIT_API_KEY"], config["LIVEKIT_API_SECRET"])]
    pairs += [(s.get("LIVEKIT_API_KEY", ""), s.get("LIVEKIT_API_SECRET", "")) for s in every_platform_settings()]
    return {key: secret for key, secret in pairs if key and secret}


def _room_key(room) -> str:
    return platform_settings_of(room).get("LIVEKIT_API_KEY") or current_app.config["LIVEKIT_API_KEY"]


def _signed_for_its_rooms(batch: Batch, key: str) -> Batch:
    """A LiveKit server's key speaks for its own rooms only (one institution's server cannot
    touch another institution's class)."""
    if len(_credentials()) < 2:
        return batch
    kept = Batch(refused=list(batch.refused))
    for event in batch.events:
        room = room_of_meeting(event.meeting_id)
        if room is not None and _room_key(room) != key:
            kept.refused.append(f"{event.kind} for room {quoted(event.meeting_id, 40)}: signed with another key")
        else:
            kept.events.append(event)
    return kept


@bp.post("/webhooks/livekit")
def events():
    credentials = _credentials()
    if not credentials:
        return refuse(503, "LiveKit is not configured", "no LIVEKIT_API_KEY/LIVEKIT_API_SECRET")
    raw = request.get_data(cache=True)
    authorization = request.headers.get("Authorization")
    key = callbacks.signing_key_of(authorization)
    if key not in credentials:  # unknown key: verify with any, to refuse with the same reason
        key = next(iter(credentials))
    try:
        event = callbacks.verify_and_parse(raw, authorization, key, credentials[key])
    except callbacks.CallbackAuthError as exc:
        return refuse(401, "invalid webhook signature", str(exc))
    except callbacks.CallbackFormatError as exc:
        return refuse(400, "malformed webhook body", str(exc))
    try:
        batch = Batch(callbacks.events_from_webhook(event, received_at_ms=to_ms(utcnow())))
    except callbacks.CallbackFormatError as exc:  # an authentic body, an event unusable
        batch = Batch(refused=[str(exc)])
    return accept(_signed_for_its_rooms(batch, key), f"livekit webhook {quoted(event.get('event'), 40)}")
