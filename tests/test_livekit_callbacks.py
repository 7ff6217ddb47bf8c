"""LiveKit webhooks: every shared vector authenticates and parses, forgeries do not, and the fake
LiveKit's webhooks (sent to a tiny receiving app over real HTTP) pass the same checks."""
from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
from pathlib import Path

import jwt
import pytest
from flask import Flask, request
from google.protobuf import json_format
from livekit import api as lk

from lti_tool.attendance.events import (
    MEETING_ENDED,
    MEETING_STARTED,
    RECORDING_READY,
    USER_JOINED,
    USER_LEFT,
)
from lti_tool.providers.base import Attendee, JoinRole, MeetingSpec, RoomSettings
from lti_tool.providers.livekit.callbacks import (
    CallbackAuthError,
    CallbackFormatError,
    events_from_webhook,
    verify_and_parse,
)
from lti_tool.providers.livekit.provider import LiveKitProvider, LiveKitServer
from tests.fakes.http_server import ServedApp
from tests.fakes.livekit_server import FakeLiveKit

FIXTURES = Path(__file__).parent / "fixtures" / "livekit"
WEBHOOKS = json.loads((FIXTURES / "livekit_webhooks.json").read_text())
XCHECK = json.loads((FIXTURES / "livekit_xcheck_report.json").read_text())
KEY, SECRET = WEBHOOKS["api_key"], WEBHOOKS["api_secret"]
OTHER_SECRET = "anotherSecret0123456789abcdefghijklmnopqrstuvwxyz"
VECTORS = WEBHOOKS["events"]
ROOM, ROOM_SID = "lti-c42-r7", "RM_kitRoom0001"


def by_event(name: str) -> dict:
    return next(v for v in VECTORS if v["event"] == name)


def body_of(vector: dict) -> bytes:
    return vector["body"].encode("utf-8")


def sign(body: bytes, secret: str = SECRET, key: str = KEY, **claims) -> str:
    now = int(time.time())
    payload = {"iss": key, "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
               "nbf": now, "iat": now, "exp": now + 300}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


# What each vector becomes: (kind, occurred_at_ms, external_user_id, extra payload); None = ignored.
EXPECTED = {
    "participant_joined": (USER_JOINED, 1715261730000, "lti-user-1001", {"connection": "PA_kitAlice0001"}),
    "participant_left": (USER_LEFT, 1715265453000, "lti-user-1001", {"connection": "PA_kitAlice0001"}),
    "room_started": (MEETING_STARTED, 1715261730000, None, {}),
    "room_finished": (MEETING_ENDED, 1715265460000, None, {}),
    "track_published": None,
    "egress_ended": (RECORDING_READY, 1715265401000, None, {
        "record_id": "EG_kit0001",
        "status": "EGRESS_COMPLETE",
        "files": [{"filename": "recordings/lti-c42-r7.mp4", "location": "https://storage.example.com/lti-c42-r7.mp4",
                   "duration_ms": 3_600_000, "size": 123456789}],
    }),
}


# -- the shared vectors ---------------------------------------------------------------------------


