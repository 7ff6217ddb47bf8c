"""The LiveKit provider: its tokens against the shared vectors and livekit-api's TokenVerifier,
its RoomService calls against a fake LiveKit over real HTTP, and its errors."""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from google.protobuf import json_format
from livekit import api as lk

from lti_tool.providers.base import (
    NOT_FOUND,
    Attendee,
    JoinRole,
    MeetingSpec,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderUnavailable,
    RoomSettings,
)
from lti_tool.providers.livekit.provider import (
    DEFAULT_TOKEN_TTL_SECONDS,
    EMPTY_TIMEOUT_SECONDS,
    LiveKitProvider,
    LiveKitServer,
    http_url,
    participant_role,
)
from tests.fakes.livekit_server import FakeLiveKit

FIXTURES = Path(__file__).parent / "fixtures" / "livekit"
TOKENS = json.loads((FIXTURES / "livekit_tokens.json").read_text())
TWIRP = json.loads((FIXTURES / "livekit_twirp.json").read_text())
XCHECK = json.loads((FIXTURES / "livekit_xcheck_report.json").read_text())
KEY, SECRET = TOKENS["api_key"], TOKENS["api_secret"]
OTHER_SECRET = "anotherSecret0123456789abcdefghijklmnopqrstuvwxyz"
FAST = {"timeout": 2.0, "retries": 3, "backoff_base": 0.01}
ROOM = "lti-c42-r7"

TEACHER = Attendee("lti-user-1001", "Alice Teacher", JoinRole.MODERATOR)
STUDENT = Attendee("lti-user-2002", "Bob  Student ", JoinRole.ATTENDEE)
CONFIG_NAMES = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


@pytest.fixture
def livekit():
    with FakeLiveKit(KEY, SECRET) as server:
        yield server


@pytest.fixture
def provider(livekit):
    return LiveKitProvider(LiveKitServer(livekit.ws_url, KEY, SECRET, **FAST))


def room(meeting_id=ROOM, name="Physics 101 Lab", **settings) -> MeetingSpec:
    return MeetingSpec(
        meeting_id=meeting_id,
        name=name,
        settings=RoomSettings(**settings),
        logout_url="https://lms.example.com/course/42",
    )


def verified(token: str, secret: str = SECRET) -> lk.access_token.Claims:
    return lk.TokenVerifier(KEY, secret).verify(token)


def claims_of(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)


def unverified_header(token: str) -> dict:
    return jwt.get_unverified_header(token)


# -- the shared vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", TOKENS["tokens"], ids=lambda v: v["label"])
def test_every_deterministic_token_vector_verifies_with_its_identity_and_grants(vector):
    claims = verified(vector["deterministic_token"])
    assert claims.identity == vector["token_verifier_identity"]
    assert dataclasses.asdict(claims.video) == vector["token_verifier_video"]
    assert claims.name == vector["deterministic_claims"].get("name", "")
    assert claims.metadata == vector["deterministic_claims"].get("metadata", "")
    assert jwt.get_unverified_header(vector["deterministic_token"]) == vector["header"]
    assert claims_of(vector["deterministic_token"]) == vector["deterministic_claims"]


@pytest.mark.parametrize("vector", TOKENS["tokens"], ids=lambda v: v["label"])
def test_every_sdk_made_token_vector_is_signed_with_the_secret_and_says_what_it_claims(vector):
    # Ephemeral (two hours): the signature and claims are checked, not the expiry.
    token = vector["sdk_token_ephemeral"]
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], issuer=KEY, options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == vector["sdk_claims"]
    assert claims["exp"] - claims["nbf"] == 2 * 3600
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OTHER_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})


