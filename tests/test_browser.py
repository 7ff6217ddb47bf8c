"""End to end in headless Chromium: a Moodle course page embeds the tool in an iframe and the
browser itself runs the whole LTI 1.3 launch (login → auth.php → id_token POST → room page),
then people start, wait for, join and end the class the way they would with a mouse, a keyboard
or a phone.

Everything is served over real HTTP on 127.0.0.1: the tool (TOOL_BASE_URL is its real URL), the
fake Moodle, the fake BigBlueButton and a tiny course page on another port (same site, so the
tool's SameSite=Lax cookies behave as they do behind a real LMS on the same domain).

Skipped when Debian's Chromium (/usr/bin/chromium) or Playwright is missing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from lti_tool import create_app
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.conftest import BBB_SECRET, empty_tables
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform

# The waiting page polls /status every 4–7 s (and meta-refreshes every 15 s): generous.
OPENS_WITHIN_MS = 20_000
PHONE = {"viewport": {"width": 375, "height": 667}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}


# --------------------------------------------------------------------------- servers


def _course_page(platform: FakePlatform, tool_url: str):
    """Moodle's activity page, on the platform's own origin: an iframe named `tool` and a form,
    posted into it, carrying a fresh login initiation for `?user=` (teacher by default)."""

    def page(query: dict) -> bytes:
        return course_page(tool_url, platform.login_initiation(user=query.get("user", "teacher")))

    return page


@dataclass
class Live:
    tool: ServedApp
    platform: FakePlatform
    bbb: FakeBigBlueButton
    app: object

    def course_url(self, user: str) -> str:
        return self.platform.activity_url(user=user)


@pytest.fixture
def live(migrated, database_url, keys_dir, tmp_path):
    later = LaterApp()
    tool = ServedApp(later)  # binds now: its URL is the tool's TOOL_BASE_URL
    with FakeBigBlueButton(BBB_SECRET) as bbb, FakePlatform(
        tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json"
    ) as platform:
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
        app = create_app({
            "TESTING": True,
            "DATABASE_URL": database_url,
            "TOOL_BASE_URL": tool.url,
            "KEYS_DIR": str(keys_dir),
            "TOOL_CONFIG": str(config_file),
            "SECRET_KEY": "test-secret-key",
            "BBB_SERVER_URL": bbb.url,
            "BBB_SHARED_SECRET": BBB_SECRET,
        })
        later.app = app
        tool.start()
        platform.activity_page = _course_page(platform, tool.url)
        try:
            yield Live(tool, platform, bbb, app)
        finally:
            tool.stop()
            empty_tables(app)


# --------------------------------------------------------------------------- people


class Person:
    """One browser profile (own cookies) with the course page open; `frame` is the tool."""

    def __init__(self, browser, live: Live, user: str, **context_options):
        self.live = live
        self.context = browser.new_context(**context_options)
        self.context.set_default_timeout(10_000)
        self.problems = Problems()
        self.page = self.problems.watch(self.context.new_page())
        self.page.goto(live.course_url(user))
        self.frame = self.page.frame(name="tool")
        assert self.frame is not None, "the course page has no iframe named tool"
        self.frame.wait_for_url(ROOM_URL)
        self.frame.wait_for_load_state()

    def join_in_new_tab(self, press=None):
        """Follow #join (a click, or `press()` for the keyboard); returns the new tab at BBB."""
        with self.context.expect_page() as opened:
            if press is None:
                self.frame.locator("#join").click()
            else:
                press()
        tab = opened.value
        tab.wait_for_url(self.live.bbb.url + "/html5client/join?sessionToken=*")
        expect(tab.locator("body")).to_contain_text("In meeting")
        return tab

    def close(self):
        self.context.close()


@pytest.fixture
def people(browser, live):
    opened: list[Person] = []

    def open_(user: str, **context_options) -> Person:
        person = Person(browser, live, user, **context_options)
        opened.append(person)
        return person

    yield open_
    for person in opened:
        person.close()


def no_horizontal_scroll(frame_or_page) -> tuple[int, int]:
    return frame_or_page.evaluate(
        "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
    )


# --------------------------------------------------------------------------- tests
def test_teacher_launches_in_the_lms_iframe_and_start_class_opens_bbb_as_moderator(people, live):
    teacher = people("teacher")
    join = teacher.frame.locator("#join")
    expect(join).to_be_visible()
    expect(join).to_have_text("Start class")
    expect(teacher.frame.locator("h1#room-title")).to_have_text("LTI Live Activity")
    expect(teacher.frame.locator("p.status[role=status]")).to_contain_text("has not started")

    tab = teacher.join_in_new_tab()

    assert [(p.full_name, p.role) for p in live.bbb.joins] == [("Terry Teacher", "MODERATOR")]
    assert ROOM_URL.search(teacher.frame.url), "the course page's iframe stays on the room page"
    assert tab.url.startswith(live.bbb.url + "/html5client/join?sessionToken=")
    assert teacher.problems.items == []


def test_student_waits_until_the_teacher_starts_then_the_page_opens_by_itself(people, live):
    student = people("student")
    expect(student.frame.locator("#waiting[role=status]")).to_contain_text("has not started yet")
    expect(student.frame.locator("#join")).to_have_count(0)
    student.page.screenshot(path="/tmp/waiting-iframe.png")

    teacher = people("teacher")
    teacher.join_in_new_tab()

    # No reload from the test: the waiting page notices by itself.
    join = student.frame.locator("#join")
    expect(join).to_be_visible(timeout=OPENS_WITHIN_MS)
    expect(join).to_have_text("Join class")
    expect(student.frame.locator("p.status[role=status]")).to_contain_text("The class is running")

    student.join_in_new_tab()

    assert [p.role for p in live.bbb.joins] == ["MODERATOR", "VIEWER"]
    assert live.bbb.joins[1].full_name == "Sam Student"
    assert student.problems.items == []
    assert teacher.problems.items == []


