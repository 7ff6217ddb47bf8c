"""Authenticate BigBlueButton's callbacks and turn them into `IncomingEvent`s.

BBB reports a meeting through four channels, each authenticated its own way (facts and vectors:
docs/reference/bigbluebutton.md §5): bbb-webhooks (a checksum over URL and body, or the shared
secret as a bearer token), the analytics callback (a Bearer JWT, HS512, that does not cover the
body), the recording-ready callback (an HS256 JWT in `signed_parameters`) and the end-meeting
callback (unsigned: the tool signs the URL it registers, see `lti_tool.webhooks.signing`).
Pure functions: no Flask, no database. Views verify first, then parse, then hand the events on.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import jwt

from ...attendance.events import (
    END_CALLBACK,
    MEETING_ENDED,
    MEETING_STARTED,
    RECORDING_READY,
    USER_JOINED,
    USER_LEFT,
    Batch,
    EngagementReport,
    IncomingEvent,
)
from ...logsafe import quoted
from ..callbacks import CallbackAuthError, CallbackFormatError, load_json
from .runs import create_time_of

PROVIDER = "bbb"

# The webhook checksum's hash is told by its length, as bbb-web does for API calls.
WEBHOOK_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
ALGORITHM_BY_LENGTH = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}

# The names `verify_webhook` answers with: which bbb-webhooks delivery authenticated.
WEBHOOK_V3_4 = "v3.4"  # H(registered URL + raw body + secret): binds the body (v3.4.0+)
WEBHOOK_V3_0_TO_3_3 = "v3.0-3.3"  # H(registered URL + "{}" + secret): does not bind the body (off by default)
WEBHOOK_V2 = "v2"  # sha1(registered URL + JSON {event, timestamp, domain} + secret)
WEBHOOK_BEARER = "bearer"  # bbb.auth2_0: "Authorization: Bearer <shared secret>", no checksum

# bbb-webhooks event ids the attendance service cares about; every other id is ignored.
WEBHOOK_KINDS = {
    "meeting-created": MEETING_STARTED,
    "meeting-ended": MEETING_ENDED,
    "user-joined": USER_JOINED,
    "user-left": USER_LEFT,
    "rap-publish-ended": RECORDING_READY,
    "rap-published": RECORDING_READY,
}

# Left out of stored payloads: meeting passwords, and metadata (it carries the tool's signed
# callback URLs, which work as credentials).
_PAYLOAD_SECRETS = frozenset({"moderator-pass", "viewer-pass", "metadata"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_warnings_lock = threading.RLock()


# -- bbb-webhooks ------------------------------------------------------------------------------


def verify_webhook(
    registered_url: str,
    raw_body: bytes,
    checksum: str | None,
    authorization: str | None,
    secret: str,
    algorithms=WEBHOOK_ALGORITHMS,
    *,
    accept_legacy_checksum: bool = False,
) -> str | None:
    """Which bbb-webhooks delivery authenticated this POST ("v3.4", "v2", "bearer", or
    "v3.0-3.3" when allowed), or None when none did.

    `registered_url` is the callbackURL exactly as the tool registered it with `hooks/create`
    (without the `checksum` parameter bbb-webhooks appended); `checksum` is that parameter's
    value, `authorization` the Authorization header. The hash is chosen by the checksum's length
    and must be in `algorithms`.

    Always accepted: v3.4+ (the checksum covers URL and raw body), v2 of BBB 2.x (sha1 over a
    JSON rebuilt from the form fields: it covers the event, so it binds the body too) and
    `Authorization: Bearer <secret>` (whoever sends it holds the secret itself).

    `accept_legacy_checksum` (default False) also accepts v3.0–v3.3, which hash the URL with "{}"
    instead of the body. That checksum is the same for every event of a hook: it proves the
    sender once knew the secret, but anyone who has seen one delivery URL (a proxy log, say)
    can post any body with it. Only for servers that cannot be upgraded to bbb-webhooks ≥ 3.4.0.
    """
    if not secret:
        return None
    if checksum:
        variant = _checksum_variant(registered_url, raw_body, checksum, secret, algorithms, accept_legacy_checksum)
        if variant:
            return variant
    if authorization and _bearer_matches(authorization, secret):
        return WEBHOOK_BEARER
    return None


def legacy_checksum_matches(
    registered_url: str, checksum: str | None, secret: str, algorithms=WEBHOOK_ALGORITHMS
) -> bool:
    """True when `checksum` is this hook's v3.0–v3.3 checksum: lets a refusal say why."""
    algorithm = ALGORITHM_BY_LENGTH.get(len(checksum or ""))
    if not checksum or not secret or algorithm not in algorithms:
        return False
    return _digest_matches(algorithm, registered_url.encode("utf-8") + b"{}" + secret.encode("utf-8"), checksum)


