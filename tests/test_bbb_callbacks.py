"""BigBlueButton callbacks: every shared vector authenticates and parses, forgeries do not, and
the fake BBB's callbacks (sent to a tiny receiving app over real HTTP) pass the same checks."""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote_plus

import jwt
import pytest
from flask import Flask, request

from lti_tool.attendance.events import (
    MEETING_ENDED,
    MEETING_STARTED,
    RECORDING_READY,
    USER_JOINED,
    USER_LEFT,
)
from lti_tool.providers.bbb.callbacks import (
    CallbackAuthError,
    CallbackFormatError,
    end_callback_event,
    legacy_checksum_matches,
    parse_analytics,
    parse_webhook,
    recording_ready_event,
    verify_analytics,
    verify_recording_ready,
    verify_webhook,
)
from lti_tool.providers.bbb.provider import BigBlueButtonClient
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import ServedApp

FIXTURES = Path(__file__).parent / "fixtures" / "bbb"
WEBHOOKS = json.loads((FIXTURES / "bbb_webhooks.json").read_text())
CALLBACKS = json.loads((FIXTURES / "bbb_callbacks.json").read_text())
SECRET = WEBHOOKS["secret"]
BODIES = WEBHOOKS["callback_bodies"]
REGISTERED = "https://tool.example.com/bbb/webhook"
INTERNAL_ID = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123"
ANALYTICS = CALLBACKS["analytics"]
RECORDING_READY_VECTOR = CALLBACKS["recording_ready"]


def _vectors():
    """(id, body, checksum, variant) for every delivery in the webhook fixture."""
    for body in BODIES:
        yield pytest.param(body["body"], body["checksum"], "v3.4", id=body["id"])
        legacy = body["legacy"]["bbb_webhooks_v3_0_to_v3_3"]
        yield pytest.param(legacy["body"], legacy["checksum"], "v3.0-3.3", id=body["id"] + ".v3.0-3.3")
        if body["legacy"]["bbb_webhooks_v2"]:
            v2 = body["legacy"]["bbb_webhooks_v2"]
            yield pytest.param(v2["body"], v2["checksum_sha1"], "v2", id=body["id"] + ".v2")


VECTORS = list(_vectors())
LEGACY_V3_0 = [v for v in VECTORS if v.values[2] == "v3.0-3.3"]
V2 = [v for v in VECTORS if v.values[2] == "v2"]
# The negative tests below also accept the 3.0–3.3 checksum, so that its vectors fail for the
# reason each test names rather than merely for being legacy.
LEGACY_ON = {"accept_legacy_checksum": True}


def body_of(event_id: str, algorithm: str = "sha1") -> dict:
    return next(b for b in BODIES if b["event_id"] == event_id and b["algorithm"] == algorithm)


def form_body(events, domain="bbb.example.com", timestamp="1715265999999") -> bytes:
    event = json.dumps(events, separators=(",", ":"))
    return f"domain={quote_plus(domain)}&event={quote_plus(event)}&timestamp={timestamp}".encode()


def decoded_event(event_id: str) -> dict:
    return json.loads(json.dumps(body_of(event_id)["decoded"]["event"][0]))


# -- webhook authentication --------------------------------------------------------------------


@pytest.mark.parametrize("body, checksum, variant", VECTORS)
def test_every_fixture_delivery_authenticates_as_its_variant(body, checksum, variant):
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET, **LEGACY_ON) == variant


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_longer_checksums_are_chosen_by_length(algorithm):
    body = body_of("user-joined")["body"].encode()
    checksum = hashlib.new(algorithm, REGISTERED.encode() + body + SECRET.encode()).hexdigest()
    assert verify_webhook(REGISTERED, body, checksum, None, SECRET) == "v3.4"
    assert verify_webhook(REGISTERED, body, checksum.upper(), None, SECRET) == "v3.4"


@pytest.mark.parametrize("event", BODIES, ids=lambda b: b["id"])
def test_bearer_secret_authenticates_without_a_checksum(event):
    body = event["body"].encode()
    assert verify_webhook(REGISTERED, body, None, f"Bearer {SECRET}", SECRET) == "bearer"
    assert verify_webhook(REGISTERED, body, None, f"bearer  {SECRET} ", SECRET) == "bearer"


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", f"Basic {SECRET}", f"Bearer{SECRET}", "Bearer ", SECRET, ""]
)
def test_bearer_with_anything_but_the_secret_fails(authorization):
    assert verify_webhook(REGISTERED, body_of("user-joined")["body"].encode(), None, authorization, SECRET) is None


