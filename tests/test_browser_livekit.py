"""The tool's own LiveKit classroom page in headless Chromium.

The tool is served over real HTTP with LIVEKIT_URL pointing at the FakeLiveKit (tests/fakes/
livekit_server.py): its RoomService answers the tool's calls (create the room on `join`, mute,
remove, end), but it speaks no WebRTC signalling, so the page's WebSocket to it fails. The page
must get as far as connecting with the token the tool gave it, say that it could not connect,
and otherwise work: the controls each role should have, the participant list, chat and raised
hands (remote participants and their data messages are handed to the page's livekit-client
Room as the SDK would hand them), teacher actions through the tool, leave, a phone screen and
an LMS iframe with and without camera permission.

Skipped when Debian's Chromium (/usr/bin/chromium) or Playwright is missing.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import select

from lti_tool import create_app
from lti_tool.extensions import db
from lti_tool.models import Enrolment, Room, User
from tests.browser_support import expect
from tests.conftest import empty_tables, room_ticket_in
from tests.fakes.http_server import ServedApp
from tests.fakes.livekit_server import FakeLiveKit
from tests.fakes.lti_platform import FakePlatform

LK_KEY = "APIclassroomtest"
LK_SECRET = "classroom-test-secret-0123456789abcdef"
LINK_ID = "lk1"
PHONE = {"viewport": {"width": 375, "height": 667}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
VENDOR_SCRIPT = "/static/vendor/livekit-client.umd.js"


# --------------------------------------------------------------------------- servers
class _Later:
    """A WSGI app bound now and filled in later: the tool must know its URL before it exists."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _frame_page(target: dict):
    """The LMS's activity page (on the platform's origin) embedding `target["url"]` in an iframe
    with `target["allow"]`."""

    def page(query: dict) -> str:
        allow = f' allow="{html.escape(target["allow"])}"' if target.get("allow") else ""
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>Course</title></head>
<body><iframe name="tool" title="Live class" src="{html.escape(target["url"])}"{allow}
 style="width:100%;height:600px;border:0"></iframe></body></html>"""

    return page


@dataclass
class Joined:
    """Someone who launched the LiveKit activity and followed `join`: the page URL with its token."""

    session: requests.Session
    room_id: int
    ticket: str  # the room ticket of the room page's forms
    page_url: str = ""
    token: str = ""


@dataclass
class Classroom:
    tool: ServedApp
    platform: FakePlatform
    livekit: FakeLiveKit
    app: object
    frame_target: dict

    def launch(self, user: str) -> Joined:
        session = requests.Session()
        answer = self.platform.launch(session, user=user, resource_link_id=LINK_ID)
        assert answer.status_code == 303, answer.text[:300]
        room_page = session.get(urljoin(self.tool.url, answer.headers["Location"]))
        room_id = int(urlsplit(answer.headers["Location"]).path.rstrip("/").split("/")[-1])
        return Joined(session, room_id, room_ticket_in(room_page.text))

    def join(self, person: Joined) -> Joined:
        answer = person.session.post(f"{self.tool.url}/rooms/{person.room_id}/join", data={"t": person.ticket},
                                     allow_redirects=False)
        assert answer.status_code == 302, answer.text[:300]
        person.page_url = urljoin(self.tool.url, answer.headers["Location"])
        assert f"/rooms/{person.room_id}/live?" in person.page_url
        person.token = parse_qs(urlsplit(person.page_url).fragment)["lk"][0]
        return person

    def save_settings(self, teacher: Joined, **checked) -> None:
        answer = teacher.session.post(f"{self.tool.url}/rooms/{teacher.room_id}/settings",
                                      data={"t": teacher.ticket, **{k: "on" for k in checked}},
                                      allow_redirects=False)
        assert answer.status_code == 303, answer.text[:300]

    def meeting_id(self, room_id: int) -> str:
        with self.app.app_context():
            return db.session.get(Room, room_id).meeting_id

    def return_url(self, room_id: int, user: str) -> str:
        """The person's own way back to the LMS, as their launch gave it."""
        sub = self.platform.user(user).sub
        with self.app.app_context():
            room = db.session.get(Room, room_id)
            return db.session.scalar(
                select(Enrolment.return_url).join(User, User.id == Enrolment.user_id)
                .where(Enrolment.resource_link_id == room.resource_link_id, User.sub == sub))