def test_the_node_made_token_of_the_cross_check_is_accepted_as_python_read_it():
    node = XCHECK["npm_livekit-server-sdk_2.19.2"]
    assert node["allTokensOk"] and node["allWebhooksOk"]
    claims = jwt.decode(
        node["nodeToken"], SECRET, algorithms=["HS256"], issuer=KEY,
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims == node["python_verifies_node_token"]["raw"]
    assert jwt.get_unverified_header(node["nodeToken"]) == {"alg": "HS256"}
    for vector, seen_by_node in zip(TOKENS["tokens"], node["tokens"], strict=True):
        assert seen_by_node["ok"] and seen_by_node["sub"] == vector["token_verifier_identity"]
        assert seen_by_node["video"] == vector["deterministic_claims"]["video"]


@pytest.mark.parametrize("label", list(TOKENS["server_api_tokens"]))
def test_every_server_api_token_vector_carries_its_grant(label):
    vector = TOKENS["server_api_tokens"][label]
    claims = verified(vector["token"])
    assert claims_of(vector["token"]) == vector["claims"]
    video = claims.video
    grant = label.split("(")[1].rstrip(")")
    if grant == "roomCreate":
        assert video.room_create and not video.room_list and not video.room_admin
    elif grant == "roomList":
        assert video.room_list and not video.room_create
    elif grant == "roomAdmin + room":
        assert video.room_admin and video.room == ROOM
    else:
        assert grant == "roomRecord" and video.room_record


ROOM_SERVICE_CALLS = [c for c in TWIRP["calls"] if "/livekit.RoomService/" in c["url"]]
EGRESS_CALLS = [c for c in TWIRP["calls"] if "/livekit.Egress/" in c["url"]]
EGRESS_REQUESTS = {
    "StartRoomCompositeEgress": lk.RoomCompositeEgressRequest,
    "StopEgress": lk.StopEgressRequest,
    "ListEgress": lk.ListEgressRequest,
}


@pytest.mark.parametrize("call", ROOM_SERVICE_CALLS, ids=lambda c: c["url"].rsplit("/", 1)[1])
def test_fake_answers_every_room_service_vector_sent_as_json(livekit, call):
    livekit.join(ROOM, "lti-user-2002", "Bob Student")  # what the participant calls act on
    url = livekit.url + urlsplit(call["url"]).path
    answer = requests.post(url, headers=call["headers"], data=json.dumps(call["body"]), timeout=5)
    method = url.rsplit("/", 1)[1]
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert livekit.last(method).video == call["grant_needed"]
    assert livekit.last(method).body == call["body"]
    if method == "CreateRoom":
        assert answer.json()["metadata"] == call["body"]["metadata"]
        assert answer.json()["max_participants"] == 50
        assert isinstance(answer.json()["creation_time"], str)  # int64 as a string


def test_fake_refuses_the_admin_vector_token_for_another_room(livekit):
    call = next(c for c in ROOM_SERVICE_CALLS if c["url"].endswith("/ListParticipants"))
    answer = requests.post(
        livekit.url + "/twirp/livekit.RoomService/ListParticipants",
        headers=call["headers"], data=json.dumps({"room": "another-room"}), timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"


@pytest.mark.parametrize("call", EGRESS_CALLS, ids=lambda c: c["url"].rsplit("/", 1)[1])
def test_egress_vectors_carry_the_record_grant_and_valid_requests(call):
    token = call["headers"]["Authorization"].removeprefix("Bearer ")
    assert verified(token).video.room_record is True
    assert claims_of(token)["video"] == call["grant_needed"]
    request_type = EGRESS_REQUESTS[call["url"].rsplit("/", 1)[1]]
    json_format.ParseDict(call["body"], request_type())


# -- access tokens --------------------------------------------------------------------------------


def test_moderator_token_grants_what_the_moderator_vector_grants_but_own_metadata(provider):
    vector = next(v for v in TOKENS["tokens"] if v["label"] == "moderator")
    claims = claims_of(provider.access_token(room(), TEACHER))
    expected = {k: v for k, v in vector["deterministic_claims"]["video"].items() if k != "canUpdateOwnMetadata"}
    # No one publishes data: the classroom's messages go through the tool (livekit/messages.py).
    assert claims["video"] == {**expected, "canPublishData": False}
    assert claims["sub"] == TEACHER.user_id and claims["name"] == "Alice Teacher"
    assert json.loads(claims["metadata"]) == {"role": "moderator"}


def test_moderator_token_verifies_with_admin_record_and_every_source(provider):
    video = verified(provider.access_token(room(), TEACHER)).video
    assert (video.room_join, video.room_admin, video.room_record) == (True, True, True)
    assert (video.can_publish, video.can_subscribe, video.can_publish_data) == (True, True, False)
    assert video.can_publish_sources == ["camera", "microphone", "screen_share", "screen_share_audio"]
    assert video.room == ROOM and not video.room_create and not video.room_list
    assert not video.can_update_own_metadata and not video.hidden


def test_moderator_may_not_record_in_a_room_without_recording(provider):
    assert verified(provider.access_token(room(record=False), TEACHER)).video.room_record is None


def test_attendee_token_joins_subscribes_and_publishes_camera_and_microphone_only(provider):
    claims = verified(provider.access_token(room(), STUDENT))
    video = claims.video
    assert video.room_join and video.room == ROOM and video.can_subscribe
    assert video.can_publish and video.can_publish_sources == ["camera", "microphone"]
    assert video.can_publish_data is False  # chat and hands go through the tool
    assert not video.room_admin and not video.room_record and not video.can_update_own_metadata
    assert claims.identity == "lti-user-2002"
    assert claims.name == "Bob Student"  # spaces normalised
    assert claims.metadata == '{"role":"attendee"}'


@pytest.mark.parametrize(
    "settings, sources, can_publish",
    [
        ({}, ["camera", "microphone"], True),
        ({"lock_disable_cam": True}, ["microphone"], True),
        ({"webcams_only_for_moderator": True}, ["microphone"], True),
        ({"lock_disable_mic": True}, ["camera"], True),
        ({"lock_disable_cam": True, "lock_disable_mic": True}, None, False),
        ({"webcams_only_for_moderator": True, "lock_disable_mic": True}, None, False),
        ({"lock_disable_public_chat": True}, ["camera", "microphone"], True),
        ({"lock_disable_private_chat": True}, ["camera", "microphone"], True),
        ({"lock_disable_public_chat": True, "lock_disable_private_chat": True}, ["camera", "microphone"], True),
        ({"lock_disable_notes": True, "lock_hide_user_list": True, "mute_on_start": True},
         ["camera", "microphone"], True),
    ],
)
def test_attendee_grants_follow_the_room_locks(provider, settings, sources, can_publish):
    video = verified(provider.access_token(room(**settings), STUDENT)).video
    assert video.can_publish_sources == sources
    assert video.can_publish is can_publish
    assert video.can_publish_data is False  # whatever the chat locks: the tool checks them (messages.py)
    assert video.can_subscribe is True


@pytest.mark.parametrize(
    "settings",
    [{"lock_disable_cam": True}, {"lock_disable_mic": True}, {"webcams_only_for_moderator": True},
     {"lock_disable_public_chat": True, "lock_disable_private_chat": True}],
)
def test_locks_do_not_apply_to_moderators(provider, settings):
    video = verified(provider.access_token(room(**settings), TEACHER)).video
    assert video.can_publish_sources == ["camera", "microphone", "screen_share", "screen_share_audio"]
    assert video.can_publish_data is False and video.room_admin


def test_everyone_moderator_room_gives_students_moderator_grants(provider):
    claims = verified(provider.access_token(room(everyone_moderator=True), STUDENT))
    assert claims.video.room_admin and "screen_share" in claims.video.can_publish_sources
    assert json.loads(claims.metadata) == {"role": "moderator"}


def test_token_lives_two_hours_by_default_or_as_asked(provider):
    before = int(time.time())
    claims = claims_of(provider.access_token(room(), STUDENT))
    assert claims["exp"] - claims["nbf"] == DEFAULT_TOKEN_TTL_SECONDS == 7200
    assert before <= claims["nbf"] <= int(time.time())
    short = claims_of(provider.access_token(room(), STUDENT, ttl_seconds=300))
    assert short["exp"] - short["nbf"] == 300


def test_token_is_hs256_signed_with_the_secret_and_refused_with_another(provider):
    token = provider.access_token(room(), STUDENT)
    assert unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidSignatureError):
        verified(token, OTHER_SECRET)
    with pytest.raises(jwt.InvalidIssuerError):
        lk.TokenVerifier("another-key", SECRET).verify(token)


def test_person_without_a_name_joins_as_participant(provider):
    claims = verified(provider.access_token(room(), Attendee("u-9", "  ", JoinRole.ATTENDEE)))
    assert claims.name == "Participant"


def test_join_is_the_tools_classroom_page_with_the_token_in_the_fragment_and_no_server_call(provider, livekit):
    pages = []

    def tool_page(endpoint):
        pages.append(endpoint)
        return "/rooms/7/live?t=page-ticket"

    url = provider.join(room(), STUDENT, None, tool_page)
    assert pages == ["livekit.classroom"]
    page, _, fragment = url.partition("#lk=")
    assert page == "/rooms/7/live?t=page-ticket"
    assert fragment.count(".") == 2 and verified(fragment).identity == STUDENT.user_id
    assert livekit.calls == []


def test_role_is_read_back_from_the_metadata_the_token_carries(provider):
    assert participant_role(verified(provider.access_token(room(), TEACHER)).metadata) == "MODERATOR"
    assert participant_role(verified(provider.access_token(room(), STUDENT)).metadata) == "VIEWER"
    assert participant_role('{"lti_role":"Instructor"}') == ""
    for other in ("not json", "", "[1]", '{"role": ["moderator"]}', '{"role": "admin"}'):
        assert participant_role(other) == ""


# -- rooms ----------------------------------------------------------------------------------------


def test_start_creates_the_room_with_its_settings_and_the_room_create_grant(provider, livekit):
    status = provider.start_meeting(room(max_participants=25, mute_on_start=True, welcome="Hello"))
    call = livekit.last("CreateRoom")
    assert call.video["roomCreate"] is True and "roomAdmin" not in call.video
    assert call.content_type == "application/protobuf"  # what livekit-api sends
    assert call.body["name"] == ROOM
    assert call.body["emptyTimeout"] == EMPTY_TIMEOUT_SECONDS
    assert call.body["maxParticipants"] == 25
    metadata = json.loads(call.body["metadata"])
    assert metadata["name"] == "Physics 101 Lab"
    assert metadata["logout_url"] == "https://lms.example.com/course/42"
    assert metadata["settings"]["mute_on_start"] is True and metadata["settings"]["welcome"] == "Hello"
    assert "secret-ish" not in call.body["metadata"]  # callback URLs are not for participants' eyes
    fake_room = livekit.rooms[ROOM].room
    assert status.exists and not status.running
    assert status.run_id == fake_room.sid
    assert status.started_at_ms == fake_room.creation_time * 1000


def test_start_is_idempotent_and_keeps_the_room_and_its_creation_time(provider, livekit):
    first = provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-2002", "Bob Student", '{"role":"attendee"}')
    second = provider.start_meeting(room())
    assert livekit.count("CreateRoom") == 2 and len(livekit.rooms) == 1
    assert (second.run_id, second.started_at_ms) == (first.run_id, first.started_at_ms)
    assert second.running and second.participant_count == 1


def test_start_without_a_participant_limit_sends_none(provider, livekit):
    provider.start_meeting(room(max_participants=0))
    assert "maxParticipants" not in livekit.last("CreateRoom").body


def test_status_of_a_room_that_does_not_exist_is_not_found(provider, livekit):
    assert provider.meeting_status("no-such-room") == NOT_FOUND
    assert livekit.last("ListRooms").body == {"names": ["no-such-room"]}
    assert livekit.last("ListRooms").video["roomList"] is True
    assert livekit.count("ListParticipants") == 0


def test_status_lists_the_people_in_the_room_with_their_roles(provider, livekit):
    started = provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-1001", "Alice Teacher", '{"role":"moderator"}')
    livekit.join(ROOM, "lti-user-2002", "Bob Student", '{"role":"attendee"}')
    livekit.join(ROOM, "EG_recorder", "", "", kind="EGRESS")
    status = provider.meeting_status(ROOM)
    assert status.exists and status.running
    assert (status.run_id, status.started_at_ms) == (started.run_id, started.started_at_ms)
    assert {(p.user_id, p.full_name, p.role) for p in status.participants} == {
        ("lti-user-1001", "Alice Teacher", "MODERATOR"),
        ("lti-user-2002", "Bob Student", "VIEWER"),
    }
    assert status.participant_count == 2 and status.moderator_count == 1
    call = livekit.last("ListParticipants")
    assert call.video["roomAdmin"] is True and call.video["room"] == ROOM


def test_an_empty_room_exists_but_does_not_run(provider, livekit):
    provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-2002")
    livekit.leave(ROOM, "lti-user-2002")
    status = provider.meeting_status(ROOM)
    assert status.exists and not status.running and status.participants == ()


def test_ending_deletes_the_room_and_ending_again_is_not_an_error(provider, livekit):
    provider.start_meeting(room())
    provider.end_meeting(ROOM)
    assert ROOM not in livekit.rooms
    assert livekit.last("DeleteRoom").video["roomCreate"] is True
    provider.end_meeting(ROOM)
    assert livekit.last("DeleteRoom").status == 404
    assert provider.meeting_status(ROOM) == NOT_FOUND


def test_a_new_run_after_the_room_closed_has_a_new_sid(provider, livekit):
    first = provider.start_meeting(room())
    livekit.close(ROOM)
    assert provider.start_meeting(room()).run_id != first.run_id


def test_moderator_can_mute_a_track_with_the_admin_grant(provider, livekit):
    provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-2002", "Bob Student")
    track = livekit.publish(ROOM, "lti-user-2002", "MICROPHONE")
    assert provider.mute_participant(ROOM, "lti-user-2002", track) is True
    assert livekit.rooms[ROOM].participants["lti-user-2002"].tracks[0].muted
    call = livekit.last("MutePublishedTrack")
    assert call.body == {"room": ROOM, "identity": "lti-user-2002", "trackSid": track, "muted": True}
    assert call.video["roomAdmin"] is True and call.video["room"] == ROOM
    assert provider.mute_participant(ROOM, "lti-user-2002", track, muted=False) is True
    assert not livekit.rooms[ROOM].participants["lti-user-2002"].tracks[0].muted


def test_muting_a_track_or_person_that_is_gone_says_so(provider, livekit):
    provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-2002")
    assert provider.mute_participant(ROOM, "lti-user-2002", "TR_gone") is False
    assert provider.mute_participant(ROOM, "nobody", "TR_gone") is False


def test_moderator_can_remove_a_participant_and_removing_again_says_so(provider, livekit):
    provider.start_meeting(room())
    livekit.join(ROOM, "lti-user-2002", "Bob Student")
    assert provider.remove_participant(ROOM, "lti-user-2002") is True
    assert "lti-user-2002" not in livekit.rooms[ROOM].participants
    assert livekit.last("RemoveParticipant").video == {
        "roomAdmin": True, "room": ROOM, "canPublish": True, "canSubscribe": True, "canPublishData": True,
    }
    assert provider.remove_participant(ROOM, "lti-user-2002") is False


def test_settings_changed_during_class_reach_the_room_metadata(provider, livekit):
    provider.start_meeting(room())
    provider.update_room_settings(room(lock_disable_cam=True))
    assert json.loads(livekit.rooms[ROOM].room.metadata)["settings"]["lock_disable_cam"] is True
    assert livekit.last("UpdateRoomMetadata").video["room"] == ROOM
    provider.update_room_settings(room(meeting_id="not-running"))  # no error


def test_data_messages_reach_the_room(provider, livekit):
    provider.start_meeting(room())
    provider.send_data(ROOM, {"type": "ended"}, to_identities=("lti-user-2002",))
    sent = livekit.sent_data[-1]
    assert json.loads(sent.data) == {"type": "ended"}
    assert list(sent.destination_identities) == ["lti-user-2002"] and sent.topic == "lti"


def test_starting_a_room_registers_no_event_hook_livekit_sends_webhooks_from_its_config(provider, livekit):
    provider.start_meeting(room())
    assert [call.method for call in livekit.calls] == ["CreateRoom"]


def test_calls_work_from_threads_and_from_inside_an_event_loop(provider, livekit):
    provider.start_meeting(room())
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: provider.meeting_status(ROOM), range(12)))
    assert all(s.exists for s in statuses)

    async def from_async_code():
        return provider.meeting_status(ROOM)

    assert asyncio.run(from_async_code()).exists


