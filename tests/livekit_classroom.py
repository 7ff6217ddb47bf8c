"""The LiveKit classroom page in headless Chromium, set up for the test modules that drive it
(test_browser_livekit.py, test_livekit_egress.py): the tool over real HTTP with LIVEKIT_URL at
the FakeLiveKit, the LMS's activity page framing it, and helpers that watch a page and hand it
remote participants and data messages as livekit-client would.

Importing this module skips the importing module when Debian's Chromium or Playwright is missing.
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
from tests.fakes.http_server import LaterApp, ServedApp
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
                                      data={"t": teacher.ticket, **dict.fromkeys(checked, "on")},
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
    later = LaterApp()
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
        cors_refusal = rf"Access to fetch at 'http://{host}/rtc/[^']*' from origin '[^']+' has been blocked by CORS"
        if re.match(cors_refusal, text):
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
            if (micSid) {
                pubs.set(micSid, {trackSid: micSid, source: "microphone", kind: "audio", isMuted: false, track: null});
            }
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


def receive_data(page, sender: str, message: dict, topic: str = "classroom", peer: bool = False) -> None:
    """A classroom message from `sender` (already in the room) as the tool relays it: sent by the
    server (no participant), with `from` and `role` (the sender's, from add_remote) added by the
    tool. `peer`: sent by the participant's own browser instead, as the page must ignore."""
    page.evaluate(
        """([sender, message, topic, peer]) => {
            const room = window.liveClassroom.room;
            const participant = room.remoteParticipants.get(sender);
            const role = participant ? JSON.parse(participant.metadata).role : "attendee";
            const body = peer ? message : Object.assign({from: sender, role}, message);
            const bytes = new TextEncoder().encode(JSON.stringify(body));
            room.emit(LivekitClient.RoomEvent.DataReceived, bytes, peer ? participant : undefined, 0, topic);
        }""",
        [sender, message, topic, peer],
    )


def no_horizontal_scroll(page) -> tuple[int, int]:
    return page.evaluate("() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")


def overflowing_controls(page) -> list[str]:
    """Controls whose label does not fit inside the button."""
    return page.evaluate("""() => [...document.querySelectorAll('.lk-controls .lk-control')]
        .filter(b => !b.hidden && (b.scrollWidth > b.clientWidth + 1 || b.scrollHeight > b.clientHeight + 1))
        .map(b => b.id + ' ' + b.scrollWidth + '>' + b.clientWidth)""")


# --------------------------------------------------------------------------- tests