@pytest.fixture
def classroom(migrated, database_url, keys_dir, tmp_path, platform_key):
    later = _Later()
    tool = ServedApp(later)  # binds now: its URL is the tool's TOOL_BASE_URL
    frame_target: dict = {}
    with FakeLiveKit(LK_KEY, LK_SECRET) as livekit, FakePlatform(
        tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json", signing_key=platform_key
    ) as platform:
        platform.add_resource_link(LINK_ID, "Live Class on LiveKit", custom={"provider": "livekit"})
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
        app = create_app({
            "TESTING": True,
            "DATABASE_URL": database_url,
            "TOOL_BASE_URL": tool.url,
            "KEYS_DIR": str(keys_dir),
            "TOOL_CONFIG": str(config_file),
            "SECRET_KEY": "test-secret-key",
            "LIVEKIT_URL": livekit.ws_url,
            "LIVEKIT_API_KEY": LK_KEY,
            "LIVEKIT_API_SECRET": LK_SECRET,
        })
        later.app = app
        tool.start()
        platform.activity_page = _frame_page(frame_target)  # the LMS's origin, not the tool's
        try:
            yield Classroom(tool, platform, livekit, app, frame_target)
        finally:
            tool.stop()
            empty_tables(app)


# --------------------------------------------------------------------------- the page under watch
@dataclass
class Watched:
    """A page with what it did: console errors, uncaught exceptions, WebSockets, requests."""

    livekit_url: str
    page: object = None
    errors: list = field(default_factory=list)
    expected_errors: list = field(default_factory=list)
    websockets: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    failed_responses: list = field(default_factory=list)

    def watch(self, page):
        self.page = page
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        page.on("request", lambda r: self.requests.append(r))
        page.on("response", lambda r: r.status >= 400 and self.failed_responses.append(f"{r.status} {r.url}"))
        return self

    def _console(self, message):
        if message.type != "error":
            return
        text = message.text
        if self._about_the_signal_connection(text, message.location.get("url", "")):
            self.expected_errors.append(text)
        else:
            self.errors.append(f"console: {text} {message.location}")

    def _about_the_signal_connection(self, text: str, url: str) -> bool:
        """The FakeLiveKit speaks no WebRTC signalling. Expected, and only these: Chromium's
        reports that the WebSocket to <LIVEKIT_URL>/rtc failed, and that livekit-client's
        follow-up probe (GET <LIVEKIT_URL>/rtc/.../validate) was refused (the fake sends no CORS
        headers) or failed. Everything else (ReferenceError, TypeError, ...) counts."""
        host = re.escape(urlsplit(self.livekit_url).netloc)
        if re.match(rf"WebSocket connection to 'ws://{host}/rtc[/?]", text):
            return True
        if re.match(rf"Access to fetch at 'http://{host}/rtc/[^']*' from origin '[^']+' has been blocked by CORS", text):
            return True
        return text.startswith("Failed to load resource") and re.match(rf"http://{host}/rtc/", url) is not None

    def http_failures_outside_livekit(self) -> list:
        base = self.livekit_url.replace("ws://", "http://")
        return [f for f in self.failed_responses if base not in f]


def open_page(browser, classroom: Classroom, person: Joined, **context_options) -> Watched:
    context = browser.new_context(**context_options)
    context.set_default_timeout(10_000)
    watched = Watched(classroom.livekit.ws_url).watch(context.new_page())
    watched.page.goto(person.page_url)
    return watched


