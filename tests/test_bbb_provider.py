"""The BigBlueButton provider against the shared vectors and a fake BBB server over real HTTP."""
from __future__ import annotations

import http.client
import json
import logging
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

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
from lti_tool.providers.bbb.provider import (
    BigBlueButtonClient,
    BigBlueButtonProvider,
    create_params,
)
from tests.fakes.bbb_server import FakeBigBlueButton

FIXTURES = Path(__file__).parent / "fixtures" / "bbb"
CHECKSUMS = json.loads((FIXTURES / "bbb_checksums.json").read_text())
ENCODINGS = json.loads((FIXTURES / "bbb_encoding_variants.json").read_text())
WEBHOOKS = json.loads((FIXTURES / "bbb_webhooks.json").read_text())
SECRET = CHECKSUMS["secret"]
URL_VECTORS = CHECKSUMS["vectors"] + WEBHOOKS["hooks_create"]
FAST = {"timeout": 2.0, "retries": 3, "backoff_base": 0.01}

TEACHER = Attendee("lti-user-1001", "Alice Teacher", JoinRole.MODERATOR, "https://tool.example.com/a.png")
STUDENT = Attendee("lti-user-2002", "Bob Student", JoinRole.ATTENDEE)


@pytest.fixture
def bbb():
    with FakeBigBlueButton(SECRET) as server:
        yield server


@pytest.fixture
def client(bbb):
    return BigBlueButtonClient(bbb.url, SECRET, **FAST)


@pytest.fixture
def provider(client):
    return BigBlueButtonProvider(client)


def room(meeting_id="lti-c42-r7", name="Physics 101 Lab", **settings) -> MeetingSpec:
    return MeetingSpec(
        meeting_id=meeting_id,
        name=name,
        settings=RoomSettings(**settings),
        logout_url="https://tool.example.com/rooms/42/left",
    )


def enter(url: str) -> requests.Response:
    """What the browser does with a join URL: follow BBB's redirect into the HTML5 client."""
    return requests.get(url, timeout=5)


def redirect_errors(url: str) -> list[str]:
    """The error keys of a join that BBB refused with a redirect."""
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    errors = parse_qs(urlsplit(answer.headers["Location"]).query)["errors"][0]
    return [error["key"] for error in json.loads(errors)]


# -- checksums and URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("vector", URL_VECTORS, ids=[v["id"] for v in URL_VECTORS])
def test_client_reproduces_every_vector_url_byte_for_byte(vector):
    client = BigBlueButtonClient(CHECKSUMS["base_url"], SECRET, algorithm=vector["algorithm"])
    assert client.build_url(vector["call"], vector["params"]) == vector["url"]


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_client_encodes_tricky_values_as_the_form_plus_variant(algorithm):
    form_plus = next(v for v in ENCODINGS["variants"] if v["variant"] == "form_plus")
    client = BigBlueButtonClient("https://bbb.example.com", SECRET, algorithm=algorithm)
    url = client.build_url(form_plus["call"], form_plus["params"])
    expected = f"{form_plus['query_string']}&checksum={form_plus['checksum_' + algorithm]}"
    assert url == f"https://bbb.example.com/bigbluebutton/api/create?{expected}"


def test_empty_query_is_signed_over_the_call_name_alone():
    client = BigBlueButtonClient("https://bbb.example.com", SECRET, algorithm="sha1")
    assert client.build_url("getMeetings", []).endswith("getMeetings?checksum=d23fef405937517be465ffccae12d5c1103a5e00")


def test_booleans_are_sent_as_true_false_and_none_values_are_left_out():
    client = BigBlueButtonClient("https://bbb.example.com", SECRET)
    url = client.build_url("create", {"record": True, "muteOnStart": False, "welcome": None})
    assert "?record=true&muteOnStart=false&checksum=" in url