@pytest.mark.parametrize("event", BODIES, ids=lambda b: b["id"])
def test_a_changed_body_fails_the_current_checksum(event):
    tampered = event["body"].replace("lti-c42-r7", "lti-c42-r8").encode()
    assert verify_webhook(REGISTERED, tampered, event["checksum"], None, SECRET) is None


@pytest.mark.parametrize("event", [b for b in BODIES if b["legacy"]["bbb_webhooks_v2"]], ids=lambda b: b["id"])
def test_a_changed_body_fails_the_v2_checksum(event):
    v2 = event["legacy"]["bbb_webhooks_v2"]
    tampered = v2["body"].replace("1715265999999", "1715265999998").encode()
    assert verify_webhook(REGISTERED, tampered, v2["checksum_sha1"], None, SECRET) is None


def test_legacy_v3_0_checksum_does_not_bind_the_body_which_is_why_it_is_off_by_default():
    legacy = body_of("user-joined")["legacy"]["bbb_webhooks_v3_0_to_v3_3"]
    forged = form_body([decoded_event("user-left")])
    assert verify_webhook(REGISTERED, forged, legacy["checksum"], None, SECRET) is None
    assert verify_webhook(REGISTERED, forged, legacy["checksum"], None, SECRET, **LEGACY_ON) == "v3.0-3.3"
    assert legacy_checksum_matches(REGISTERED, legacy["checksum"], SECRET)
    assert not legacy_checksum_matches(REGISTERED, body_of("user-joined")["checksum"], SECRET)
    assert not legacy_checksum_matches(REGISTERED + "/", legacy["checksum"], SECRET)


@pytest.mark.parametrize("body, checksum, variant", VECTORS)
def test_wrong_secret_fails(body, checksum, variant):
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET[:-1] + "7", **LEGACY_ON) is None
    assert verify_webhook(REGISTERED, body.encode(), checksum, f"Bearer {SECRET}", "", **LEGACY_ON) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://tool.example.com/bbb/webhook",
        "https://tool.example.com/bbb/webhook/",
        "https://tool.example.com/bbb/webhook?checksum=x",
        "https://tool.example.com/bbb/other",
    ],
)
@pytest.mark.parametrize("body, checksum, variant", VECTORS)
def test_another_url_than_the_registered_one_fails(url, body, checksum, variant):
    assert verify_webhook(url, body.encode(), checksum, None, SECRET, **LEGACY_ON) is None


@pytest.mark.parametrize("body, checksum, variant", VECTORS)
def test_an_algorithm_not_allowed_fails(body, checksum, variant):
    algorithms = ("sha1", "sha256", "sha384", "sha512")
    others = tuple(a for a in algorithms if len(hashlib.new(a).hexdigest()) != len(checksum))
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET, others, **LEGACY_ON) is None
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET, algorithms=others, **LEGACY_ON) is None


@pytest.mark.parametrize("checksum", [None, "", "0" * 40, "abc", "z" * 64, "413ea424c06ca5591717d08c55c0cfbaf2d74b5"])
def test_missing_or_malformed_checksum_fails(checksum):
    body = body_of("meeting-created")["body"].encode()
    assert verify_webhook(REGISTERED, body, checksum, None, SECRET, **LEGACY_ON) is None


@pytest.mark.parametrize("body, checksum, variant", LEGACY_V3_0)
def test_legacy_3_0_deliveries_fail_by_default(body, checksum, variant):
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET) is None
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET, accept_legacy_checksum=False) is None


@pytest.mark.parametrize("body, checksum, variant", V2)
def test_v2_deliveries_bind_the_body_and_pass_by_default(body, checksum, variant):
    assert verify_webhook(REGISTERED, body.encode(), checksum, None, SECRET) == "v2"


@pytest.mark.parametrize("event", BODIES, ids=lambda b: b["id"])
def test_current_deliveries_and_bearer_pass_by_default(event):
    body = event["body"].encode()
    assert verify_webhook(REGISTERED, body, event["checksum"], None, SECRET) == "v3.4"
    assert verify_webhook(REGISTERED, body, None, f"Bearer {SECRET}", SECRET) == "bearer"


# -- webhook parsing ---------------------------------------------------------------------------

EXPECTED = {
    # event id: (kind, occurred_at_ms, external user, name, role)
    "meeting-created": (MEETING_STARTED, 1715261728123, None, "", ""),  # create-time, not event.ts
    "user-joined": (USER_JOINED, 1715261730000, "lti-user-1001", "Alice Teacher", "MODERATOR"),
    "user-left": (USER_LEFT, 1715265453000, "lti-user-1001", "", ""),
    "meeting-ended": (MEETING_ENDED, 1715265453500, None, "", ""),
    "rap-publish-ended": (RECORDING_READY, 1715265999000, None, "", ""),
}