# -- errors ---------------------------------------------------------------------------------------


def test_server_down_is_unavailable_after_the_retries(livekit):
    livekit.stop()
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url, KEY, SECRET, **FAST))
    with pytest.raises(ProviderUnavailable, match="after 4 attempts"):
        provider.meeting_status(ROOM)


def test_slow_server_is_unavailable_once_the_timeout_passes(livekit):
    livekit.delay_seconds = 0.5
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url, KEY, SECRET, timeout=0.1, retries=1, backoff_base=0.01))
    with pytest.raises(ProviderUnavailable):
        provider.meeting_status(ROOM)
    assert livekit.count("ListRooms") == 2


def test_server_errors_are_retried_until_the_call_succeeds(provider, livekit):
    livekit.fail_next(2, 503)
    assert provider.start_meeting(room()).exists
    assert livekit.count("CreateRoom") == 3


def test_server_errors_that_go_on_make_the_provider_unavailable_after_four_attempts(provider, livekit):
    livekit.fail_next(4)
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        provider.start_meeting(room())
    assert livekit.count("CreateRoom") == 4


def test_retries_back_off_exponentially(livekit):
    livekit.fail_next(3)
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url, KEY, SECRET, timeout=2, retries=3, backoff_base=0.05))
    started = time.monotonic()
    provider.meeting_status(ROOM)
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2