@pytest.mark.parametrize(
    "variant,algorithm",
    [(v["variant"], a) for v in ENCODINGS["variants"] for a in ("sha1", "sha256")],
)
def test_fake_accepts_every_encoding_variant_because_it_hashes_the_raw_query(bbb, variant, algorithm):
    vector = next(v for v in ENCODINGS["variants"] if v["variant"] == variant)
    checksum = vector["checksum_" + algorithm]
    body = _raw_get(bbb, f"/bigbluebutton/api/create?{vector['query_string']}&checksum={checksum}")
    assert "<returncode>SUCCESS</returncode>" in body
    assert bbb.meetings["enc-test_1.x~y"].name == "Ça va? A&B / 100% ~*'()+"


def test_fake_refuses_a_query_changed_after_signing(bbb):
    vector = ENCODINGS["variants"][0]
    tampered = vector["query_string"].replace("enc-test", "enc-tost")
    body = _raw_get(bbb, f"/bigbluebutton/api/create?{tampered}&checksum={vector['checksum_sha1']}")
    assert "<messageKey>checksumError</messageKey>" in body


def _raw_get(bbb, path: str) -> str:
    # http.client sends the path exactly as given (requests would normalise %7E to ~).
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(bbb.url).port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "server_url",
    [
        "https://bbb.example.com",
        "https://bbb.example.com/",
        "https://bbb.example.com/bigbluebutton",
        "https://bbb.example.com/bigbluebutton/",
        "https://bbb.example.com/bigbluebutton/api",
        "https://bbb.example.com/bigbluebutton/api/",
        "  https://bbb.example.com/bigbluebutton/api/  ",
    ],
)
def test_server_url_with_or_without_api_path_is_normalised(server_url):
    assert BigBlueButtonClient(server_url, SECRET).api_url == "https://bbb.example.com/bigbluebutton/api/"


def test_unknown_checksum_algorithm_is_refused_with_the_accepted_ones_named():
    with pytest.raises(ValueError, match="md5.*sha1, sha256, sha384, sha512"):
        BigBlueButtonClient("https://bbb.example.com", SECRET, algorithm="md5")


# -- creating and joining --------------------------------------------------------------------


def test_create_is_idempotent_and_a_repeat_keeps_the_create_time(provider, client, bbb):
    first = provider.start_meeting(room())
    second = provider.start_meeting(room())
    assert first.exists and not first.running
    assert second.started_at_ms == first.started_at_ms
    assert second.run_id == first.run_id
    assert client.create(create_params(room()))["messageKey"] == "duplicateWarning"
    assert bbb.count("create") == 3


def test_create_repeats_the_same_parameters_and_never_sends_passwords(client, bbb):
    provider = BigBlueButtonProvider(client, "https://tool.example.com", "tool-secret-key")
    spec = room()
    provider.start_meeting(spec)
    provider.start_meeting(spec)
    (_, first), (_, second) = [call for call in bbb.calls if call[0] == "create"]
    assert first == second
    assert "attendeePW" not in first and "moderatorPW" not in first


def test_create_sends_settings_and_callbacks_in_the_documented_order(bbb, client):
    provider = BigBlueButtonProvider(client, "https://tool.example.com", "tool-secret-key")
    callbacks = provider.callbacks("lti-c42-r7")
    assert callbacks["end"].startswith("https://tool.example.com/webhooks/bbb/end?meetingID=lti-c42-r7&sig=")
    spec = room(welcome="Hello", max_participants=30, lock_disable_cam=True)
    names = [name for name, value in create_params(spec, callbacks) if value is not None]
    assert names == [
        "name", "meetingID", "record", "autoStartRecording", "allowStartStopRecording", "welcome",
        "logoutURL", "maxParticipants", "webcamsOnlyForModerator", "muteOnStart",
        "lockSettingsDisableCam", "lockSettingsDisableMic", "lockSettingsDisablePrivateChat",
        "lockSettingsDisablePublicChat", "lockSettingsDisableNotes", "lockSettingsHideUserList",
        "meta_bbb-origin", "meta_endCallbackUrl", "meta_bbb-recording-ready-url",
        "meta_analytics-callback-url", "meetingKeepEvents",
    ]
    provider.start_meeting(spec)
    info = provider.client.get_meeting_info(spec.meeting_id)
    assert info["metadata"]["endcallbackurl"] == callbacks["end"]
    assert info["metadata"]["bbb-origin"] == "lti-live-class"