@pytest.mark.parametrize("event", BODIES, ids=lambda b: b["id"])
def test_each_fixture_body_parses_into_its_event(event):
    [parsed] = parse_webhook(event["body"].encode())
    kind, occurred_at_ms, user, name, role = EXPECTED[event["event_id"]]
    assert (parsed.kind, parsed.occurred_at_ms, parsed.external_user_id, parsed.user_name, parsed.role) == (
        kind, occurred_at_ms, user, name, role,
    )
    assert (parsed.provider, parsed.source) == ("bbb", "webhook")
    assert (parsed.meeting_id, parsed.run_id) == ("lti-c42-r7", INTERNAL_ID)
    # BBB's internal id ends with the run's createTime: the class session starts there.
    assert parsed.run_started_at_ms == int(INTERNAL_ID.rsplit("-", 1)[1])
    user = json.loads(parse_qs(event["body"])["event"][0])[0]["data"]["attributes"].get("user") or {}
    assert parsed.connection == (user.get("internal-user-id") or "")  # each tab of a person pairs on its own


@pytest.mark.parametrize("body, checksum, variant", LEGACY_V3_0 + V2)
def test_legacy_bodies_parse_like_the_current_ones(body, checksum, variant):
    event_id = json.loads(parse_qs(body)["event"][0])[0]["data"]["id"]
    assert parse_webhook(body.encode()) == parse_webhook(body_of(event_id)["body"].encode())


def test_payload_is_the_event_data_without_passwords_or_metadata():
    [started] = parse_webhook(body_of("meeting-created")["body"].encode())
    meeting = started.payload["attributes"]["meeting"]
    assert started.payload["id"] == "meeting-created"
    assert meeting["name"] == "Physics 101 Lab" and meeting["create-time"] == 1715261728123
    assert not {"moderator-pass", "viewer-pass", "metadata"} & set(meeting)
    assert "analytics-callback-url" not in json.dumps(started.payload)


def test_recording_ready_payload_names_the_record_and_its_playback():
    [ready] = parse_webhook(body_of("rap-publish-ended")["body"].encode())
    assert ready.payload["record_id"] == INTERNAL_ID
    assert ready.payload["format"] == "presentation"
    assert ready.payload["recording"]["playback"]["link"].endswith(INTERNAL_ID)
    assert "metadata" not in ready.payload["recording"]


def test_meeting_created_without_create_time_starts_at_the_event_time():
    event = decoded_event("meeting-created")
    del event["data"]["attributes"]["meeting"]["create-time"]
    [started] = parse_webhook(form_body([event]))
    assert started.occurred_at_ms == 1715261728200


def test_a_batch_gives_its_events_in_order_and_skips_other_event_ids():
    muted = decoded_event("user-joined")
    muted["data"]["id"] = "user-audio-muted"
    chat = {"data": {"type": "event", "id": "chat-group-message-sent", "attributes": {}, "event": {"ts": 1}}}
    batch = [decoded_event("meeting-created"), decoded_event("user-joined"), muted, chat,
             decoded_event("user-left"), decoded_event("meeting-ended")]
    events = parse_webhook(form_body(batch))
    assert [e.kind for e in events] == [MEETING_STARTED, USER_JOINED, USER_LEFT, MEETING_ENDED]


def test_only_ignored_events_give_nothing():
    other = {"data": {"type": "event", "id": "meeting-recording-started", "attributes": {}, "event": {"ts": 1}}}
    assert parse_webhook(form_body([other])) == []


def test_rap_published_is_recording_ready_and_a_failed_publish_is_not():
    published = {"data": {"type": "event", "id": "rap-published", "attributes": {
        "meeting": {"internal-meeting-id": INTERNAL_ID, "external-meeting-id": "lti-c42-r7"},
        "record-id": INTERNAL_ID, "format": "presentation"}, "event": {"ts": 1715266000000}}}
    failed = decoded_event("rap-publish-ended")
    failed["data"]["attributes"]["success"] = False
    [ready] = parse_webhook(form_body([published, failed]))
    assert (ready.kind, ready.payload["record_id"], ready.payload["format"]) == (
        RECORDING_READY, INTERNAL_ID, "presentation",
    )


def test_recording_event_without_external_id_takes_it_from_the_recording_metadata():
    event = decoded_event("rap-publish-ended")
    del event["data"]["attributes"]["meeting"]["external-meeting-id"]
    [ready] = parse_webhook(form_body([event]))
    assert ready.meeting_id == "lti-c42-r7"


def test_user_without_external_id_keeps_the_internal_id_in_the_payload():
    event = decoded_event("user-left")
    event["data"]["attributes"]["user"]["external-user-id"] = ""
    [left] = parse_webhook(form_body([event]))
    assert left.external_user_id is None
    assert left.payload["attributes"]["user"]["internal-user-id"] == "w_ftcrsyuh44oj"