@pytest.mark.parametrize(
    "key, secret",
    [(KEY, OTHER_SECRET), ("APIanotherKey", SECRET)],
    ids=["wrong secret", "unknown key"],
)
def test_credentials_the_server_refuses_are_a_configuration_error_not_retried(livekit, key, secret):
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url, key, secret, **FAST))
    with pytest.raises(ProviderMisconfigured, match="LIVEKIT_API_KEY .* or LIVEKIT_API_SECRET") as caught:
        provider.start_meeting(room())
    assert livekit.count("CreateRoom") == 1
    assert secret not in caught.value.detail
    assert "credentials" not in caught.value.user_message  # shown to students: no administrator's words


def test_a_401_without_a_twirp_body_is_a_configuration_error_too(provider, livekit):
    livekit.fail_next(1, 401)
    with pytest.raises(ProviderMisconfigured):
        provider.meeting_status(ROOM)


def test_a_url_that_is_not_livekit_is_a_configuration_error(livekit):
    provider = LiveKitProvider(LiveKitServer(livekit.ws_url + "/not-livekit", KEY, SECRET, **FAST))
    with pytest.raises(ProviderMisconfigured, match="LIVEKIT_URL"):
        provider.meeting_status(ROOM)


def test_other_refusals_are_rejected_with_the_twirp_code(provider, livekit):
    livekit.fail_next(1, 400)
    with pytest.raises(ProviderRejected) as caught:
        provider.start_meeting(room())
    assert caught.value.message_key == "invalid_argument"