def test_optional_create_parameters_are_left_out_when_unset():
    names = [name for name, value in create_params(room(max_participants=0)) if value is not None]
    assert not {"welcome", "maxParticipants", "meetingKeepEvents", "meta_endCallbackUrl"} & set(names)


@pytest.mark.parametrize("name", ["A", "", "   ", "x" * 100, "Ünïcødé 🎓 " * 10])
def test_room_names_outside_bbb_limits_are_padded_or_shortened(provider, bbb, name):
    provider.start_meeting(room(name=name))
    assert 2 <= len(bbb.meetings["lti-c42-r7"].name) <= 64


def test_repeat_create_on_an_old_server_falls_back_to_meeting_info():
    with FakeBigBlueButton(SECRET, accept_passwordless_duplicate=False) as old_bbb:
        provider = BigBlueButtonProvider(BigBlueButtonClient(old_bbb.url, SECRET, **FAST))
        first = provider.start_meeting(room())
        second = provider.start_meeting(room())
        assert second.exists and second.started_at_ms == first.started_at_ms
        assert old_bbb.count("getMeetingInfo") == 1


@pytest.mark.parametrize("attendee,role", [(TEACHER, "MODERATOR"), (STUDENT, "VIEWER")])
def test_join_url_puts_the_person_into_the_meeting_with_their_role(provider, bbb, attendee, role):
    status = provider.start_meeting(room())
    answer = enter(provider.join_url(room(), attendee, status.started_at_ms))
    assert answer.status_code == 200
    assert answer.history[0].status_code == 302
    assert urlsplit(answer.url).path == "/html5client/join"
    assert bbb.joins[-1].role == role and bbb.joins[-1].user_id == attendee.user_id
    assert provider.meeting_status("lti-c42-r7").running


def test_everyone_moderator_room_lets_students_join_as_moderators(provider, bbb):
    spec = room(everyone_moderator=True)
    status = provider.start_meeting(spec)
    enter(provider.join_url(spec, STUDENT, status.started_at_ms))
    assert bbb.joins[-1].role == "MODERATOR"


def test_meeting_runs_only_once_someone_has_entered(provider, client, bbb):
    status = provider.start_meeting(room())
    provider.join_url(room(), TEACHER, status.started_at_ms)
    assert not provider.meeting_status("lti-c42-r7").running
    bbb.enter("lti-c42-r7", TEACHER.user_id, role="MODERATOR")
    running = provider.meeting_status("lti-c42-r7")
    assert running.running and running.participant_count == 1 and running.moderator_count == 1
    assert client.is_meeting_running("lti-c42-r7")


def test_join_url_of_an_earlier_run_is_refused_after_the_meeting_was_recreated(provider, bbb):
    old = provider.start_meeting(room())
    bbb.expire("lti-c42-r7")
    new = provider.start_meeting(room())
    assert new.started_at_ms != old.started_at_ms
    assert redirect_errors(provider.join_url(room(), STUDENT, old.started_at_ms)) == ["mismatchCreateTimeParam"]


def test_join_for_a_meeting_that_does_not_exist_redirects_with_not_found(provider):
    assert redirect_errors(provider.join_url(room(), STUDENT, None)) == ["notFound"]


def test_join_signed_with_the_wrong_secret_redirects_with_checksum_error(provider, bbb):
    status = provider.start_meeting(room())
    forger = BigBlueButtonProvider(BigBlueButtonClient(bbb.url, "not-the-secret"))
    assert redirect_errors(forger.join_url(room(), STUDENT, status.started_at_ms)) == ["checksumError"]


def test_fake_refuses_a_repeat_create_with_other_passwords(client):
    legacy = [("name", "Physics 101 Lab"), ("meetingID", "legacy-room"), ("attendeePW", "ap"), ("moderatorPW", "mp")]
    client.create(legacy)
    assert client.create(legacy)["messageKey"] == "duplicateWarning"
    with pytest.raises(ProviderRejected) as failure:
        client.create(legacy[:2] + [("attendeePW", "other"), ("moderatorPW", "mp")])
    assert failure.value.message_key == "idNotUnique"


def test_fake_joins_by_legacy_password_and_refuses_a_wrong_one(client, bbb):
    client.create([("name", "Legacy"), ("meetingID", "legacy-room"), ("attendeePW", "ap"), ("moderatorPW", "mp")])
    enter(client.join_url([("fullName", "Ann"), ("meetingID", "legacy-room"), ("password", "mp")]))
    assert bbb.joins[-1].role == "MODERATOR"
    wrong = requests.get(
        client.join_url([("fullName", "Ann"), ("meetingID", "legacy-room"), ("password", "x")]), timeout=5
    )
    assert "<messageKey>invalidPassword</messageKey>" in wrong.text


def test_fake_requires_a_meeting_name_of_two_to_sixty_four_characters(client):
    for name in ("", "A", "x" * 65):
        with pytest.raises(ProviderRejected):
            client.create([("name", name), ("meetingID", "lti-c42-r7")])


def test_fake_lists_meetings_and_accepts_create_by_post(client, bbb):
    assert client.call("getMeetings")["messageKey"] == "noMeetings"
    answer = requests.post(client.build_url("create", [("name", "Posted"), ("meetingID", "posted")]), timeout=5)
    assert "<returncode>SUCCESS</returncode>" in answer.text
    assert client.call("getMeetings")["meetings"]["meeting"]["meetingID"] == "posted"


# -- status and ending -----------------------------------------------------------------------


def test_status_of_a_meeting_that_does_not_exist_is_not_found(provider, client):
    assert provider.meeting_status("never-created") == NOT_FOUND
    assert client.is_meeting_running("never-created") is False


def test_status_reports_the_run_and_when_it_started(provider, bbb):
    created = provider.start_meeting(room())
    status = provider.meeting_status("lti-c42-r7")
    assert status.exists and status.started_at_ms == created.started_at_ms
    assert status.run_id == bbb.meetings["lti-c42-r7"].internal_id


def test_ending_removes_the_meeting_and_ending_again_is_not_an_error(provider, bbb):
    provider.start_meeting(room())
    provider.end_meeting("lti-c42-r7")
    assert provider.meeting_status("lti-c42-r7") == NOT_FOUND
    provider.end_meeting("lti-c42-r7")
    assert bbb.count("end") == 2


# -- recordings ------------------------------------------------------------------------------


def test_recordings_are_listed_with_the_presentation_playback(provider, bbb):
    first = bbb.add_recording("lti-c42-r7", name="Week 1", formats=("podcast", "presentation"))
    second = bbb.add_recording("lti-c42-r7", name="Week 2", published=False, formats=("video",))
    bbb.add_recording("another-room")
    recordings = {r.record_id: r for r in provider.recordings("lti-c42-r7")}
    assert set(recordings) == {first, second}
    assert recordings[first].playback_url.endswith(f"/playback/presentation/2.3/{first}")
    assert recordings[first].published and recordings[first].length_minutes == 60
    assert recordings[second].playback_url.endswith(f"/playback/video/2.3/{second}")
    assert not recordings[second].published
    assert recordings[first].ended_at_ms > recordings[first].started_at_ms
    assert recordings[first].run_id == first  # BBB's record id is the run's internal meeting id


def test_single_recording_and_no_recordings_are_both_lists(provider, bbb):
    assert provider.recordings("lti-c42-r7") == []
    only = bbb.add_recording("lti-c42-r7", name="Only one", participants=7)
    [recording] = provider.recordings("lti-c42-r7")
    assert (recording.record_id, recording.name) == (only, "Only one")


def test_recording_can_be_unpublished_and_published_again(provider, bbb):
    record_id = bbb.add_recording("lti-c42-r7")
    provider.publish_recording(record_id, False)
    assert not provider.recordings("lti-c42-r7")[0].published
    provider.publish_recording(record_id, True)
    assert provider.recordings("lti-c42-r7")[0].published