def _broken(event_id: str, change) -> bytes:
    event = decoded_event(event_id)
    change(event["data"])
    return form_body([event])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"domain=bbb.example.com&timestamp=1", id="no event field"),
        pytest.param(b"event=not+json", id="event not JSON"),
        pytest.param(b"event=42", id="event not an array"),
        pytest.param(b"event=%5B42%5D", id="event item not an object"),
        pytest.param(b"event=%5B%7B%7D%5D", id="event without data"),
        pytest.param(b"event=%FF", id="not UTF-8"),
        pytest.param(form_body([]) + b"&event=%5B%5D", id="event field repeated"),
        pytest.param(_broken("user-joined", lambda d: d["event"].pop("ts")), id="no ts"),
        pytest.param(_broken("user-joined", lambda d: d["event"].update(ts="soon")), id="ts not numeric"),
        pytest.param(_broken("user-joined", lambda d: d["event"].update(ts=True)), id="ts boolean"),
        pytest.param(_broken("user-joined", lambda d: d["event"].update(ts=1.5)), id="ts fractional"),
        pytest.param(_broken("meeting-created", lambda d: d["attributes"]["meeting"].update({"create-time": "x"})),
                     id="create-time not numeric"),
        pytest.param(_broken("meeting-ended", lambda d: d["attributes"]["meeting"].pop("external-meeting-id")),
                     id="no external meeting id"),
        pytest.param(_broken("meeting-ended", lambda d: d["attributes"]["meeting"].pop("internal-meeting-id")),
                     id="no internal meeting id"),
        pytest.param(_broken("meeting-ended", lambda d: d.pop("attributes")), id="no attributes"),
        pytest.param(_broken("user-joined", lambda d: d["attributes"].pop("user")), id="no user"),
        pytest.param(_broken("user-left", lambda d: d["attributes"].update(user={"guest": False})), id="no user ids"),
        pytest.param(_broken("rap-publish-ended", lambda d: d["attributes"].pop("record-id")), id="no record id"),
    ],
)
def test_malformed_bodies_raise_format_errors(body):
    with pytest.raises(CallbackFormatError):
        parse_webhook(body)


def test_format_error_is_a_value_error_with_a_clear_message():
    with pytest.raises(ValueError, match=r"event\[0\] \(user-joined\) event.ts is not a number"):
        parse_webhook(_broken("user-joined", lambda d: d["event"].update(ts="soon")))


# -- analytics callback ------------------------------------------------------------------------


def hs512(claims: dict, secret: str = SECRET) -> str:
    with warnings.catch_warnings():  # BBB's 32-character secret is short for HS512
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS512")


def test_fixture_analytics_token_verifies():
    assert verify_analytics(ANALYTICS["headers"]["Authorization"], SECRET)


def test_analytics_verification_does_not_warn_about_the_short_secret(recwarn):
    assert verify_analytics(ANALYTICS["headers"]["Authorization"], SECRET)
    assert not [w for w in recwarn if issubclass(w.category, jwt.InsecureKeyLengthWarning)]


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(lambda: "Bearer " + hs512({"exp": int(time.time()) - 10}), id="expired"),
        pytest.param(lambda: "Bearer " + hs512({"iat": int(time.time())}), id="no exp"),
        pytest.param(lambda: "Bearer " + jwt.encode({"exp": 4102444800}, SECRET, algorithm="HS256"), id="HS256"),
        pytest.param(lambda: "Bearer " + jwt.encode({"exp": 4102444800}, None, algorithm="none"), id="alg none"),
        pytest.param(lambda: "Bearer " + hs512({"exp": 4102444800}, secret="another-secret"), id="wrong secret"),
        pytest.param(lambda: ANALYTICS["jwt"], id="no Bearer scheme"),
        pytest.param(lambda: "Basic " + ANALYTICS["jwt"], id="Basic scheme"),
        pytest.param(lambda: "Bearer ", id="empty token"),
        pytest.param(lambda: "Bearer not.a.jwt", id="garbage"),
        pytest.param(lambda: None, id="no header"),
    ],
)
def test_analytics_tokens_that_must_fail(authorization):
    assert verify_analytics(authorization(), SECRET) is False


def test_analytics_body_parses_into_start_joins_leaves_and_end():
    events = parse_analytics(ANALYTICS["body"])
    assert {(e.provider, e.source, e.meeting_id, e.run_id) for e in events} == {
        ("bbb", "analytics", "lti-c42-r7", INTERNAL_ID)
    }
    assert [(e.kind, e.external_user_id, e.role, e.occurred_at_ms) for e in events] == [
        (MEETING_STARTED, None, "", 1715261728000),  # 13:35:28
        (USER_JOINED, "lti-user-1001", "MODERATOR", 1715261730000),  # 13:35:30
        (USER_LEFT, "lti-user-1001", "MODERATOR", 1715265453000),  # 14:37:33
        (USER_JOINED, "lti-user-2002", "VIEWER", 1715262000000),  # 13:40
        (USER_JOINED, "lti-user-2002", "VIEWER", 1715263200000),  # 14:00
        (USER_LEFT, "lti-user-2002", "VIEWER", 1715262600000),  # 13:50
        (USER_LEFT, "lti-user-2002", "VIEWER", 1715265453000),  # 14:37:33
        (MEETING_ENDED, None, "", 1715265453000),
    ]
    assert events[1].user_name == "Alice Teacher"
    assert events[1].payload["duration"] == 3723


def test_analytics_attendee_without_joins_uses_its_sessions():
    body = json.loads(json.dumps(ANALYTICS["body"]))
    alice = body["data"]["attendees"][0]
    del alice["joins"], alice["leaves"]
    events = [e for e in parse_analytics(body) if e.external_user_id == "lti-user-1001"]
    assert [(e.kind, e.occurred_at_ms) for e in events] == [(USER_JOINED, 1715261730000), (USER_LEFT, 1715265453000)]


def test_analytics_attendee_without_ext_user_id_is_skipped_and_no_finish_means_no_end():
    body = json.loads(json.dumps(ANALYTICS["body"]))
    body["data"]["attendees"][1]["ext_user_id"] = ""
    body["data"]["finish"] = None
    events = parse_analytics(body)
    assert {e.external_user_id for e in events} == {None, "lti-user-1001"}
    assert MEETING_ENDED not in {e.kind for e in events}


def test_analytics_times_without_an_offset_are_utc():
    body = json.loads(json.dumps(ANALYTICS["body"]))
    body["data"]["start"] = "2024-05-09T13:35:28"
    body["data"]["finish"] = "2024-05-09T14:37:33Z"
    events = parse_analytics(body)
    assert (events[0].occurred_at_ms, events[-1].occurred_at_ms) == (1715261728000, 1715265453000)


def _analytics(change) -> dict:
    body = json.loads(json.dumps(ANALYTICS["body"]))
    change(body)
    return body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="not an object"),
        pytest.param(_analytics(lambda b: b.pop("meeting_id")), id="no meeting_id"),
        pytest.param(_analytics(lambda b: b.update(internal_meeting_id="")), id="empty internal_meeting_id"),
        pytest.param(_analytics(lambda b: b.pop("data")), id="no data"),
        pytest.param(_analytics(lambda b: b["data"].pop("start")), id="no start"),
        pytest.param(_analytics(lambda b: b["data"].update(start="yesterday")), id="start not ISO"),
        pytest.param(_analytics(lambda b: b["data"].update(finish=17)), id="finish not a string"),
        pytest.param(_analytics(lambda b: b["data"].update(attendees={})), id="attendees not a list"),
        pytest.param(_analytics(lambda b: b["data"]["attendees"].append("x")), id="attendee not an object"),
        pytest.param(_analytics(lambda b: b["data"]["attendees"][0].update(joins="13:35")), id="joins not a list"),
        pytest.param(_analytics(lambda b: b["data"]["attendees"][1]["leaves"].append("later")), id="bad leave"),
        pytest.param(_analytics(lambda b: b["data"]["attendees"][0].update(ext_user_id=7)), id="ext_user_id number"),
    ],
)
def test_malformed_analytics_bodies_raise_format_errors(body):
    with pytest.raises(CallbackFormatError):
        parse_analytics(body)


# -- recording-ready and end callbacks ---------------------------------------------------------


@pytest.mark.parametrize("style", ["jwt_ruby_style", "jwt_pyjwt_style"])
def test_fixture_recording_ready_tokens_verify(style):
    assert verify_recording_ready(RECORDING_READY_VECTOR[style], SECRET) == RECORDING_READY_VECTOR["claims"]


def test_fixture_recording_ready_body_carries_the_ruby_style_token():
    [token] = parse_qs(RECORDING_READY_VECTOR["body"])["signed_parameters"]
    assert verify_recording_ready(token, SECRET)["record_id"] == INTERNAL_ID


def _tampered_payload(token: str) -> str:
    header, _, signature = token.split(".")
    claims = jwt.utils.base64url_encode(json.dumps({"meeting_id": "lti-c42-r8", "record_id": INTERNAL_ID}).encode())
    return f"{header}.{claims.decode()}.{signature}"


@pytest.mark.parametrize(
    "token, secret",
    [
        pytest.param(_tampered_payload(RECORDING_READY_VECTOR["jwt_ruby_style"]), SECRET, id="payload changed"),
        pytest.param(RECORDING_READY_VECTOR["jwt_ruby_style"][:-2] + "AA", SECRET, id="signature changed"),
        pytest.param(RECORDING_READY_VECTOR["jwt_ruby_style"], "another-secret-another-secret-xx", id="wrong secret"),
        pytest.param(jwt.encode(RECORDING_READY_VECTOR["claims"], None, algorithm="none"), SECRET, id="alg none"),
        pytest.param(jwt.encode({"meeting_id": "lti-c42-r7"}, SECRET, algorithm="HS256"), SECRET, id="no record_id"),
        pytest.param(jwt.encode({"record_id": INTERNAL_ID}, SECRET, algorithm="HS256"), SECRET, id="no meeting_id"),
        pytest.param("", SECRET, id="empty"),
        pytest.param("not-a-jwt", SECRET, id="garbage"),
        pytest.param(RECORDING_READY_VECTOR["jwt_ruby_style"], "", id="no secret configured"),
    ],
)
def test_recording_ready_tokens_that_must_fail(token, secret):
    with pytest.raises(CallbackAuthError):
        verify_recording_ready(token, secret)


def test_recording_ready_token_signed_hs512_is_refused():
    token = hs512(RECORDING_READY_VECTOR["claims"])
    with pytest.raises(CallbackAuthError):
        verify_recording_ready(token, SECRET)


def test_recording_ready_event_is_keyed_by_the_record_id():
    event = recording_ready_event(RECORDING_READY_VECTOR["claims"], now_ms=1715266000000)
    assert (event.provider, event.source, event.kind) == ("bbb", "recording_ready", RECORDING_READY)
    assert (event.meeting_id, event.run_id, event.occurred_at_ms) == ("lti-c42-r7", INTERNAL_ID, 1715266000000)
    assert event.payload == {"record_id": INTERNAL_ID}
    assert abs(recording_ready_event(RECORDING_READY_VECTOR["claims"]).occurred_at_ms - time.time() * 1000) < 5000


def test_end_callback_event_ends_the_run_it_is_given():
    event = end_callback_event("lti-c42-r7", INTERNAL_ID, 1715265454000)
    assert (event.provider, event.source, event.kind) == ("bbb", "end_callback", MEETING_ENDED)
    assert (event.meeting_id, event.run_id, event.occurred_at_ms) == ("lti-c42-r7", INTERNAL_ID, 1715265454000)
    assert end_callback_event("m", "i", 1, recording_marks=True).payload == {"recording_marks": True}


# -- the fake BBB's callbacks, received over real HTTP -----------------------------------------


@dataclass
class Received:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict

    @property
    def checksum(self) -> str | None:
        return parse_qs(self.query).get("checksum", [None])[0]


class Receiver:
    """A stand-in for the tool's callback endpoints: records each request and answers 200."""

    def __init__(self):
        self.received: list[Received] = []
        app = Flask(__name__)

        @app.route("/<path:path>", methods=["GET", "POST"])
        def catch(path):
            self.received.append(Received(request.method, "/" + path, request.query_string.decode(),
                                          request.get_data(), dict(request.headers)))
            return "ok"

        self._served = ServedApp(app)
        self.url = self._served.url

    def __enter__(self):
        self._served.start()
        return self

    def __exit__(self, *exc):
        self._served.stop()


@pytest.fixture
def bbb():
    with FakeBigBlueButton(SECRET) as server:
        yield server


@pytest.fixture
def receiver():
    with Receiver() as served:
        yield served


@pytest.fixture
def client(bbb):
    return BigBlueButtonClient(bbb.url, SECRET, timeout=2.0, retries=1, backoff_base=0.01)


def create_meeting(client, receiver, meeting_id="lti-c42-r7", record=True):
    client.call("create", [
        ("name", "Physics 101 Lab"),
        ("meetingID", meeting_id),
        ("record", record),
        ("meta_endCallbackUrl", f"{receiver.url}/end?meetingID={meeting_id}&sig=abc"),
        ("meta_bbb-recording-ready-url", f"{receiver.url}/recording"),
        ("meta_analytics-callback-url", f"{receiver.url}/analytics"),
        ("meetingKeepEvents", True),
    ])


PAST = 1715261728123  # callbacks with times in the past, as a real server sends after the fact


