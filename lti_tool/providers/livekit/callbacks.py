"""Authenticate LiveKit's webhooks and turn them into `IncomingEvent`s.

LiveKit POSTs each event to the URLs in its `webhook:` settings (facts and vectors:
docs/reference/livekit.md §2): the body is protojson of a `WebhookEvent` (int64 values as
strings), `Content-Type: application/webhook+json`, and `Authorization: <JWT>` — the bare token,
HS256 with the API secret of the key named in `iss`, carrying `sha256` = base64(sha256(body)).
`verify_and_parse` checks the token and the body hash over the raw bytes, then parses them;
`events_from_webhook` maps the events the attendance service needs. Pure functions: no Flask,
no database. Deliveries are retried, so the same event (same `id`) may arrive more than once:
every field of its `IncomingEvent`s, hence the dedupe key, is the same each time.

The exceptions are the ones every provider's callbacks share (providers/callbacks.py).
"""
from __future__ import annotations

import math
import sys

import jwt

from ...attendance.events import (
    MEETING_ENDED,
    MEETING_STARTED,
    RECORDING_READY,
    USER_JOINED,
    USER_LEFT,
    IncomingEvent,
)
from ...logsafe import quoted
from ..callbacks import CallbackAuthError, CallbackFormatError, load_json
from .provider import participant_role

__all__ = ["WEBHOOK_KINDS", "CallbackAuthError", "CallbackFormatError", "events_from_webhook", "verify_and_parse"]

PROVIDER = "livekit"
CONTENT_TYPE = "application/webhook+json"

# LiveKit event names the attendance service cares about; every other event is ignored.
# participant_connection_aborted is a participant who left before their connection was
# established: a leave of that connection (ignored by the interval pairing if it never joined).
WEBHOOK_KINDS = {
    "room_started": MEETING_STARTED,
    "room_finished": MEETING_ENDED,
    "participant_joined": USER_JOINED,
    "participant_left": USER_LEFT,
    "participant_connection_aborted": USER_LEFT,
    "egress_ended": RECORDING_READY,
}
# Participants that are not people: recorders, stream inputs, bots.
_NOT_PEOPLE = {"EGRESS", "INGRESS", "AGENT"}
# An egress that ended with a file: complete, or stopped at its time limit (the file is kept).
_EGRESS_WITH_FILES = {"EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED"}


def _bare_token(authorization: str | None) -> str:
    token = (authorization or "").strip()
    scheme, _, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else token


def signing_key_of(authorization: str | None) -> str:
    """The API key a webhook's token names (`iss`), unverified: which secret to check it with."""
    try:
        claims = jwt.decode(_bare_token(authorization), options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return claims.get("iss") if isinstance(claims, dict) and isinstance(claims.get("iss"), str) else ""


def verify_and_parse(raw_body: bytes, authorization: str | None, api_key: str, api_secret: str) -> dict:
    """The webhook's event as a dict (protojson names: `event`, `room`, `participant`,
    `createdAt`, …), once its token checks out; raises `CallbackAuthError` otherwise.

    `authorization` is the Authorization header: LiveKit sends the bare JWT. A `Bearer ` prefix
    (added by a proxy, or by a sender imitating LiveKit's API calls) is stripped and the token
    accepted. Refused: no or empty header, no key/secret configured, a token signed with another
    secret or naming another key (`iss`), an expired token (`exp`, one minute of leeway), a token
    without `sha256`, and a body whose SHA-256 is not the token's — any byte changed. The hash is
    taken over the raw bytes as received; nothing is re-serialised before the check.
    Raises `CallbackFormatError` when an authentic body is not a WebhookEvent.
    """
    if not api_key or not api_secret:
        raise CallbackAuthError("LiveKit webhook refused: LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not set")
    token = _bare_token(authorization)
    if not token:
        raise CallbackAuthError("LiveKit webhook without an Authorization token")
    try:
        # Strict UTF-8 decoding gives back exactly these bytes when the receiver re-encodes them.
        body = bytes(raw_body).decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackAuthError("LiveKit webhook body is not UTF-8: it cannot be LiveKit's") from None
    # Imported here: livekit-api and protobuf cost every process 13 MB (provider.py's _LazyModule).
    from google.protobuf import json_format
    from livekit.api import TokenVerifier, WebhookReceiver

    try:
        WebhookReceiver(TokenVerifier(api_key, api_secret)).receive(body, token)
    except (json_format.ParseError, RecursionError) as exc:  # raised after the token and the hash checked out
        raise CallbackFormatError(f"LiveKit webhook body is not a WebhookEvent: {quoted(str(exc), 200)}") from None
    except Exception as exc:  # jwt errors, "hash mismatch", missing sha256, …
        raise CallbackAuthError(f"LiveKit webhook refused: {type(exc).__name__}: {quoted(str(exc), 200)}") from None
    event = load_json(body, "LiveKit webhook body")
    if not isinstance(event, dict):
        raise CallbackFormatError("LiveKit webhook body is not a JSON object")
    return event


def events_from_webhook(event, received_at_ms: int | None = None) -> list[IncomingEvent]:
    """The attendance events in one LiveKit webhook (`event`: the verified dict, or a
    `WebhookEvent` proto): room_started → MEETING_STARTED, room_finished → MEETING_ENDED,
    participant_joined → USER_JOINED, participant_left and participant_connection_aborted →
    USER_LEFT, egress_ended with files → RECORDING_READY; anything else → [].

    meeting_id = room name, run_id = room sid (one run of the room), occurred_at_ms = the
    event's `createdAt` (seconds) × 1000. People only: recorders, stream inputs and agents are
    skipped. For a participant: external_user_id = identity (the tool's user id), user_name,
    role (MODERATOR/VIEWER from the metadata the tool put in the token), payload
    `{"event", "event_id", "connection": participant sid}` — the sid tells apart two
    connections of one person (two tabs, a reconnect). Without `createdAt` (old servers) the
    time is the participant's `joinedAt` (joins) or the room's creation (room_started), else
    `received_at_ms`. Raises `CallbackFormatError` when a wanted event lacks its room or ids.
    """
    if not isinstance(event, dict) and "google.protobuf" in sys.modules:
        from google.protobuf import json_format
        from google.protobuf.message import Message

        if isinstance(event, Message):
            event = json_format.MessageToDict(event)
    if not isinstance(event, dict):
        raise CallbackFormatError("LiveKit webhook event is not an object")
    name = event.get("event")
    kind = WEBHOOK_KINDS.get(name)
    if kind is None:
        return []
    room = _object_or_empty(event.get("room"), f"{name} room")
    payload = {"event": name, "event_id": _optional_text(event.get("id")) or ""}

    if kind == RECORDING_READY:
        return _recording_events(event, room, payload, received_at_ms)

    common = {
        "provider": PROVIDER,
        "source": "webhook",
        "kind": kind,
        "meeting_id": _text(room.get("name"), f"{name} room.name"),
        "run_id": _text(room.get("sid"), f"{name} room.sid"),
    }
    if kind in (MEETING_STARTED, MEETING_ENDED):
        fallback = _millis_of(room, "creationTimeMs", "creationTime") if kind == MEETING_STARTED else None
        occurred = _occurred_at(event, fallback, received_at_ms, name)
        return [IncomingEvent(**common, occurred_at_ms=occurred, payload=payload)]

    participant = _object_or_empty(event.get("participant"), f"{name} participant")
    if _get(participant, "kind") in _NOT_PEOPLE:
        return []
    fallback = _millis_of(participant, "joinedAtMs", "joinedAt") if kind == USER_JOINED else None
    return [
        IncomingEvent(
            **common,
            occurred_at_ms=_occurred_at(event, fallback, received_at_ms, name),
            external_user_id=_text(participant.get("identity"), f"{name} participant.identity"),
            user_name=_optional_text(participant.get("name")) or "",
            role=participant_role(_optional_text(participant.get("metadata")) or ""),
            payload={**payload, "connection": _text(participant.get("sid"), f"{name} participant.sid")},
        )
    ]


def _recording_events(event: dict, room: dict, payload: dict, received_at_ms: int | None) -> list[IncomingEvent]:
    egress = _object_or_empty(_get(event, "egressInfo"), "egress_ended egressInfo")
    if _get(egress, "status") not in _EGRESS_WITH_FILES:
        return []
    egress_id = _text(_get(egress, "egressId"), "egress_ended egressInfo.egressId")
    files = [
        {
            "filename": _get(item, "filename") or "",
            "location": _get(item, "location") or "",
            # duration in nanoseconds, size in bytes (int64: strings in protojson)
            "duration_ms": (_whole(_get(item, "duration"), "egress file duration") or 0) // 1_000_000,
            "size": _whole(_get(item, "size"), "egress file size") or 0,
        }
        for item in (_get(egress, "fileResults") or [])
        if isinstance(item, dict)
    ]
    return [
        IncomingEvent(
            provider=PROVIDER,
            source="webhook",
            kind=RECORDING_READY,
            meeting_id=_text(room.get("name") or _get(egress, "roomName"), "egress_ended room name"),
            run_id=_text(room.get("sid") or _get(egress, "roomId"), "egress_ended room sid"),
            occurred_at_ms=_occurred_at(event, None, received_at_ms, "egress_ended"),
            payload={**payload, "record_id": egress_id, "status": _get(egress, "status"), "files": files},
        )
    ]


# -- small helpers -----------------------------------------------------------------------------


def _get(obj: dict, camel: str):
    """A field by its protojson name, or by its proto (snake_case) name."""
    if camel in obj:
        return obj[camel]
    return obj.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def _occurred_at(event: dict, fallback: int | None, received_at_ms: int | None, what: str) -> int:
    created = _whole(_get(event, "createdAt"), f"{what} createdAt")
    if created:
        return created * 1000
    if fallback:
        return fallback
    if received_at_ms is not None:
        return received_at_ms
    raise CallbackFormatError(f"{what} has no createdAt")


def _millis_of(obj: dict, ms_field: str, seconds_field: str) -> int | None:
    millis = _whole(_get(obj, ms_field), ms_field)
    if millis:
        return millis
    seconds = _whole(_get(obj, seconds_field), seconds_field)
    return seconds * 1000 if seconds else None


def _whole(value, what: str) -> int | None:
    """An int64 as protojson writes it (a digit string) or as a number; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CallbackFormatError(f"{what} is not a number: {quoted(value, 40)}")
    integral = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if not (integral or (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20)):
        raise CallbackFormatError(f"{what} is not a number: {quoted(value, 40)}")
    number = int(value)
    if number < 0:
        raise CallbackFormatError(f"{what} is negative: {quoted(value, 40)}")
    return number


def _object_or_empty(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CallbackFormatError(f"{what} is not an object")
    return value


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CallbackFormatError(f"{what} is missing or not a string")
    return value


def _optional_text(value) -> str | None:
    return value if isinstance(value, str) and value else None