def test_a_renamed_recording_is_listed_with_its_new_name(provider, bbb):
    record_id = bbb.add_recording("lti-c42-r7", name="Class of 3 May")
    provider.rename_recording(record_id, "Fractions, part 2")
    assert bbb.recording(record_id).metadata["name"] == "Fractions, part 2"
    assert provider.recordings("lti-c42-r7")[0].name == "Fractions, part 2"
    with pytest.raises(ProviderRejected):
        provider.rename_recording("no-such-recording", "x")


def test_publishing_a_recording_that_is_gone_is_rejected(provider):
    with pytest.raises(ProviderRejected) as failure:
        provider.publish_recording("no-such-recording", True)
    assert failure.value.message_key == "notFound"


def test_deleted_recording_disappears_and_deleting_again_is_not_an_error(provider, bbb):
    record_id = bbb.add_recording("lti-c42-r7")
    provider.delete_recording(record_id)
    assert provider.recordings("lti-c42-r7") == []
    provider.delete_recording(record_id)


# -- webhooks --------------------------------------------------------------------------------


def test_hooks_can_be_created_listed_and_destroyed(client):
    callback = "https://tool.example.com/webhooks/bbb/events?t=abc"
    hook_id = client.hooks_create(callback, meeting_id="lti-c42-r7", event_ids=["user-joined", "user-left"])
    assert client.hooks_create(callback) == hook_id  # same URL again: duplicateWarning
    [hook] = client.hooks_list()
    assert (hook["hookID"], hook["callbackURL"], hook["meetingID"]) == (hook_id, callback, "lti-c42-r7")
    assert client.hooks_destroy(hook_id) is True
    assert client.hooks_destroy(hook_id) is False
    assert client.hooks_list() == []


# -- failures --------------------------------------------------------------------------------


def test_server_down_is_unavailable_after_the_retries(bbb):
    client = BigBlueButtonClient(bbb.url, SECRET, timeout=1.0, retries=2, backoff_base=0.01)
    bbb.stop()
    with pytest.raises(ProviderUnavailable):
        BigBlueButtonProvider(client).meeting_status("lti-c42-r7")


def test_slow_server_is_unavailable_once_the_timeout_passes(bbb):
    bbb.delay_seconds = 0.5
    client = BigBlueButtonClient(bbb.url, SECRET, timeout=0.1, retries=1, backoff_base=0.01)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        BigBlueButtonProvider(client).start_meeting(room())
    assert bbb.count("create") == 2
    assert time.monotonic() - started < 2


def test_server_errors_are_retried_until_the_call_succeeds(provider, bbb):
    bbb.fail_next(2, status=502)
    assert provider.start_meeting(room()).exists
    assert bbb.count("create") == 3


def test_server_errors_that_go_on_make_the_provider_unavailable_after_four_attempts(provider, bbb):
    bbb.fail_next(10, status=500)
    with pytest.raises(ProviderUnavailable):
        provider.start_meeting(room())
    assert bbb.count("create") == 4


def test_retries_back_off_exponentially(bbb):
    client = BigBlueButtonClient(bbb.url, SECRET, timeout=1.0, retries=3, backoff_base=0.05)
    bbb.fail_next(10)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        client.end("lti-c42-r7")
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2


def test_proxy_refusal_means_the_url_may_be_wrong_and_is_not_retried(provider, bbb):
    bbb.fail_next(1, status=404)
    with pytest.raises(ProviderMisconfigured, match="BBB_SERVER_URL .* may be wrong"):
        provider.meeting_status("lti-c42-r7")
    assert bbb.count("getMeetingInfo") == 1


def test_an_answer_that_is_not_bbb_xml_is_rejected(provider, bbb):
    bbb.fail_next(1, status=200)  # an HTML page with 200, as a captive portal would send
    with pytest.raises(ProviderRejected):
        provider.meeting_status("lti-c42-r7")