def test_calls_are_logged_with_the_room_but_without_secret_or_tokens(provider, livekit, caplog):
    caplog.set_level(logging.DEBUG)
    provider.start_meeting(room())
    livekit.fail_next(1)
    provider.meeting_status(ROOM)
    text = caplog.text
    assert ROOM in text and "create_room" in text
    assert SECRET not in text and "eyJ" not in text
    assert SECRET not in repr(provider.server)


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("wss://livekit.example.com", "https://livekit.example.com"),
        ("wss://livekit.example.com/", "https://livekit.example.com"),
        ("ws://127.0.0.1:7880", "http://127.0.0.1:7880"),
        ("WSS://LiveKit.example.com:443/rtc/", "https://LiveKit.example.com:443/rtc"),
        ("https://project.livekit.cloud", "https://project.livekit.cloud"),
        ("http://localhost:7880", "http://localhost:7880"),
        ("  wss://padded.example.com  ", "https://padded.example.com"),
    ],
)
def test_livekit_url_gives_the_api_url_at_the_same_host(url, expected):
    assert http_url(url) == expected
    assert LiveKitServer(url, KEY, SECRET).api_url == expected


@pytest.mark.parametrize("url", ["livekit.example.com", "ftp://livekit.example.com", "wss://", ""])
def test_a_livekit_url_without_a_websocket_or_http_scheme_is_refused(url):
    with pytest.raises(ValueError, match="LIVEKIT_URL"):
        http_url(url)