@pytest.mark.parametrize(
    "variant, algorithm",
    [("v3.4", a) for a in ("sha1", "sha256", "sha384", "sha512")]
    + [("v3.0-3.3", "sha1"), ("v3.0-3.3", "sha512"), ("v2", "sha1"), ("bearer", "sha1")],
)
def test_fake_webhooks_pass_verification_and_parse(bbb, receiver, client, variant, algorithm):
    registered = f"{receiver.url}/webhook"
    client.hooks_create(registered)
    events = [bbb.event_meeting_created("lti-c42-r7", PAST),
              bbb.event_user_joined("lti-c42-r7", "lti-user-2002", "Bob Student", "VIEWER", PAST + 5000)]
    response = bbb.send_webhook(registered, events, algorithm=algorithm, variant=variant)
    assert response.status_code == 200

    [got] = receiver.received
    assert got.method == "POST" and got.path == "/webhook"
    authorization = got.headers.get("Authorization")
    assert verify_webhook(registered, got.body, got.checksum, authorization, SECRET, **LEGACY_ON) == variant
    parsed = parse_webhook(got.body)
    assert [(e.kind, e.occurred_at_ms, e.external_user_id) for e in parsed] == [
        (MEETING_STARTED, PAST, None), (USER_JOINED, PAST + 5000, "lti-user-2002"),
    ]
    assert {e.run_id for e in parsed} == {hashlib.sha1(b"lti-c42-r7").hexdigest() + f"-{PAST}"}


def test_fake_webhook_body_is_encoded_like_bbb_webhooks(bbb, receiver, client):
    registered = f"{receiver.url}/webhook?room=7"
    client.hooks_create(registered)
    event = bbb.event_user_joined("lti-c42-r7", "lti-user-1001", "Ça va ~ A&B", "MODERATOR", PAST)
    bbb.send_webhook(registered, [event], timestamp_ms=1715265999999)
    [got] = receiver.received
    assert got.query.startswith("room=7&checksum=")
    assert got.headers["Content-Type"] == "application/x-www-form-urlencoded;charset=UTF-8"
    assert got.body.startswith(b"domain=127.0.0.1&event=%5B%7B%22data%22%3A%7B%22type%22%3A%22event%22")
    assert got.body.endswith(b"&timestamp=1715265999999")
    assert b"%C3%87a+va+%7E+A%26B" in got.body
    assert verify_webhook(registered, got.body, got.checksum, None, SECRET) == "v3.4"
    assert parse_webhook(got.body)[0].user_name == "Ça va ~ A&B"


def test_fake_webhook_events_use_the_running_meetings_internal_id(bbb, receiver, client):
    create_meeting(client, receiver)
    internal_id = bbb.meetings["lti-c42-r7"].internal_id
    assert bbb.event_meeting_ended("lti-c42-r7", PAST)["data"]["attributes"]["meeting"] == {
        "internal-meeting-id": internal_id, "external-meeting-id": "lti-c42-r7",
    }
    client.call("end", [("meetingID", "lti-c42-r7")])
    assert bbb.event_user_left("lti-c42-r7", "u1", PAST)["data"]["attributes"]["meeting"]["internal-meeting-id"] \
        == internal_id


def test_fake_webhook_goes_only_to_registered_hooks_and_honours_their_filters(bbb, receiver, client):
    with pytest.raises(LookupError):
        bbb.send_webhook(f"{receiver.url}/never-registered", [bbb.event_meeting_ended("m1", PAST)])
    only_m1 = f"{receiver.url}/m1"
    only_joins = f"{receiver.url}/joins"
    client.hooks_create(only_m1, meeting_id="m1")
    client.hooks_create(only_joins, event_ids=["User-Joined"])
    assert bbb.send_webhook(only_m1, [bbb.event_meeting_ended("m2", PAST)]) is None
    assert bbb.send_webhook(only_joins, [bbb.event_meeting_ended("m1", PAST)]) is None
    bbb.send_webhook(only_joins, [bbb.event_meeting_ended("m1", PAST),
                                  bbb.event_user_joined("m1", "u1", "U", "VIEWER", PAST)])
    [got] = receiver.received
    assert [e.kind for e in parse_webhook(got.body)] == [USER_JOINED]


def test_fake_rap_publish_ended_parses_as_recording_ready(bbb, receiver, client):
    registered = f"{receiver.url}/webhook"
    client.hooks_create(registered)
    bbb.send_webhook(registered, [bbb.event_rap_publish_ended("lti-c42-r7", PAST, record_id="rec-1")])
    [ready] = parse_webhook(receiver.received[0].body)
    assert (ready.kind, ready.payload["record_id"], ready.run_id) == (RECORDING_READY, "rec-1", "rec-1")