def _checksum_variant(registered_url, raw_body, checksum, secret, algorithms, accept_legacy_checksum) -> str | None:
    algorithm = ALGORITHM_BY_LENGTH.get(len(checksum))
    if algorithm is None or algorithm not in algorithms:
        return None
    url, key = registered_url.encode("utf-8"), secret.encode("utf-8")

    def matches(signed: bytes) -> bool:
        return _digest_matches(algorithm, url + signed + key, checksum)

    if matches(bytes(raw_body)):
        return WEBHOOK_V3_4
    if algorithm == "sha1":
        signed = _v2_signed_json(raw_body)
        if signed is not None and matches(signed):
            return WEBHOOK_V2
    if accept_legacy_checksum and matches(b"{}"):
        return WEBHOOK_V3_0_TO_3_3
    return None


def _digest_matches(algorithm: str, signed: bytes, checksum: str) -> bool:
    # Bytes on both sides: compare_digest refuses a str with non-ASCII characters.
    expected = hashlib.new(algorithm, signed).hexdigest().encode()
    return hmac.compare_digest(expected, checksum.lower().encode("utf-8", "replace"))


def _v2_signed_json(raw_body: bytes) -> bytes | None:
    """What bbb-webhooks 2.x hashed: JSON.stringify({event, timestamp, domain}) — that field
    order, no spaces, `event` the JSON text as a string, `timestamp` a number."""
    try:
        fields = _form_fields(raw_body)
        event, timestamp, domain = fields["event"], fields["timestamp"], fields["domain"]
    except (CallbackFormatError, KeyError):
        return None
    if not timestamp.isascii() or not timestamp.isdigit():
        return None
    signed = {"event": event, "timestamp": int(timestamp), "domain": domain}
    # ensure_ascii=False escapes exactly what JSON.stringify escapes (quote, backslash, controls).
    return json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bearer_matches(authorization: str, secret: str) -> bool:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), secret.encode("utf-8"))


def parse_webhook_batch(raw_body: bytes) -> Batch:
    """The attendance events in one bbb-webhooks POST, in the order sent, and a reason for each
    wanted event that could not be read.

    The body is form-encoded; its `event` field is a JSON array of events (several when the
    server batches). meeting-created, user-joined, user-left, meeting-ended and
    rap-publish-ended / rap-published become events; every other id is skipped, and so is a
    rap-publish-ended that reports `success: false`. The hook receives every meeting of the
    server, other applications' too, so one malformed event (missing ids, bad `ts`) is refused
    on its own. Raises `CallbackFormatError` only when the body as a whole is unreadable (no
    `event` field, not JSON, not an array of events).
    """
    fields = _form_fields(raw_body)
    if "event" not in fields:
        raise CallbackFormatError("webhook body has no 'event' field")
    items = load_json(fields["event"], "webhook 'event' field")
    if isinstance(items, dict):  # tolerate a lone event object
        items = [items]
    if not isinstance(items, list):
        raise CallbackFormatError("webhook 'event' field is not a JSON array of events")
    batch = Batch()
    for position, item in enumerate(items):
        try:
            event = _webhook_event(item, f"event[{position}]")
        except CallbackFormatError as exc:
            batch.refused.append(str(exc))
            continue
        if event is not None:
            batch.events.append(event)
    return batch