def test_the_vectors_cover_every_event_the_tool_maps():
    assert {v["event"] for v in VECTORS} == set(EXPECTED)
    report = {w["event"]: w for w in XCHECK["npm_livekit-server-sdk_2.19.2"]["webhooks"]}
    assert XCHECK["python_WebhookReceiver_accepts_all_and_rejects_tampering"] is True
    assert all(report[name]["ok"] and report[name]["tamperRejected"] for name in EXPECTED)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_every_vector_verifies_and_parses_to_its_decoded_event(vector):
    assert vector["python_WebhookReceiver_accepts"] is True
    assert base64.b64encode(hashlib.sha256(body_of(vector)).digest()).decode() == vector["body_sha256_b64"]
    assert jwt.decode(vector["authorization"], SECRET, algorithms=["HS256"], issuer=KEY) == vector["jwt_claims"]
    event = verify_and_parse(body_of(vector), vector["authorization"], KEY, SECRET)
    assert event == vector["decoded"]
    assert isinstance(event["createdAt"], str)  # int64 as protojson writes it


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_every_vector_becomes_the_attendance_events_it_stands_for(vector):
    events = events_from_webhook(verify_and_parse(body_of(vector), vector["authorization"], KEY, SECRET))
    expected = EXPECTED[vector["event"]]
    if expected is None:
        assert events == []
        return
    kind, occurred, user, extra = expected
    [event] = events
    assert (event.provider, event.source, event.kind) == ("livekit", "webhook", kind)
    assert (event.meeting_id, event.run_id, event.occurred_at_ms) == (ROOM, ROOM_SID, occurred)
    assert event.external_user_id == user
    assert event.payload == {"event": vector["event"], "event_id": vector["decoded"]["id"], **extra}
    if user:
        assert event.user_name == "Alice Teacher"
        assert event.role == ""  # the vector's metadata is not the tool's {"role": …}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_the_receivers_proto_and_the_dict_give_the_same_events(vector):
    proto = lk.WebhookReceiver(lk.TokenVerifier(KEY, SECRET)).receive(vector["body"], vector["authorization"])
    assert events_from_webhook(proto) == events_from_webhook(vector["decoded"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_a_tampered_body_is_refused(vector):
    assert vector["negative_checks"]["tampered_body"].startswith("rejected")
    tampered = vector["body"].replace("lti-c42-r7", "lti-c42-r8", 1).encode()
    with pytest.raises(CallbackAuthError, match="hash mismatch"):
        verify_and_parse(tampered, vector["authorization"], KEY, SECRET)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_the_same_json_re_serialised_is_refused_because_the_hash_is_over_raw_bytes(vector):
    reformatted = json.dumps(json.loads(vector["body"]), indent=1).encode()
    with pytest.raises(CallbackAuthError):
        verify_and_parse(reformatted, vector["authorization"], KEY, SECRET)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_a_token_signed_with_another_secret_or_for_another_key_is_refused(vector):
    assert vector["negative_checks"]["wrong_secret"].startswith("rejected")
    with pytest.raises(CallbackAuthError, match="Signature"):
        verify_and_parse(body_of(vector), vector["authorization"], KEY, OTHER_SECRET)
    with pytest.raises(CallbackAuthError, match="Issuer"):
        verify_and_parse(body_of(vector), vector["authorization"], "APIanotherKey", SECRET)
    with pytest.raises(CallbackAuthError):
        verify_and_parse(body_of(vector), sign(body_of(vector), OTHER_SECRET), KEY, SECRET)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_a_bearer_prefix_is_stripped_and_the_token_accepted(vector):
    # The raw receiver refuses "Bearer <jwt>" (the vector says so); LiveKit never sends it, but
    # a proxy may add it, and the token is checked all the same.
    assert vector["negative_checks"]["bearer_prefix"].startswith("rejected")
    with pytest.raises(jwt.DecodeError):
        lk.WebhookReceiver(lk.TokenVerifier(KEY, SECRET)).receive(vector["body"], "Bearer " + vector["authorization"])
    for header in ("Bearer " + vector["authorization"], "bearer  " + vector["authorization"] + " "):
        assert verify_and_parse(body_of(vector), header, KEY, SECRET) == vector["decoded"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["event"])
def test_the_sdk_made_header_is_right_but_expired_after_its_five_minutes(vector):
    header = vector["sdk_authorization_ephemeral"]
    claims = jwt.decode(header, SECRET, algorithms=["HS256"], issuer=KEY,
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims["sha256"] == vector["body_sha256_b64"]
    assert claims["exp"] - claims["nbf"] == 300
    if claims["exp"] + 60 < time.time():
        with pytest.raises(CallbackAuthError, match="[Ee]xpired"):
            verify_and_parse(body_of(vector), header, KEY, SECRET)


# -- other forgeries ------------------------------------------------------------------------------


BODY = body_of(by_event("participant_joined"))


@pytest.mark.parametrize("authorization", [None, "", "   ", "Bearer", "Bearer  ", "not-a-jwt", "Basic abc"])
def test_a_missing_or_malformed_authorization_is_refused(authorization):
    with pytest.raises(CallbackAuthError):
        verify_and_parse(BODY, authorization, KEY, SECRET)


@pytest.mark.parametrize("key, secret", [("", SECRET), (KEY, ""), (None, None)])
def test_nothing_is_accepted_while_livekit_is_not_configured(key, secret):
    with pytest.raises(CallbackAuthError, match="not set"):
        verify_and_parse(BODY, by_event("participant_joined")["authorization"], key, secret)


def test_an_expired_token_is_refused_and_one_within_the_leeway_accepted():
    with pytest.raises(CallbackAuthError, match="[Ee]xpired"):
        verify_and_parse(BODY, sign(BODY, exp=int(time.time()) - 120), KEY, SECRET)
    assert verify_and_parse(BODY, sign(BODY, exp=int(time.time()) - 5), KEY, SECRET)["event"] == "participant_joined"


def test_a_token_not_valid_yet_is_refused():
    with pytest.raises(CallbackAuthError):
        verify_and_parse(BODY, sign(BODY, nbf=int(time.time()) + 600), KEY, SECRET)


def test_a_token_without_expiry_or_without_body_hash_is_refused():
    with pytest.raises(CallbackAuthError, match="exp"):
        verify_and_parse(BODY, sign(BODY, exp=None), KEY, SECRET)
    with pytest.raises(CallbackAuthError, match="sha256"):
        verify_and_parse(BODY, sign(BODY, sha256=None), KEY, SECRET)


def test_an_access_token_is_not_a_webhook_signature():
    token = lk.AccessToken(KEY, SECRET).with_identity("x").with_grants(lk.VideoGrants(room_join=True, room=ROOM))
    with pytest.raises(CallbackAuthError, match="sha256"):
        verify_and_parse(BODY, token.to_jwt(), KEY, SECRET)


def test_unsigned_and_other_algorithm_tokens_are_refused():
    claims = jwt.decode(sign(BODY), SECRET, algorithms=["HS256"])
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(CallbackAuthError):
        verify_and_parse(BODY, unsigned, KEY, SECRET)
    with warnings.catch_warnings():  # the secret is short for HS512: beside the point here
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(CallbackAuthError):
        verify_and_parse(BODY, hs512, KEY, SECRET)


def test_a_body_that_is_not_utf8_is_refused():
    body = b'{"event":"room_started","room":{"name":"\xff"}}'
    with pytest.raises(CallbackAuthError, match="UTF-8"):
        verify_and_parse(body, sign(body), KEY, SECRET)


@pytest.mark.parametrize("body", [b'{"event": 5}', b"[1]", b'"text"', b"not json"])
def test_an_authentic_body_that_is_not_a_webhook_event_is_a_format_error(body):
    with pytest.raises(CallbackFormatError):
        verify_and_parse(body, sign(body), KEY, SECRET)


# -- events ---------------------------------------------------------------------------------------


def decoded(name: str) -> dict:
    return json.loads(json.dumps(by_event(name)["decoded"]))  # a copy to change


def test_unknown_and_unwanted_events_give_nothing():
    assert events_from_webhook({"event": "track_unpublished", "room": {"name": ROOM, "sid": ROOM_SID}}) == []
    assert events_from_webhook({"event": "ingress_started"}) == []
    assert events_from_webhook({}) == []


def test_proto_field_names_are_read_as_well_as_protojson_names():
    for vector in VECTORS:
        proto = json_format.ParseDict(vector["decoded"], lk.WebhookEvent())
        snake = json_format.MessageToDict(proto, preserving_proto_field_name=True)
        assert events_from_webhook(snake) == events_from_webhook(vector["decoded"])


def test_a_connection_that_was_aborted_is_a_leave_of_that_connection():
    event = decoded("participant_left")
    event["event"] = "participant_connection_aborted"
    [left] = events_from_webhook(event)
    assert left.kind == USER_LEFT and left.payload["connection"] == "PA_kitAlice0001"


def test_role_comes_from_the_metadata_the_tool_put_in_the_token():
    event = decoded("participant_joined")
    event["participant"]["metadata"] = '{"role":"moderator"}'
    assert events_from_webhook(event)[0].role == "MODERATOR"
    event["participant"]["metadata"] = '{"role":"attendee"}'
    assert events_from_webhook(event)[0].role == "VIEWER"


@pytest.mark.parametrize("kind", ["EGRESS", "INGRESS", "AGENT"])
def test_recorders_stream_inputs_and_agents_are_not_attendance(kind):
    event = decoded("participant_joined")
    event["participant"]["kind"] = kind
    assert events_from_webhook(event) == []
    event["participant"]["kind"] = "SIP"  # a person on the phone is
    assert len(events_from_webhook(event)) == 1


def test_two_connections_of_one_person_are_told_apart_and_a_redelivery_is_not():
    first = events_from_webhook(decoded("participant_joined"))[0]
    again = events_from_webhook(decoded("participant_joined"))[0]
    assert first.dedupe_key == again.dedupe_key
    other_tab = decoded("participant_joined")
    other_tab["participant"]["sid"] = "PA_kitAlice0002"
    other_tab["id"] = "EV_other"
    assert events_from_webhook(other_tab)[0].dedupe_key != first.dedupe_key


def test_without_created_at_the_join_time_or_the_room_creation_or_the_receipt_time_is_used():
    joined = decoded("participant_joined")
    del joined["createdAt"]
    assert events_from_webhook(joined)[0].occurred_at_ms == 1715261730456  # joinedAtMs
    del joined["participant"]["joinedAtMs"]
    assert events_from_webhook(joined)[0].occurred_at_ms == 1715261730000  # joinedAt
    started = decoded("room_started")
    del started["createdAt"]
    assert events_from_webhook(started)[0].occurred_at_ms == 1715261728123  # creationTimeMs
    left = decoded("participant_left")
    del left["createdAt"]
    assert events_from_webhook(left, received_at_ms=1715265999000)[0].occurred_at_ms == 1715265999000
    with pytest.raises(CallbackFormatError, match="createdAt"):
        events_from_webhook(left)


def test_an_egress_that_ended_without_a_file_is_no_recording():
    event = decoded("egress_ended")
    event["egressInfo"]["status"] = "EGRESS_FAILED"
    assert events_from_webhook(event) == []


def test_an_egress_event_without_room_uses_the_egress_room():
    event = decoded("egress_ended")
    del event["room"]
    [ready] = events_from_webhook(event)
    assert (ready.meeting_id, ready.run_id) == (ROOM, ROOM_SID)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.pop("room"),
        lambda e: e["room"].pop("sid"),
        lambda e: e["participant"].pop("identity"),
        lambda e: e["participant"].pop("sid"),
        lambda e: e.__setitem__("createdAt", "soon"),
        lambda e: e.__setitem__("room", "lti-c42-r7"),
    ],
    ids=["no room", "no room sid", "no identity", "no participant sid", "bad createdAt", "room not an object"],
)
def test_a_wanted_event_without_its_ids_is_a_format_error(change):
    event = decoded("participant_joined")
    change(event)
    with pytest.raises(CallbackFormatError):
        events_from_webhook(event)


# -- the fake LiveKit's webhooks, over real HTTP --------------------------------------------------


class Receiver:
    """A tiny app that keeps every POST as LiveKit's receiver would see it."""

    def __init__(self):
        self.received: list[tuple[bytes, dict]] = []
        app = Flask(__name__)
        app.add_url_rule("/webhooks/livekit", "hook", self._hook, methods=["POST"])
        self.served = ServedApp(app)
        self.url = self.served.url + "/webhooks/livekit"

    def _hook(self):
        self.received.append((request.get_data(), dict(request.headers)))
        return "", 204


@pytest.fixture
def receiver():
    hooks = Receiver()
    with hooks.served:
        yield hooks


@pytest.fixture
def livekit():
    with FakeLiveKit(KEY, SECRET) as server:
        yield server


def test_fake_webhooks_are_signed_and_sent_as_livekit_sends_them(livekit, receiver):
    event = livekit.participant_joined(ROOM, "lti-user-2002", at=1715261730, name="Bob Student",
                                       metadata='{"role":"attendee"}')
    assert livekit.send_webhook(receiver.url, event).status_code == 204
    body, headers = receiver.received[-1]
    assert headers["Content-Type"] == "application/webhook+json"
    assert headers["User-Agent"] == "LiveKit"
    assert not headers["Authorization"].startswith("Bearer")
    claims = jwt.decode(headers["Authorization"], SECRET, algorithms=["HS256"], issuer=KEY)
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert claims["sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert set(claims) == {"iss", "sha256", "nbf", "iat", "exp"}
    parsed = verify_and_parse(body, headers["Authorization"], KEY, SECRET)
    assert parsed == event
    assert parsed["createdAt"] == "1715261730" and parsed["participant"]["joinedAt"] == "1715261730"
    # protojson: the receiver of the official SDK reads it too.
    lk.WebhookReceiver(lk.TokenVerifier(KEY, SECRET)).receive(body.decode(), headers["Authorization"])


def test_fake_webhooks_signed_with_another_secret_or_bearer_prefixed_are_judged_like_livekits(livekit, receiver):
    event = livekit.room_started(ROOM, at=1715261728)
    livekit.send_webhook(receiver.url, event, api_secret=OTHER_SECRET)
    body, headers = receiver.received[-1]
    with pytest.raises(CallbackAuthError):
        verify_and_parse(body, headers["Authorization"], KEY, SECRET)
    token = livekit.sign_webhook(FakeLiveKit.webhook_body(event))
    livekit.send_webhook(receiver.url, event, authorization="Bearer " + token)
    body, headers = receiver.received[-1]
    assert verify_and_parse(body, headers["Authorization"], KEY, SECRET) == event


def test_a_class_told_by_the_fakes_webhooks_matches_its_room_service(livekit, receiver):
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url, KEY, SECRET, timeout=2, backoff_base=0.01))
    spec = MeetingSpec(ROOM, "Physics", RoomSettings())
    started = provider.start_meeting(spec)
    student = Attendee("lti-user-2002", "Bob Student", JoinRole.ATTENDEE)
    metadata = lk.TokenVerifier(KEY, SECRET).verify(provider.access_token(spec, student)).metadata
    livekit.join(ROOM, student.user_id, student.full_name, metadata)
    status = provider.meeting_status(ROOM)
    sent = [
        livekit.room_started(ROOM, at=1715261728),
        livekit.participant_joined(ROOM, student.user_id, at=1715261730),
    ]
    livekit.leave(ROOM, student.user_id)
    sent += [
        livekit.participant_left(ROOM, student.user_id, at=1715265453, name=student.full_name, metadata=metadata),
        livekit.room_finished(ROOM, at=1715265460),
    ]
    for event in sent:
        livekit.send_webhook(receiver.url, event)
    events = [
        e
        for body, headers in receiver.received
        for e in events_from_webhook(verify_and_parse(body, headers["Authorization"], KEY, SECRET))
    ]
    assert [(e.kind, e.occurred_at_ms) for e in events] == [
        (MEETING_STARTED, 1715261728000),
        (USER_JOINED, 1715261730000),
        (USER_LEFT, 1715265453000),
        (MEETING_ENDED, 1715265460000),
    ]
    assert {e.run_id for e in events} == {started.run_id} == {status.run_id}
    joined, left = events[1], events[2]
    assert joined.payload["connection"] == left.payload["connection"] != ""
    assert (joined.external_user_id, joined.user_name, joined.role) == ("lti-user-2002", "Bob Student", "VIEWER")
    assert left.role == "VIEWER"
    assert len({e.payload["event_id"] for e in events}) == 4


def test_fake_events_for_a_room_it_does_not_hold_keep_their_sids(livekit):
    joined = livekit.participant_joined("other-room", "u1", at=100)
    left = livekit.participant_left("other-room", "u1", at=200, joined_at=100)
    assert joined["room"]["sid"] == left["room"]["sid"] == livekit.room_finished("other-room", at=300)["room"]["sid"]
    assert joined["participant"]["sid"] == left["participant"]["sid"]
    assert left["participant"]["state"] == "DISCONNECTED" and left["participant"]["joinedAt"] == "100"
    assert joined["id"] != left["id"]
    json_format.ParseDict(left, lk.WebhookEvent())  # valid protojson of a WebhookEvent
