"""Recording a LiveKit class with LiveKit Egress: teachers start and stop it from the classroom
page through the tool (POST /rooms/<id>/live/recording), which calls the Egress Twirp API with a
`roomRecord` grant; the finished file is reported by LiveKit's signed `egress_ended` webhook.

Real HTTP throughout: the tool is served (`live` fixture) and talks to the FakeLiveKit's Egress
endpoints. Recording is offered only when LIVEKIT_RECORDING_FILEPATH is set and the room's
settings allow recording (`record`), and only to teachers.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from livekit import api as lk
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ProviderEvent, Room
from lti_tool.providers.base import ProviderRejected
from lti_tool.providers.livekit.provider import LiveKitProvider, LiveKitServer
from tests.fakes.livekit_server import EGRESS_COMPLETE, FakeLiveKit, TwirpError

FILEPATH = "recordings/{room_name}-{time}.mp4"
RECORDING = {"LIVEKIT_RECORDING_FILEPATH": FILEPATH}
EGRESS_METHODS = ("StartRoomCompositeEgress", "StopEgress", "ListEgress")
FIXTURES = Path(__file__).parent / "fixtures" / "livekit"


@pytest.fixture
def livekit_link(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    return "40"


def join_token(person) -> str:
    response = person.join()
    assert response.status_code == 302, response.text[:300]
    return parse_qs(urlsplit(response.headers["Location"]).fragment)["lk"][0]


def meeting_id(live) -> str:
    with live.app.app_context():
        return db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))


def egress_calls(live) -> int:
    return sum(live.livekit.count(method) for method in EGRESS_METHODS)


def page_config(person, token: str) -> dict:
    page = person.get("/live")
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'<script type="application/json" id="lk-config">(.*?)</script>', page.text, re.DOTALL)
    return json.loads(found.group(1))


def record(person, action: str):
    return person.post("/live/recording", action=action)


# --------------------------------------------------------------------------- start and stop
@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_teacher_starts_and_stops_recording_through_egress_with_the_record_grant(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    token = join_token(teacher)
    room = meeting_id(live)
    config = page_config(teacher, token)
    assert config["recordingAvailable"] is True and config["recordingActive"] is False
    assert config["recordingUrl"] == f"/rooms/{teacher.room_id}/live/recording"

    started = record(teacher, "start")
    assert started.status_code == 200, started.text
    egress_id = started.json()["egress_id"]
    assert started.json() == {"recording": True, "egress_id": egress_id} and egress_id.startswith("EG_")
    [egress] = live.livekit.active_egresses(room)
    assert egress.egress_id == egress_id and egress.room_name == room
    request = egress.room_composite
    assert request.room_name == room and request.layout == "speaker"
    assert [(o.filepath, o.file_type) for o in request.file_outputs] == [(FILEPATH, lk.EncodedFileType.MP4)]
    call = live.livekit.last("StartRoomCompositeEgress")
    assert call.status == 200 and call.video.get("roomRecord") is True
    assert call.content_type == "application/protobuf"  # livekit-api's own client made the call
    assert call.body["fileOutputs"] == [{"fileType": "MP4", "filepath": FILEPATH}]
    assert live.livekit.last("ListEgress").body == {"roomName": room, "active": True}
    assert live.livekit.last("ListEgress").video.get("roomRecord") is True

    # Everyone who opens the page now sees that the class is recorded; only teachers get the toggle.
    student = live.launch("student", resource_link_id=livekit_link)
    student_config = page_config(student, join_token(student))
    assert student_config["recordingActive"] is True and student_config["recordingAvailable"] is False
    student_page = student.get("/live").text
    assert 'id="toggle-recording"' not in student_page and 'id="lk-recording"' in student_page
    teacher_page = teacher.get("/live").text
    assert re.search(r'id="toggle-recording"[^>]*aria-pressed="true"', teacher_page)
    assert "Stop recording" in teacher_page

    again = record(teacher, "start")
    assert again.status_code == 409 and again.json()["recording"] is True
    assert "already being recorded" in again.json()["error"]
    assert live.livekit.count("StartRoomCompositeEgress") == 1

    stopped = record(teacher, "stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {"recording": False, "egress_id": egress_id}
    assert live.livekit.egresses[egress_id].status == EGRESS_COMPLETE
    assert live.livekit.active_egresses(room) == []
    assert live.livekit.last("StopEgress").body == {"egressId": egress_id}
    assert live.livekit.last("StopEgress").video.get("roomRecord") is True
    [result] = live.livekit.egresses[egress_id].file_results
    assert result.filename.startswith(f"recordings/{room}-") and result.filename.endswith(".mp4")

    again = record(teacher, "stop")
    assert again.status_code == 409 and again.json()["recording"] is False
    assert "not being recorded" in again.json()["error"]
    assert page_config(teacher, token)["recordingActive"] is False


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_students_cannot_start_or_stop_a_recording(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    student = live.launch("student", resource_link_id=livekit_link)
    join_token(teacher)
    before = egress_calls(live)
    for action in ("start", "stop"):
        answer = record(student, action)
        assert answer.status_code == 403, answer.text
    assert egress_calls(live) == before
    assert live.livekit.egresses == {}


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_stop_ends_every_recording_of_the_room(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    join_token(teacher)
    room = meeting_id(live)
    first = record(teacher, "start").json()["egress_id"]
    # A second egress of the room, started elsewhere (another teacher's click racing this one).
    provider = live.app.extensions["providers"]["livekit"]
    second = provider.start_recording(room)
    assert {e.egress_id for e in live.livekit.active_egresses(room)} == {first, second}
    assert record(teacher, "stop").status_code == 200
    assert live.livekit.active_egresses(room) == []


def test_recording_not_configured_answers_409_without_any_egress_call(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    token = join_token(teacher)
    config = page_config(teacher, token)
    assert config["recordingAvailable"] is False and config["recordingActive"] is False
    assert 'id="toggle-recording"' not in teacher.get("/live").text
    for action in ("start", "stop"):
        answer = record(teacher, action)
        assert answer.status_code == 409 and "not set up" in answer.json()["error"]
        assert answer.json()["recording"] is False
    assert egress_calls(live) == 0


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_room_whose_settings_forbid_recording_answers_409_without_any_egress_call(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    saved = teacher.post("/settings", wait_for_moderator="on")  # every other box unticked: record off
    assert saved.status_code == 303, saved.text[:300]
    token = join_token(teacher)
    assert page_config(teacher, token)["recordingAvailable"] is False
    listed = egress_calls(live)  # the room page lists the room's recordings (docs/recordings.md)
    answer = record(teacher, "start")
    assert answer.status_code == 409 and "turned off" in answer.json()["error"]
    assert egress_calls(live) == listed


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_unknown_action_is_refused(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    join_token(teacher)
    listed = egress_calls(live)  # the room page lists the room's recordings (docs/recordings.md)
    assert record(teacher, "pause").status_code == 400
    assert egress_calls(live) == listed


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_recording_a_room_that_is_not_running_answers_409(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    join_token(teacher)
    live.livekit.close(meeting_id(live))  # LiveKit closed the empty room
    answer = record(teacher, "start")
    assert answer.status_code == 409 and "not running" in answer.json()["error"]
    assert live.livekit.egresses == {}


@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_egress_failure_on_start_is_reported_and_not_retried(live, livekit_link, monkeypatch):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    join_token(teacher)
    live.livekit.fail_next(1, 500)  # the ListEgress before the start: retried, then fine

    def egress_not_connected(req):  # what LiveKit answers when no Egress service is running
        raise TwirpError("internal", "egress not connected (redis required)")

    with monkeypatch.context() as patch:
        patch.setattr(live.livekit, "_StartRoomCompositeEgress", egress_not_connected)
        answer = record(teacher, "start")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"].startswith("The recording could not be started.")
    assert "recording" not in answer.json()
    assert live.livekit.count("StartRoomCompositeEgress") == 1  # a start is never repeated blindly
    assert record(teacher, "start").status_code == 200  # Egress back: it works


# --------------------------------------------------------------------------- the webhook
@pytest.mark.parametrize("live_overrides", [RECORDING])
def test_egress_ended_webhook_is_accepted_and_stored_as_recording_ready(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    join_token(teacher)
    room = meeting_id(live)
    egress_id = record(teacher, "start").json()["egress_id"]
    livekit = live.livekit
    hook = live.url + "/webhooks/livekit"
    started = livekit.egress_started(egress_id, at=1_715_261_800)
    assert started["egressInfo"]["status"] == "EGRESS_ACTIVE" and started["room"]["name"] == room
    assert livekit.send_webhook(hook, started).status_code == 200
    assert record(teacher, "stop").status_code == 200
    ended = livekit.egress_ended(egress_id, at=1_715_265_401)
    info = ended["egressInfo"]
    assert ended["event"] == "egress_ended" and info["status"] == "EGRESS_COMPLETE"
    assert info["egressId"] == egress_id and info["roomName"] == room
    assert isinstance(info["startedAt"], str) and isinstance(info["fileResults"][0]["duration"], str)  # int64
    answer = livekit.send_webhook(hook, ended)
    assert answer.status_code == 200, answer.text
    assert livekit.send_webhook(hook, ended).status_code == 200  # a retried delivery: stored once
    with live.app.app_context():
        rows = db.session.scalars(select(ProviderEvent).where(ProviderEvent.kind == "recording_ready")).all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.provider, row.meeting_id) == ("livekit", room)
        assert row.payload["record_id"] == egress_id and row.payload["status"] == "EGRESS_COMPLETE"
        [file] = row.payload["files"]
        assert file["filename"] == info["fileResults"][0]["filename"] and file["location"].startswith("fake-storage://")
        others = select(db.func.count(ProviderEvent.id)).where(ProviderEvent.kind != "recording_ready")
        assert db.session.scalar(others) == 0


def test_forged_egress_ended_webhook_is_refused(live):
    livekit = live.livekit
    event = livekit.egress_ended("EG_made_up", at=1_715_265_401, room="some-room", filename="x.mp4")
    answer = livekit.send_webhook(live.url + "/webhooks/livekit", event, api_secret="not-the-secret")
    assert answer.status_code == 401
    with live.app.app_context():
        assert db.session.scalar(select(db.func.count(ProviderEvent.id))) == 0


# --------------------------------------------------------------------------- provider and fake
KEY, SECRET = "APIegressKey", "egressSecret0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def fake():
    with FakeLiveKit(KEY, SECRET) as server:
        yield server


def provider_for(fake: FakeLiveKit, filepath: str = FILEPATH) -> LiveKitProvider:
    return LiveKitProvider(LiveKitServer(fake.ws_url, KEY, SECRET, timeout=2.0, retries=2, backoff_base=0.01),
                           recording_filepath=filepath)


def test_provider_recording_calls(fake):
    provider = provider_for(fake)
    assert provider.recording_available
    fake.join("room-1", "u1", "Ann")
    assert provider.active_recording("room-1") is None
    egress_id = provider.start_recording("room-1")
    assert provider.active_recording("room-1") == egress_id
    assert provider.active_recording("room-2") is None
    provider.stop_recording(egress_id)
    assert provider.active_recording("room-1") is None
    provider.stop_recording(egress_id)  # already complete: not an error
    provider.stop_recording("EG_unknown")  # gone: not an error
    assert fake.last("StopEgress").status == 404


def test_provider_without_filepath_offers_no_recording_and_calls_nothing(fake):
    provider = provider_for(fake, filepath="  ")
    assert not provider.recording_available
    assert provider.active_recording("room-1") is None
    with pytest.raises(ProviderRejected) as caught:
        provider.start_recording("room-1")
    assert "LIVEKIT_RECORDING_FILEPATH" in caught.value.detail
    assert sum(fake.count(m) for m in EGRESS_METHODS) == 0


def test_provider_from_config_reads_the_recording_filepath():
    config = {"LIVEKIT_URL": "wss://livekit.example.com", "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
    assert not LiveKitProvider.from_config(config).recording_available
    provider = LiveKitProvider.from_config({**config, "LIVEKIT_RECORDING_FILEPATH": " rec/{room_name}.ogg "})
    assert provider.recording_available and provider.recording_filepath == "rec/{room_name}.ogg"
    assert not LiveKitProvider.from_config({"LIVEKIT_RECORDING_FILEPATH": FILEPATH}).recording_available


def test_a_token_without_the_record_grant_is_refused_by_the_fake(fake):
    fake.join("room-1", "u1")
    token = lk.AccessToken(KEY, SECRET).with_grants(lk.VideoGrants(room_admin=True, room="room-1")).to_jwt()
    answer = requests.post(f"{fake.url}/twirp/livekit.Egress/ListEgress", json={"roomName": "room-1"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"


def test_the_fake_answers_the_shared_egress_vectors_in_json():
    """The ready-made Twirp JSON calls of tests/fixtures (their durable tokens, their bodies)."""
    twirp = json.loads((FIXTURES / "livekit_twirp.json").read_text())
    tokens = json.loads((FIXTURES / "livekit_tokens.json").read_text())
    calls = {c["url"].rsplit("/", 1)[1]: c for c in twirp["calls"]}
    with FakeLiveKit(tokens["api_key"], tokens["api_secret"]) as vectors_fake:

        def send(name, body=None):
            call = calls[name]
            url = vectors_fake.url + urlsplit(call["url"]).path
            return requests.post(url, json=body or call["body"], headers=call["headers"], timeout=5)

        assert send("CreateRoom").status_code == 200
        started = send("StartRoomCompositeEgress")
        assert started.status_code == 200, started.text
        info = started.json()
        assert info["room_name"] == "lti-c42-r7" and info["status"] == "EGRESS_ACTIVE"
        listed = send("ListEgress").json()["items"]
        assert [item["egress_id"] for item in listed] == [info["egress_id"]]
        stopped = send("StopEgress", {"egressId": info["egress_id"]})
        assert stopped.status_code == 200 and stopped.json()["status"] == "EGRESS_COMPLETE"
        assert send("ListEgress").json().get("items", []) == []
        assert send("StopEgress").status_code == 404  # EG_kit0001 never existed here


# --------------------------------------------------------------------------- the page in a browser
try:
    from tests import livekit_classroom as browser_tests
except pytest.skip.Exception:  # no Chromium or Playwright: the browser test below is skipped
    browser_tests = None
else:
    classroom = browser_tests.classroom  # fixture, reused (`browser` comes from conftest)


@pytest.mark.skipif(browser_tests is None, reason="browser tests need Chromium and Playwright")
def test_classroom_page_shows_the_recording_toggle_only_when_recording_is_configured(browser, classroom):
    expect = browser_tests.expect
    teacher = classroom.join(classroom.launch("teacher"))
    plain = browser_tests.open_page(browser, classroom, teacher, **browser_tests.DESKTOP)
    browser_tests.wait_until_connection_failed(plain)
    expect(plain.page.locator("#toggle-recording")).to_have_count(0)
    expect(plain.page.locator("#lk-recording")).to_be_hidden()
    plain.page.context.close()

    classroom.app.extensions["providers"]["livekit"].recording_filepath = FILEPATH  # as if configured
    teacher = classroom.join(teacher)
    watched = browser_tests.open_page(browser, classroom, teacher, **browser_tests.PHONE)
    page = watched.page
    browser_tests.wait_until_connection_failed(watched)
    toggle = page.locator("#toggle-recording")
    expect(toggle).to_be_visible()
    expect(toggle).to_be_enabled()  # through the tool: works while the page is not connected
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(toggle).to_have_text(re.compile("Start recording"))
    assert browser_tests.overflowing_controls(page) == []
    width, client = browser_tests.no_horizontal_scroll(page)
    assert width <= client

    with page.expect_response(re.compile(r"/live/recording$")) as answered:
        toggle.click()
    assert answered.value.status == 200
    page_ticket = page.evaluate("() => window.liveClassroom.config.ticket")
    assert parse_qs(answered.value.request.post_data) == {"t": [page_ticket], "action": ["start"]}
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_text(re.compile("Stop recording"))
    expect(page.locator("#lk-recording")).to_be_visible()
    expect(page.locator("#lk-announce")).to_have_text("Recording started.")
    page.screenshot(path="/tmp/lk-recording-phone.png")
    meeting = classroom.meeting_id(teacher.room_id)
    assert len(classroom.livekit.active_egresses(meeting)) == 1

    with page.expect_response(re.compile(r"/live/recording$")):
        toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#lk-recording")).to_be_hidden()
    assert classroom.livekit.active_egresses(meeting) == []
    assert watched.errors == [], watched.errors
    assert watched.http_failures_outside_livekit() == []
    page.context.close()

    # A student sees no toggle; the indicator follows a teacher's message and LiveKit's word.
    student = classroom.join(classroom.launch("student"))
    seen = browser_tests.open_page(browser, classroom, student, **browser_tests.DESKTOP)
    page = seen.page
    browser_tests.wait_until_connection_failed(seen)
    expect(page.locator("#toggle-recording")).to_have_count(0)
    indicator = page.locator("#lk-recording")
    expect(indicator).to_be_hidden()
    browser_tests.add_remote(page, "u-terry", "Terry Teacher", "moderator")
    browser_tests.add_remote(page, "u-sally", "Sally Student", "attendee")
    browser_tests.receive_data(page, "u-sally", {"type": "recording", "active": True})  # not a teacher: ignored
    expect(indicator).to_be_hidden()
    browser_tests.receive_data(page, "u-terry", {"type": "recording", "active": True})
    expect(indicator).to_be_visible()
    expect(indicator).to_have_text(re.compile("Recording"))
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.RecordingStatusChanged, false)")
    expect(indicator).to_be_hidden()
    assert seen.errors == [], seen.errors
    page.context.close()