def test_fake_analytics_callback_verifies_and_parses(bbb, receiver, client):
    create_meeting(client, receiver)
    attendees = [
        {"user_id": "lti-user-1001", "name": "Alice Teacher", "moderator": True,
         "joins": [PAST + 2000], "leaves": [PAST + 3_600_000]},
        {"user_id": "lti-user-2002", "name": "Bob Student",
         "joins": [PAST + 60_000, PAST + 1_200_000], "leaves": [PAST + 600_000, PAST + 3_600_000]},
    ]
    response = bbb.send_analytics(None, "lti-c42-r7", attendees, PAST, PAST + 3_600_000)
    assert response.status_code == 200
    [got] = receiver.received
    assert got.path == "/analytics" and got.headers["User-Agent"] == "BigBlueButton Analytics Callback"
    assert verify_analytics(got.headers["Authorization"], SECRET)
    body = json.loads(got.body)
    assert body["internal_meeting_id"] == bbb.meetings["lti-c42-r7"].internal_id
    assert body["data"]["metadata"]["end_callback_url"].endswith("/end?meetingID=lti-c42-r7&sig=abc")
    assert body["data"]["attendees"][1]["duration"] == (540_000 + 2_400_000) // 1000
    events = parse_analytics(body)
    # ISO times in bbbevents' format keep millisecond precision here.
    assert [(e.kind, e.external_user_id, e.occurred_at_ms) for e in events] == [
        (MEETING_STARTED, None, PAST),
        (USER_JOINED, "lti-user-1001", PAST + 2000),
        (USER_LEFT, "lti-user-1001", PAST + 3_600_000),
        (USER_JOINED, "lti-user-2002", PAST + 60_000),
        (USER_JOINED, "lti-user-2002", PAST + 1_200_000),
        (USER_LEFT, "lti-user-2002", PAST + 600_000),
        (USER_LEFT, "lti-user-2002", PAST + 3_600_000),
        (MEETING_ENDED, None, PAST + 3_600_000),
    ]
    del body["data"]["attendees"][0]["joins"], body["data"]["attendees"][0]["leaves"]
    assert [e.occurred_at_ms for e in parse_analytics(body) if e.external_user_id == "lti-user-1001"] == [
        PAST + 2000, PAST + 3_600_000,
    ]


def test_fake_analytics_with_an_expired_token_fails_verification(bbb, receiver):
    expired = hs512({"exp": int(time.time()) - 1})
    bbb.send_analytics(f"{receiver.url}/analytics", "m1", [], PAST, PAST + 1000, token=expired)
    assert not verify_analytics(receiver.received[0].headers["Authorization"], SECRET)


def test_fake_recording_ready_callback_verifies(bbb, receiver, client):
    create_meeting(client, receiver)
    internal_id = bbb.meetings["lti-c42-r7"].internal_id
    bbb.send_recording_ready(None, "lti-c42-r7")
    bbb.send_recording_ready(f"{receiver.url}/recording", "lti-c42-r7", "rec-2",
                             secret="not-the-shared-secret-of-this-server")
    good, forged = receiver.received
    assert good.headers["Content-Type"] == "application/x-www-form-urlencoded"
    [token] = parse_qs(good.body.decode())["signed_parameters"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256"}
    assert verify_recording_ready(token, SECRET) == {"meeting_id": "lti-c42-r7", "record_id": internal_id}
    with pytest.raises(CallbackAuthError):
        verify_recording_ready(parse_qs(forged.body.decode())["signed_parameters"][0], SECRET)


def test_fake_end_callback_appends_recordingmarks_even_after_the_meeting_ended(bbb, receiver, client):
    create_meeting(client, receiver)
    client.call("end", [("meetingID", "lti-c42-r7")])
    bbb.call_end_callback("lti-c42-r7")
    bbb.call_end_callback("lti-c42-r7", recording_marks=True)
    create_meeting(client, receiver, meeting_id="unrecorded", record=False)
    bbb.call_end_callback("unrecorded", recording_marks=True)
    assert [(r.method, r.path, r.query) for r in receiver.received] == [
        ("GET", "/end", "meetingID=lti-c42-r7&sig=abc&recordingmarks=false"),
        ("GET", "/end", "meetingID=lti-c42-r7&sig=abc&recordingmarks=true"),
        ("GET", "/end", "meetingID=unrecorded&sig=abc&recordingmarks=false"),
    ]
    with pytest.raises(LookupError):
        bbb.call_end_callback("never-created")


def test_fake_sends_nothing_on_its_own(bbb, receiver, client):
    create_meeting(client, receiver)
    client.hooks_create(f"{receiver.url}/webhook")
    bbb.enter("lti-c42-r7", "lti-user-1001", "Alice Teacher", "MODERATOR")
    client.call("end", [("meetingID", "lti-c42-r7")])
    time.sleep(0.05)
    assert receiver.received == []