def parse_webhook(raw_body: bytes) -> list[IncomingEvent]:
    """`parse_webhook_batch`, strictly: raises `CallbackFormatError` for the first bad event."""
    return parse_webhook_batch(raw_body).strictly(CallbackFormatError)


def _webhook_event(item, where: str) -> IncomingEvent | None:
    data = item.get("data") if isinstance(item, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise CallbackFormatError(f"{where} has no data.id")
    event_id = data["id"]
    kind = WEBHOOK_KINDS.get(event_id)
    if kind is None:
        return None
    attributes = _object(data.get("attributes"), f"{where} ({event_id}) attributes")
    if kind == RECORDING_READY and attributes.get("success") is False:
        return None
    meeting = _object(attributes.get("meeting"), f"{where} ({event_id}) attributes.meeting")
    run_id = _text(meeting.get("internal-meeting-id"), f"{where} ({event_id}) internal-meeting-id")
    recording = attributes.get("recording") if isinstance(attributes.get("recording"), dict) else {}
    meeting_id = meeting.get("external-meeting-id")
    if not meeting_id and kind == RECORDING_READY and isinstance(recording.get("metadata"), dict):
        # bbb-webhooks loses the id mapping for old meetings; the recording's metadata keeps it.
        meeting_id = recording["metadata"].get("meetingId")
    meeting_id = _text(meeting_id, f"{where} ({event_id}) external-meeting-id")
    timestamp = data.get("event").get("ts") if isinstance(data.get("event"), dict) else None
    occurred_at_ms = _millis(timestamp, f"{where} ({event_id}) event.ts")
    common = {"provider": PROVIDER, "source": "webhook", "kind": kind, "meeting_id": meeting_id, "run_id": run_id,
              "run_started_at_ms": create_time_of(run_id)}

    if kind == MEETING_STARTED:
        if meeting.get("create-time") is not None:
            occurred_at_ms = _millis(meeting["create-time"], f"{where} ({event_id}) create-time")
        return IncomingEvent(**common, occurred_at_ms=occurred_at_ms, payload=_small(data))
    if kind in (USER_JOINED, USER_LEFT):
        user = _object(attributes.get("user"), f"{where} ({event_id}) attributes.user")
        if not (user.get("external-user-id") or user.get("internal-user-id")):
            raise CallbackFormatError(f"{where} ({event_id}) user has neither external- nor internal-user-id")
        return IncomingEvent(
            **common,
            occurred_at_ms=occurred_at_ms,
            # bbb-webhooks sends "" when it lost the user mapping; the payload keeps the internal id.
            external_user_id=_optional_text(user.get("external-user-id")),
            user_name=_optional_text(user.get("name")) or "",
            role=_optional_text(user.get("role")) or "",
            # BBB's id of this connection: two tabs of one person are two, each joins and leaves.
            connection=_optional_text(user.get("internal-user-id")) or "",
            payload=_small(data),
        )
    if kind == RECORDING_READY:
        record_id = _text(attributes.get("record-id"), f"{where} ({event_id}) record-id")
        payload = {
            "event": event_id,
            "record_id": record_id,
            "format": attributes.get("workflow") or attributes.get("format"),
            "recording": _small(recording) if recording else None,
        }
        return IncomingEvent(
            **common, occurred_at_ms=occurred_at_ms, payload={k: v for k, v in payload.items() if v is not None}
        )
    return IncomingEvent(**common, occurred_at_ms=occurred_at_ms, payload=_small(data))


def _form_fields(raw_body: bytes) -> dict[str, str]:
    """The form fields, each exactly once (a repeated field would let the checked and the parsed
    values differ)."""
    try:
        text = bytes(raw_body).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise CallbackFormatError(f"webhook body is not UTF-8 form data: {exc}") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise CallbackFormatError(f"webhook body repeats the field {quoted(name, 40)}")
        fields[name] = value
    return fields


def _small(value):
    """A copy without passwords and metadata, to store as the event's payload."""
    if isinstance(value, dict):
        return {k: _small(v) for k, v in value.items() if k not in _PAYLOAD_SECRETS}
    if isinstance(value, list):
        return [_small(v) for v in value]
    return value


# -- analytics callback ------------------------------------------------------------------------


def verify_analytics(authorization: str | None, secret: str) -> bool:
    """True when `authorization` is `Bearer <JWT>` signed HS512 with `secret`, with an `exp`
    that has not passed. The token does not cover the body: check the body's meeting ids
    against what the tool knows."""
    if not authorization or not secret:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        with _short_hmac_keys_allowed():
            jwt.decode(token.strip(), secret, algorithms=["HS512"], options={"require": ["exp"]})
    except jwt.InvalidTokenError:
        return False
    return True


def parse_analytics_batch(body: dict) -> Batch:
    """The analytics callback's JSON as events: MEETING_STARTED at `data.start`, for each
    attendee with an `ext_user_id` one USER_JOINED per `joins[i]` and one USER_LEFT per
    `leaves[i]` (from `sessions[].joins/lefts` when `joins` is absent), then MEETING_ENDED at
    `data.finish` (left out when `finish` is empty).

    An attendee whose entry is malformed is refused whole (half of their joins and leaves would
    give wrong intervals), with a reason in `refused`; so are a bad start or finish. Raises
    `CallbackFormatError` when the body itself is unusable (not an object, no meeting ids, no
    `data`, attendees not a list)."""
    if not isinstance(body, dict):
        raise CallbackFormatError("analytics body is not a JSON object")
    meeting_id = _text(body.get("meeting_id"), "analytics meeting_id")
    run_id = _text(body.get("internal_meeting_id"), "analytics internal_meeting_id")
    data = _object(body.get("data"), "analytics data")
    attendees = _list_or_empty(data.get("attendees"), "analytics data.attendees")
    common = {"provider": PROVIDER, "source": "analytics", "meeting_id": meeting_id, "run_id": run_id,
              "run_started_at_ms": create_time_of(run_id)}
    meeting_payload = {"duration": data.get("duration")} if data.get("duration") is not None else {}

    batch = Batch()

    def add(make_events) -> None:
        try:
            batch.events.extend(make_events())
        except CallbackFormatError as exc:
            batch.refused.append(str(exc))

    add(lambda: [IncomingEvent(**common, kind=MEETING_STARTED, payload=dict(meeting_payload),
                               occurred_at_ms=_iso_millis(data.get("start"), "analytics data.start"))])
    for position, attendee in enumerate(attendees):
        add(functools.partial(_attendee_events, attendee, f"analytics attendees[{position}]", common))
    if data.get("finish") not in (None, ""):
        add(lambda: [IncomingEvent(**common, kind=MEETING_ENDED, payload=dict(meeting_payload),
                                   occurred_at_ms=_iso_millis(data["finish"], "analytics data.finish"))])
    return batch


def parse_analytics(body: dict) -> list[IncomingEvent]:
    """`parse_analytics_batch`, strictly: raises `CallbackFormatError` for the first bad part."""
    return parse_analytics_batch(body).strictly(CallbackFormatError)


def _attendee_events(attendee, where: str, common: dict) -> list[IncomingEvent]:
    attendee = _object(attendee, where)
    user_id = attendee.get("ext_user_id")
    if not user_id:
        return []
    person = {
        "external_user_id": _text(user_id, f"{where}.ext_user_id"),
        "user_name": _optional_text(attendee.get("name")) or "",
        "role": "MODERATOR" if attendee.get("moderator") is True else "VIEWER",
        "payload": {k: attendee[k] for k in ("duration", "engagement") if attendee.get(k) is not None},
    }
    joins, leaves = _attendance_times(attendee, where)
    events = []
    for kind, times, name in ((USER_JOINED, joins, "joins"), (USER_LEFT, leaves, "leaves")):
        for index, value in enumerate(times):
            millis = _iso_millis(value, f"{where}.{name}[{index}]")
            events.append(IncomingEvent(**common, kind=kind, occurred_at_ms=millis, **person))
    return events


def _attendance_times(attendee: dict, where: str) -> tuple[list, list]:
    if "joins" in attendee:
        return (_list_or_empty(attendee.get("joins"), f"{where}.joins"),
                _list_or_empty(attendee.get("leaves"), f"{where}.leaves"))
    joins, leaves = [], []
    for index, session in enumerate(_list_or_empty(attendee.get("sessions"), f"{where}.sessions")):
        session = _object(session, f"{where}.sessions[{index}]")
        joins += [_session_time(e) for e in _list_or_empty(session.get("joins"), f"{where}.sessions[{index}].joins")]
        leaves += [_session_time(e) for e in _list_or_empty(session.get("lefts"), f"{where}.sessions[{index}].lefts")]
    return joins, leaves


def _session_time(entry):
    return entry.get("timestamp") if isinstance(entry, dict) else entry


# The analytics callback's `engagement` fields (bbbevents' names, per attendee) → the tool's
# measures. `talks` (how many times the microphone went active) is not kept: talk_time says more.
ENGAGEMENT_FIELDS = {"talk_time": "talk_seconds", "chats": "chat_messages", "raisehand": "raised_hands",
                     "poll_votes": "poll_votes", "emojis": "reactions"}
# Larger values are broken or forged: a week of talking, or 100 000 of anything in one class.
ENGAGEMENT_LIMITS = {"talk_seconds": 7 * 24 * 3600}
ENGAGEMENT_COUNT_LIMIT = 100_000


def parse_analytics_engagement(body: dict) -> tuple[list[EngagementReport], list[str]]:
    """Each attendee's `engagement` in the analytics callback (a body `parse_analytics_batch`
    accepted), and a reason for each attendee whose engagement could not be read.

    A field BBB did not send is None (not reported); one with a value that is not a whole,
    non-negative number in range refuses that attendee's engagement whole (half of it would
    tell a wrong story), never their joins and leaves. An attendee without `engagement` or
    without an `ext_user_id` gives nothing."""
    meeting_id = _text(body.get("meeting_id"), "analytics meeting_id")
    run_id = _text(body.get("internal_meeting_id"), "analytics internal_meeting_id")
    attendees = _list_or_empty(_object(body.get("data"), "analytics data").get("attendees"), "analytics attendees")
    reports, refused = [], []
    for position, attendee in enumerate(attendees):
        if not isinstance(attendee, dict) or attendee.get("engagement") is None:
            continue
        user_id = attendee.get("ext_user_id")
        if not isinstance(user_id, str) or not user_id:
            continue
        try:
            measures = _engagement_measures(attendee["engagement"], f"analytics attendees[{position}].engagement")
        except CallbackFormatError as exc:
            refused.append(f"engagement of {quoted(user_id, 40)}: {exc}")
            continue
        reports.append(EngagementReport(provider=PROVIDER, source="analytics", meeting_id=meeting_id,
                                        run_id=run_id, external_user_id=user_id, **measures))
    return reports, refused


def _engagement_measures(engagement, where: str) -> dict[str, int | None]:
    engagement = _object(engagement, where)
    measures = {}
    for field_name, measure in ENGAGEMENT_FIELDS.items():
        value = engagement.get(field_name)
        if value is None:
            measures[measure] = None
            continue
        if isinstance(value, float) and math.isfinite(value) and measure == "talk_seconds":
            value = round(value)  # seconds of talk may come with a fraction
        limit = ENGAGEMENT_LIMITS.get(measure, ENGAGEMENT_COUNT_LIMIT)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise CallbackFormatError(f"{where}.{field_name} is not a whole number from 0 to {limit}: "
                                      f"{quoted(value, 40)}")
        measures[measure] = value
    return measures


# -- recording-ready and end-meeting callbacks -------------------------------------------------


def verify_recording_ready(signed_parameters: str, secret: str) -> dict:
    """The claims of the recording-ready callback's `signed_parameters` JWT (HS256 with the
    shared secret; BBB sends no exp/iat, so there is no expiry to check — process it
    idempotently by record_id). Raises `CallbackAuthError` on a bad signature, another
    algorithm, or a missing `meeting_id`/`record_id`."""
    if not signed_parameters or not secret:
        raise CallbackAuthError("recording-ready callback without signed_parameters")
    try:
        with _short_hmac_keys_allowed():
            claims = jwt.decode(signed_parameters, secret, algorithms=["HS256"])
    except jwt.InvalidTokenError as exc:
        raise CallbackAuthError(f"recording-ready token rejected: {quoted(str(exc), 200)}") from None
    for name in ("meeting_id", "record_id"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise CallbackAuthError(f"recording-ready token has no {name}")
    return claims


def recording_ready_event(claims: dict, now_ms: int | None = None) -> IncomingEvent:
    """RECORDING_READY from verified recording-ready claims. BBB gives no time: `now_ms`
    (default: now). The record id is the meeting run's internal id, hence the run id."""
    return IncomingEvent(
        provider=PROVIDER,
        source="recording_ready",
        kind=RECORDING_READY,
        meeting_id=claims["meeting_id"],
        run_id=claims["record_id"],
        occurred_at_ms=_now_ms() if now_ms is None else now_ms,
        payload={"record_id": claims["record_id"]},
    )


def end_callback_event(
    meeting_id: str, internal_meeting_id: str, now_ms: int, recording_marks: bool | None = None
) -> IncomingEvent:
    """MEETING_ENDED for BBB's end-meeting callback (a GET of the URL the tool registered, with
    `recordingmarks=true|false`). It carries no time and no internal id: the caller supplies the
    run it knows and the time it received the call."""
    payload = {} if recording_marks is None else {"recording_marks": recording_marks}
    return IncomingEvent(
        provider=PROVIDER,
        source=END_CALLBACK,
        kind=MEETING_ENDED,
        meeting_id=meeting_id,
        run_id=internal_meeting_id,
        run_started_at_ms=create_time_of(internal_meeting_id),
        occurred_at_ms=now_ms,
        payload=payload,
    )


# -- small helpers -----------------------------------------------------------------------------


@contextmanager
def _short_hmac_keys_allowed():
    """PyJWT warns (InsecureKeyLengthWarning) when a key is shorter than the hash (a 32-character
    BBB secret with HS512): the shared secret is the server's choice, not the tool's. The lock
    keeps concurrent requests from interleaving catch_warnings' save and restore of the global
    warning filters."""
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise CallbackFormatError(f"{what} is missing or not an object")
    return value


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CallbackFormatError(f"{what} is missing or not a string")
    return value


def _list_or_empty(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CallbackFormatError(f"{what} is not a list")
    return value


def _optional_text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _millis(value, what: str) -> int:
    """A provider timestamp in milliseconds: an integer, an integral float or a digit string."""
    if isinstance(value, bool):
        raise CallbackFormatError(f"{what} is not a number: {quoted(value, 40)}")
    if isinstance(value, int):
        millis = value
    elif (isinstance(value, float) and math.isfinite(value) and value.is_integer()) or (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20
    ):
        millis = int(value)
    else:
        raise CallbackFormatError(f"{what} is not a number: {quoted(value, 40)}")
    if millis < 0:
        raise CallbackFormatError(f"{what} is negative: {quoted(value, 40)}")
    return millis


def _iso_millis(value, what: str) -> int:
    """ISO 8601 (as bbbevents writes it, `2024-05-09T13:35:28.000+00:00`) → ms; no offset = UTC."""
    if not isinstance(value, str) or not value:
        raise CallbackFormatError(f"{what} is missing or not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CallbackFormatError(f"{what} is not an ISO 8601 time: {quoted(value, 40)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MILLISECOND


def _now_ms() -> int:
    return int(time.time() * 1000)