def test_room_and_waiting_pages_fit_a_phone_screen(people, live):
    student = people("student", **PHONE)
    width, client = no_horizontal_scroll(student.frame)
    assert width <= client, f"waiting page in the iframe scrolls sideways: {width} > {client}"
    waiting = student.context.new_page()
    waiting.goto(student.frame.url)  # the tool alone, as in a new window or the Moodle app
    expect(waiting.locator("#waiting")).to_be_visible()
    width, client = no_horizontal_scroll(waiting)
    assert width <= client, f"waiting page scrolls sideways: {width} > {client}"
    waiting.screenshot(path="/tmp/waiting.png", full_page=True)

    teacher = people("teacher", **PHONE)
    width, client = no_horizontal_scroll(teacher.frame)
    assert width <= client, f"room page in the iframe scrolls sideways: {width} > {client}"
    teacher.page.screenshot(path="/tmp/room-phone-iframe.png")

    room = teacher.problems.watch(teacher.context.new_page())
    room.goto(teacher.frame.url)
    join = room.locator("#join")
    expect(join).to_be_visible()
    box = join.bounding_box()
    assert box["height"] >= 44, f"join button is {box['height']}px high, a finger needs 44"
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, f"join button off screen: {box}"
    width, client = no_horizontal_scroll(room)
    assert width <= client, f"room page scrolls sideways: {width} > {client}"
    room.screenshot(path="/tmp/room-phone.png", full_page=True)

    room.get_by_role("region", name="Room settings").locator("summary").tap()  # the settings stay inside the screen too
    expect(room.locator("#s-welcome")).to_be_visible()
    width, client = no_horizontal_scroll(room)
    assert width <= client, f"room settings scroll sideways: {width} > {client}"
    room.screenshot(path="/tmp/room-phone-settings.png", full_page=True)

    teacher.join_in_new_tab(press=join.tap)  # a tap on a phone opens the class too
    assert [p.role for p in live.bbb.joins] == ["MODERATOR"]
    assert student.problems.items == [] and teacher.problems.items == []


def test_keyboard_tab_reaches_the_join_button_and_enter_starts_the_class(people, live):
    teacher = people("teacher")
    frame = teacher.frame
    focused = "() => document.activeElement && (document.activeElement.id || document.activeElement.className)"

    teacher.page.keyboard.press("Tab")
    assert frame.evaluate(focused) == "skip", "the first Tab should land on the skip link"
    skip_box = frame.locator("a.skip").bounding_box()
    assert skip_box["x"] >= 0, "the focused skip link must be visible"

    teacher.page.keyboard.press("Tab")
    assert frame.evaluate(focused) == "join", "the second Tab should reach the join button"
    outline = frame.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused join button shows no focus outline"

    teacher.join_in_new_tab(press=lambda: teacher.page.keyboard.press("Enter"))
    assert [p.role for p in live.bbb.joins] == ["MODERATOR"]
    assert teacher.problems.items == []


def test_moderator_ends_the_class_after_confirming_and_can_start_it_again(people, live):
    teacher = people("teacher")
    teacher.join_in_new_tab().close()
    teacher.frame.goto(teacher.frame.url)  # the teacher reloads the activity
    end = teacher.frame.locator("#end")
    expect(end).to_have_text("End class for everyone")
    expect(teacher.frame.locator("#join")).to_have_text("Join class")
    # "Starting" until the server reports someone in the meeting: the page follows by itself.
    expect(teacher.frame.locator("p.status[role=status]")).to_contain_text(
        "The class is running", timeout=OPENS_WITHIN_MS)

    dialogs = []

    def answer(dialog, accept):
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    # Cancelling the confirmation ends nothing.
    teacher.page.once("dialog", lambda d: answer(d, False))
    end.click()
    expect(end).to_be_visible()
    assert dialogs == ["End the class for everyone?"]
    assert live.bbb.count("end") == 0

    teacher.page.once("dialog", lambda d: answer(d, True))
    end.click()
    expect(teacher.frame.locator("#join")).to_have_text("Start a new class")
    expect(teacher.frame.locator("#end")).to_have_count(0)
    expect(teacher.frame.locator("p.status[role=status]")).to_contain_text("The class has ended")
    assert dialogs == ["End the class for everyone?"] * 2
    assert live.bbb.count("end") == 1 and live.bbb.meetings == {}
    assert teacher.problems.items == []


def test_a_page_on_another_site_cannot_frame_the_tool(people, live, browser):
    """frame-ancestors names the registered platforms: another site's frame stays empty."""
    teacher = people("teacher")
    room_url = teacher.frame.url

    def stranger(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [f'<!doctype html><title>Elsewhere</title><iframe name="tool" src="{room_url}"></iframe>'.encode()]

    with ServedApp(stranger) as elsewhere:
        context = browser.new_context()
        page = context.new_page()
        refused = []
        page.on("console", lambda m: "frame-ancestors" in m.text and refused.append(m.text))
        page.goto(elsewhere.url + "/")
        page.wait_for_timeout(1000)
        assert page.frame(name="tool").locator("#room-title").count() == 0
        assert refused, "the browser did not report the Content-Security-Policy refusal"
        context.close()