def wait_until_connection_failed(watched: Watched) -> None:
    state = watched.page.locator("#lk-connection")
    expect(state).to_have_attribute("data-state", "failed", timeout=20_000)
    expect(state).to_contain_text("Could not connect")


def add_remote(page, identity: str, name: str, role: str, mic_sid: str | None = None) -> None:
    """A participant arriving, as livekit-client reports one (RemoteParticipant's shape)."""
    page.evaluate(
        """([identity, name, role, micSid]) => {
            const room = window.liveClassroom.room;
            const pubs = new Map();
            if (micSid) pubs.set(micSid, {trackSid: micSid, source: "microphone", kind: "audio", isMuted: false, track: null});
            const participant = {
                identity, name, sid: "PA_" + identity, metadata: JSON.stringify({role}), isSpeaking: false,
                isLocal: false, trackPublications: pubs,
                getTrackPublication(source) { for (const p of pubs.values()) if (p.source === source) return p; },
            };
            room.remoteParticipants.set(identity, participant);
            room.emit(LivekitClient.RoomEvent.ParticipantConnected, participant);
        }""",
        [identity, name, role, mic_sid],
    )


def receive_data(page, sender: str, message: dict, topic: str = "classroom") -> None:
    """A data message from `sender` (already in the room), as livekit-client delivers it."""
    page.evaluate(
        """([sender, message, topic]) => {
            const room = window.liveClassroom.room;
            const bytes = new TextEncoder().encode(JSON.stringify(message));
            room.emit(LivekitClient.RoomEvent.DataReceived, bytes, room.remoteParticipants.get(sender), 0, topic);
        }""",
        [sender, message, topic],
    )


def no_horizontal_scroll(page) -> tuple[int, int]:
    return page.evaluate("() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")


def overflowing_controls(page) -> list[str]:
    """Controls whose label does not fit inside the button."""
    return page.evaluate("""() => [...document.querySelectorAll('.lk-controls .lk-control')]
        .filter(b => !b.hidden && (b.scrollWidth > b.clientWidth + 1 || b.scrollHeight > b.clientHeight + 1))
        .map(b => b.id + ' ' + b.scrollWidth + '>' + b.clientWidth)""")


# --------------------------------------------------------------------------- tests
def test_teacher_page_connects_with_its_token_and_has_every_teacher_control(browser, classroom):
    teacher = classroom.join(classroom.launch("teacher"))
    meeting = classroom.meeting_id(teacher.room_id)
    assert classroom.livekit.count("CreateRoom") == 1, "join starts the LiveKit room through the tool"
    watched = open_page(browser, classroom, teacher, **DESKTOP)
    page = watched.page

    wait_until_connection_failed(watched)
    # The SDK is the tool's own copy, and it tried to connect with exactly the token it was given.
    assert page.evaluate("() => typeof window.LivekitClient.Room") == "function"
    scripts = page.evaluate("() => [...document.scripts].map(s => s.src).filter(Boolean)")
    assert f"{classroom.tool.url}{VENDOR_SCRIPT}" in scripts
    assert not [r.url for r in watched.requests if not r.url.startswith((classroom.tool.url, classroom.livekit.url, "data:"))], \
        "the page loads nothing from anywhere else (no CDN)"
    assert watched.websockets, "the page never opened a WebSocket to LiveKit"
    signal = urlsplit(watched.websockets[0])
    assert f"{signal.scheme}://{signal.netloc}" == classroom.livekit.ws_url and re.search(r"/rtc(/v\d+)?$", signal.path)
    assert parse_qs(signal.query)["access_token"] == [teacher.token]
    # The token left the address bar (and the history) once read; the ticket stays.
    address = page.evaluate("() => location.href")
    assert "lk=" not in address and "#" not in address and "t=" in urlsplit(address).query
    page_ticket = page.evaluate("() => window.liveClassroom.config.ticket")

    # "Try again" asks the tool for a fresh token (ticket as form data, no cookies) and connects with it.
    with page.expect_response(re.compile(r"/live/token$")) as answered, page.expect_websocket() as retried:
        page.locator("#lk-retry").click()
    assert answered.value.status == 200
    assert parse_qs(answered.value.request.post_data) == {"t": [page_ticket]}
    assert "cookie" not in {k.lower() for k in answered.value.request.all_headers()}
    assert parse_qs(urlsplit(retried.value.url).query)["access_token"] == [answered.value.json()["token"]]
    wait_until_connection_failed(watched)

    # Every control a teacher has: own media, hand, leave, end; the chat.
    for control in ("#toggle-mic", "#toggle-camera", "#toggle-screen", "#toggle-hand"):
        expect(page.locator(control)).to_be_visible()
        expect(page.locator(control)).to_have_attribute("aria-pressed", "false")
        expect(page.locator(control)).to_be_disabled()  # not connected: nothing to publish to
    expect(page.locator("#end-class")).to_have_text(re.compile("End class for everyone"))
    expect(page.locator("#leave")).to_have_attribute("href", classroom.return_url(teacher.room_id, "teacher"))
    expect(page.locator("#chat-panel")).to_be_visible()
    expect(page.locator("#chat-input")).to_be_disabled()

    # The participant list and the grid start with the teacher, highlighted as teacher.
    me = page.evaluate("() => window.liveClassroom.config.identity")
    rows = page.locator("#participant-list > li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-identity", me)
    expect(rows.first).to_contain_text("Terry Teacher (you)")
    expect(rows.first.locator(".lk-badge-teacher")).to_be_visible()
    expect(rows.first.locator("button")).to_have_count(0)  # no mute/remove on oneself
    expect(page.locator("#lk-grid .lk-tile.is-teacher")).to_have_count(1)
    expect(page.locator("#participant-count")).to_have_text("1")

    # A student arrives with the microphone on: the teacher gets Mute and Remove for them.
    classroom.livekit.join(meeting, "u-sam", "Sam Student", '{"role":"attendee"}')
    mic = classroom.livekit.publish(meeting, "u-sam", "MICROPHONE")
    add_remote(page, "u-sam", "Sam Student", "attendee", mic)
    sam = page.locator('#participant-list > li[data-identity="u-sam"]')
    expect(sam).to_contain_text("Sam Student")
    expect(sam.locator(".lk-badge-teacher")).to_have_count(0)
    expect(page.locator("#participant-count")).to_have_text("2")
    expect(page.locator("#lk-grid .lk-tile")).to_have_count(2)
    expect(page.locator("#lk-grid .lk-tile").first).to_have_class(re.compile("is-teacher"))

    # Their raised hand and chat arrive as data messages.
    receive_data(page, "u-sam", {"type": "hand", "raised": True})
    expect(sam.locator(".lk-badge-hand")).to_be_visible()
    expect(page.locator("#lk-announce")).to_have_text("Sam Student raised their hand.")
    receive_data(page, "u-sam", {"type": "chat", "text": "<b>Hello</b> from Sam"})
    message = page.locator("#chat-log > li").last
    expect(message).to_contain_text("Sam Student")
    expect(message.locator(".lk-msg-text")).to_have_text("<b>Hello</b> from Sam")  # text, never markup
    receive_data(page, "u-sam", {"type": "chat", "text": "another topic"}, topic="somebody-else")
    receive_data(page, "u-sam", {"type": "hand", "raised": False, "identity": me})  # not a student's to do
    expect(page.locator("#chat-log > li")).to_have_count(1)
    page.screenshot(path="/tmp/lk-teacher.png", full_page=True)

    # A dropped connection and its recovery (livekit-client's own events) are said clearly.
    state = page.locator("#lk-connection")
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Reconnecting)")
    expect(state).to_have_attribute("data-state", "reconnecting")
    expect(state).to_have_text("Connection lost. Reconnecting…")
    expect(page.locator("#toggle-mic")).to_be_disabled()
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Reconnected)")
    expect(state).to_have_attribute("data-state", "connected")
    expect(state).to_have_text("Reconnected to the class.")
    expect(page.locator("#toggle-mic")).to_be_enabled()
    expect(page.locator("#chat-input")).to_be_enabled()

    # Mute goes through the tool (ticket as form data, no cookies) to LiveKit's MutePublishedTrack.
    with page.expect_request(re.compile(r"/live/action$")) as sent:
        sam.get_by_role("button", name="Mute Sam Student").click()
    assert parse_qs(sent.value.post_data) == {"t": [page_ticket], "action": ["mute"], "identity": ["u-sam"],
                                              "track": [mic]}
    assert "cookie" not in {k.lower() for k in sent.value.all_headers()}
    expect(page.locator("#lk-announce")).to_have_text("Sam Student is muted.")
    muted = classroom.livekit.last("MutePublishedTrack").body
    assert (muted["room"], muted["identity"], muted["trackSid"], muted["muted"]) == (meeting, "u-sam", mic, True)

    # Remove asks first, then goes through the tool to RemoveParticipant.
    page.once("dialog", lambda d: d.accept())
    with page.expect_request(re.compile(r"/live/action$")) as sent:
        sam.get_by_role("button", name="Remove Sam Student from the class").click()
    assert parse_qs(sent.value.post_data)["action"] == ["remove"]
    expect(page.locator("#lk-announce")).to_have_text("Sam Student was removed from the class.")
    assert classroom.livekit.last("RemoveParticipant").body["identity"] == "u-sam"

    # The keyboard reaches End class; cancelling the confirmation ends nothing.
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator("#leave").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "end-class"
    page.keyboard.press("Enter")
    expect(page.locator("#end-class")).to_be_enabled()
    assert dialogs == ["End the class for everyone?"] and classroom.livekit.count("DeleteRoom") == 0

    page.once("dialog", lambda d: d.accept())
    page.locator("#end-class").click()
    expect(page.locator("#lk-connection")).to_have_attribute("data-state", "ended")
    expect(page.locator("#lk-connection")).to_contain_text("You ended the class for everyone.")
    assert classroom.livekit.count("DeleteRoom") == 1 and meeting not in classroom.livekit.rooms

    assert watched.errors == [], watched.errors
    assert watched.expected_errors, "the failed signal connection should have been reported"
    assert watched.http_failures_outside_livekit() == []

    # Leave returns to the LMS (its return URL; the fake Moodle has no page there).
    page.locator("#leave").click()
    page.wait_for_url(classroom.return_url(teacher.room_id, "teacher"))


def test_locked_student_on_a_phone_gets_no_camera_screen_or_chat(browser, classroom):
    teacher = classroom.launch("teacher")
    classroom.save_settings(teacher, lock_disable_cam=True, lock_disable_public_chat=True)
    classroom.join(teacher)  # the teacher starts the class; the student may join now
    student = classroom.join(classroom.launch("student"))
    watched = open_page(browser, classroom, student, **PHONE)
    page = watched.page

    wait_until_connection_failed(watched)
    assert parse_qs(urlsplit(watched.websockets[0]).query)["access_token"] == [student.token]
    expect(page.locator("#toggle-camera")).to_have_count(0)
    expect(page.locator("#toggle-screen")).to_have_count(0)
    expect(page.locator("#chat-panel")).to_have_count(0)
    expect(page.locator("#end-class")).to_have_count(0)
    expect(page.locator("#toggle-mic")).to_be_visible()
    expect(page.locator("#toggle-hand")).to_be_visible()
    rows = page.locator("#participant-list > li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Sam Student (you)")
    expect(rows.first.locator(".lk-badge-teacher")).to_have_count(0)

    # The teacher's tile comes first and stands out; a student has no actions on anyone.
    add_remote(page, "u-terry", "Terry Teacher", "moderator", "TR_terrymic")
    teacher_tile = page.locator("#lk-grid .lk-tile").first
    expect(teacher_tile).to_have_class(re.compile("is-teacher"))
    expect(teacher_tile.locator(".lk-badge-teacher")).to_be_visible()
    expect(page.locator("#participant-list button")).to_have_count(0)
    receive_data(page, "u-terry", {"type": "hand", "raised": False, "identity": "nobody"})  # harmless

    # One column, nothing sideways, and the controls are on screen without scrolling.
    width, client = no_horizontal_scroll(page)
    assert width <= client, f"the classroom scrolls sideways on a phone: {width} > {client}"
    tiles = page.locator("#lk-grid .lk-tile")
    first, second = tiles.nth(0).bounding_box(), tiles.nth(1).bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1, "tiles should stack in one column"
    for control in ("#toggle-mic", "#toggle-hand", "#leave"):
        box = page.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, f"{control} off screen: {box}"
        assert box["y"] + box["height"] <= 667, f"{control} is below the screen: {box}"
        assert box["height"] >= 44, f"{control} is {box['height']}px high, a finger needs 44"
    assert overflowing_controls(page) == []
    expect(page.locator("#lk-start-audio")).to_be_hidden()  # only once connected, if sound is blocked
    page.screenshot(path="/tmp/lk-phone.png")

    # The teacher ends the class: LiveKit disconnects everyone with ROOM_DELETED.
    page.evaluate("() => window.liveClassroom.room.emit(LivekitClient.RoomEvent.Disconnected,"
                  " LivekitClient.DisconnectReason.ROOM_DELETED)")
    expect(page.locator("#lk-connection")).to_have_attribute("data-state", "ended")
    expect(page.locator("#lk-connection")).to_have_text("The class has ended.")

    assert watched.errors == [], watched.errors
    assert watched.http_failures_outside_livekit() == []
    page.locator("#leave").tap()
    page.wait_for_url(classroom.return_url(student.room_id, "student"))


def test_teacher_page_fits_a_phone_with_every_control(browser, classroom):
    teacher = classroom.join(classroom.launch("teacher"))
    watched = open_page(browser, classroom, teacher, **PHONE)
    page = watched.page
    wait_until_connection_failed(watched)
    add_remote(watched.page, "u-sam", "Sam Student With A Rather Long Name", "attendee", "TR_sammic")
    expect(page.locator('#participant-list li[data-identity="u-sam"] button')).to_have_count(2)
    width, client = no_horizontal_scroll(page)
    assert width <= client, f"the teacher's classroom scrolls sideways on a phone: {width} > {client}"
    for control in ("#toggle-mic", "#toggle-camera", "#toggle-screen", "#toggle-hand", "#leave", "#end-class"):
        box = page.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, f"{control} off screen: {box}"
        assert box["y"] + box["height"] <= 667, f"{control} is below the screen: {box}"
    assert overflowing_controls(page) == []
    page.screenshot(path="/tmp/lk-teacher-phone.png")
    assert watched.errors == [], watched.errors


@pytest.mark.parametrize("allow, warned", [("camera; microphone; display-capture; autoplay", False), ("", True)])
def test_in_the_lms_iframe_the_page_says_when_the_frame_blocks_camera_and_microphone(browser, classroom, allow, warned):
    teacher = classroom.join(classroom.launch("teacher"))
    classroom.frame_target.update(url=teacher.page_url, allow=allow)
    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(10_000)
    watched = Watched(classroom.livekit.ws_url).watch(context.new_page())
    watched.page.goto(classroom.platform.activity_url())
    frame = watched.page.frame(name="tool")
    expect(frame.locator("#lk-connection")).to_have_attribute("data-state", "failed", timeout=20_000)
    notice = frame.locator("#lk-frame-notice")
    if warned:
        expect(notice).to_be_visible()
        expect(notice.get_by_role("button", name="Open the class in its own window")).to_be_visible()
        expect(notice.locator("form")).to_have_attribute("target", "_blank")
    else:
        expect(notice).to_be_hidden()
    assert watched.errors == [], watched.errors
    context.close()