def _config(**values) -> dict:
    config = {"LIVEKIT_URL": "wss://livekit.example.com", "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET,
              "PROVIDER_TIMEOUT_SECONDS": 7}
    config.update(values)
    return config


@pytest.mark.parametrize("missing", [(n,) for n in CONFIG_NAMES] + [CONFIG_NAMES])
def test_provider_without_url_key_or_secret_is_not_configured_and_says_what_to_set(missing):
    provider = LiveKitProvider.from_config(_config(**dict.fromkeys(missing, "")))
    assert provider.is_configured() is False
    calls = [
        lambda: provider.start_meeting(room()),
        lambda: provider.meeting_status(ROOM),
        lambda: provider.end_meeting(ROOM),
        lambda: provider.join(room(), STUDENT, None, lambda endpoint: "/page"),
        lambda: provider.access_token(room(), STUDENT),
        lambda: provider.mute_participant(ROOM, "u", "TR_1"),
        lambda: provider.remove_participant(ROOM, "u"),
    ]
    for call in calls:
        with pytest.raises(ProviderMisconfigured) as caught:
            call()
        for name in missing:
            assert name in caught.value.detail
        assert "site's support" in caught.value.user_message and "LIVEKIT" not in caught.value.user_message


def test_provider_with_a_bad_url_is_not_configured_and_names_livekit_url():
    provider = LiveKitProvider.from_config(_config(LIVEKIT_URL="livekit.example.com"))
    assert not provider.is_configured()
    with pytest.raises(ProviderMisconfigured, match="LIVEKIT_URL must look like wss://"):
        provider.meeting_status(ROOM)


def test_provider_from_config_uses_url_key_secret_and_timeout(livekit):
    provider = LiveKitProvider.from_config(_config(LIVEKIT_URL=livekit.ws_url))
    assert provider.is_configured() and provider.name == "livekit"
    assert provider.server.timeout == 7.0 and provider.server.api_url == livekit.url
    assert provider.ws_url == livekit.ws_url
    assert provider.start_meeting(room()).exists
    assert LiveKitProvider.from_config(_config(PROVIDER_TIMEOUT_SECONDS=None)).server.timeout == 10.0


def test_token_signature_matches_a_hand_made_hs256(provider):
    """The token's signature is plain HS256 over header.payload: any JWT library accepts it."""
    import hashlib
    import hmac

    token = provider.access_token(room(), STUDENT)
    signing_input, signature = token.rsplit(".", 1)
    expected = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature
