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
from ...models import utcnow
from ...webhooks import accept, refuse
from . import callbacks

bp = Blueprint("livekit", __name__)


@bp.post("/webhooks/livekit")
def events():
    key, secret = current_app.config["LIVEKIT_API_KEY"], current_app.config["LIVEKIT_API_SECRET"]
    if not key or not secret:
        return refuse(503, "LiveKit is not configured", "no LIVEKIT_API_KEY/LIVEKIT_API_SECRET")
    raw = request.get_data(cache=True)
    try:
        event = callbacks.verify_and_parse(raw, request.headers.get("Authorization"), key, secret)
    except callbacks.CallbackAuthError as exc:
        return refuse(401, "invalid webhook signature", str(exc))
    except callbacks.CallbackFormatError as exc:
        return refuse(400, "malformed webhook body", str(exc))
    try:
        batch = Batch(callbacks.events_from_webhook(event, received_at_ms=to_ms(utcnow())))
    except callbacks.CallbackFormatError as exc:  # an authentic body, an event unusable
        batch = Batch(refused=[str(exc)])
    return accept(batch, f"livekit webhook {quoted(event.get('event'), 40)}")