def test_checksum_error_tells_admin_secret_or_algorithm_is_wrong(bbb):
    wrong_secret = "0123456789abcdef-wrong"
    provider = BigBlueButtonProvider(BigBlueButtonClient(bbb.url, wrong_secret, **FAST))
    with pytest.raises(ProviderMisconfigured) as failure:
        provider.start_meeting(room())
    assert "shared secret" in failure.value.detail and "algorithm" in failure.value.detail
    assert wrong_secret not in str(failure.value) and SECRET not in str(failure.value)
    assert bbb.count("create") == 1  # a wrong secret does not get better by retrying


def test_algorithm_the_server_does_not_allow_is_a_configuration_error():
    with FakeBigBlueButton(SECRET, allowed_algorithms=("sha1",)) as sha1_only:
        sha256 = BigBlueButtonProvider(BigBlueButtonClient(sha1_only.url, SECRET, algorithm="sha256", **FAST))
        with pytest.raises(ProviderMisconfigured, match="BBB_CHECKSUM_ALGORITHM=sha256"):
            sha256.start_meeting(room())
        sha1 = BigBlueButtonProvider(BigBlueButtonClient(sha1_only.url, SECRET, algorithm="sha1", **FAST))
        assert sha1.start_meeting(room()).exists


def test_calls_are_logged_with_meeting_id_but_without_secret_or_checksum(provider, bbb, caplog):
    caplog.set_level(logging.INFO, logger="lti_tool.providers.bbb")
    status = provider.start_meeting(room())
    provider.join_url(room(), TEACHER, status.started_at_ms)
    log = "\n".join(r.getMessage() for r in caplog.records if r.name == "lti_tool.providers.bbb")
    assert "create" in log and "lti-c42-r7" in log and "SUCCESS" in log
    assert SECRET not in log and "checksum=" not in log


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{}, {"BBB_SERVER_URL": "https://bbb.example.com"}, {"BBB_SHARED_SECRET": SECRET},
     {"BBB_SERVER_URL": " ", "BBB_SHARED_SECRET": SECRET}],
)
def test_provider_without_url_or_secret_is_not_configured(config):
    provider = BigBlueButtonProvider.from_config(config)
    assert not provider.is_configured()
    with pytest.raises(ProviderMisconfigured, match="set BBB_SERVER_URL and BBB_SHARED_SECRET") as failure:
        provider.start_meeting(room())
    assert "support" in failure.value.user_message and "BBB_" not in failure.value.user_message  # students read it
    with pytest.raises(ProviderMisconfigured):
        provider.join_url(room(), STUDENT, None)


def test_provider_from_config_uses_url_secret_algorithm_and_timeout(bbb):
    provider = BigBlueButtonProvider.from_config({
        "BBB_SERVER_URL": bbb.url + "/bigbluebutton/",
        "BBB_SHARED_SECRET": SECRET,
        "BBB_CHECKSUM_ALGORITHM": "sha512",
        "PROVIDER_TIMEOUT_SECONDS": 3.5,
    })
    assert provider.is_configured() and provider.name == "bbb"
    assert (provider.client.api_url, provider.client.algorithm, provider.client.timeout) == (bbb.api_url, "sha512", 3.5)
    assert provider.start_meeting(room()).exists
    assert SECRET not in repr(provider.client)


# -- what the core calls: join with the run's id, hooks and callbacks arranged at start -----------


def test_join_takes_the_create_time_from_the_run_it_is_given(client, bbb):
    provider = BigBlueButtonProvider(client, "https://tool.example.com", "tool-secret-key")
    status = provider.start_meeting(room())
    url = provider.join(room(), STUDENT, status.run_id, lambda endpoint: pytest.fail("BBB needs no page of the tool"))
    assert parse_qs(urlsplit(url).query)["createTime"] == [str(status.started_at_ms)]
    assert enter(url).status_code == 200


def test_starting_registers_the_tools_event_hook_once_per_ten_minutes(client, bbb):
    provider = BigBlueButtonProvider(client, "https://tool.example.com", "tool-secret-key")
    provider.start_meeting(room())
    provider.start_meeting(room("another-room"))
    assert bbb.count("hooks/create") == 1
    assert dict(next(params for name, params in bbb.calls if name == "hooks/create"))["callbackURL"] == \
        "https://tool.example.com/webhooks/bbb"
