"""Deep linking in headless Chromium: Moodle's "Select content" page (on the fake platform's
own origin) frames the tool; the browser runs the deep-linking launch, the teacher fills the
set-up form with a keyboard, or with a finger on a phone, and the frame ends at the platform's
return page with the activity added. The time zone comes from the browser (Chromium's
`timezone_id`), set into the form by the tool's script.

Skipped when Debian's Chromium (/usr/bin/chromium) or Playwright is missing.
"""
from __future__ import annotations

import json
import re

import pytest

from lti_tool import create_app
from tests.browser_support import Problems, course_page, expect
from tests.conftest import BBB_SECRET, LIVEKIT_KEY, LIVEKIT_SECRET, empty_tables
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.livekit_server import FakeLiveKit
from tests.fakes.lti_platform import DEEP_LINKING_REQUEST, FakePlatform

PHONE = {"viewport": {"width": 375, "height": 667}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
SET_UP_FORM = re.compile(r".*/lti/launch$")
EVERY_FIELD_LABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(field => !field.labels || field.labels.length === 0).map(field => field.name)"""


class Served:
    def __init__(self, tool: ServedApp, platform: FakePlatform, app):
        self.tool, self.platform, self.app = tool, platform, app

    def select_content_url(self, entry: str = "course") -> str:
        return self.platform.activity_url(select="content", entry=entry)


@pytest.fixture
def served(migrated, database_url, keys_dir, tmp_path):
    later = LaterApp()
    tool = ServedApp(later)
    with FakeBigBlueButton(BBB_SECRET) as bbb, FakeLiveKit(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, FakePlatform(
        tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json"
    ) as platform:
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
        app = create_app({
            "TESTING": True, "DATABASE_URL": database_url, "TOOL_BASE_URL": tool.url, "KEYS_DIR": str(keys_dir),
            "TOOL_CONFIG": str(config_file), "SECRET_KEY": "test-secret-key",
            "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET, "LIVEKIT_URL": livekit.ws_url,
            "LIVEKIT_API_KEY": LIVEKIT_KEY, "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
        })
        later.app = app
        tool.start()
        # Moodle's "Select content" dialog: the tool in an iframe, the deep-linking login posted into it.
        platform.activity_page = lambda query: course_page(tool.url, platform.login_initiation(
            user="teacher", message_type=DEEP_LINKING_REQUEST, entry=query.get("entry", "course")))
        try:
            yield Served(tool, platform, app)
        finally:
            tool.stop()
            empty_tables(app)


def open_dialog(browser, served: Served, **context_options):
    context = browser.new_context(**context_options)
    context.set_default_timeout(10_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(served.select_content_url())
    frame = page.frame(name="tool")
    frame.wait_for_url(SET_UP_FORM)
    expect(frame.locator("h1")).to_have_text("Add a live class")
    return context, page, frame, problems


def focused_id(frame) -> str:
    return frame.evaluate("() => document.activeElement && document.activeElement.id")


def test_a_teacher_sets_up_the_class_in_the_lms_frame_with_the_keyboard(browser, served):
    context, page, frame, problems = open_dialog(browser, served, timezone_id="Europe/Paris")
    expect(frame.locator("[data-timezone-name]")).to_have_text("Europe/Paris")
    assert frame.locator("#f-timezone").input_value() == "Europe/Paris"
    assert frame.evaluate(EVERY_FIELD_LABELLED) == []
    assert frame.locator("fieldset legend").all_inner_texts()[:2] == ["Video service", "Schedule (optional)"]

    frame.get_by_label("Title").fill("Monday seminar")
    frame.get_by_label("LiveKit").check()
    frame.get_by_label("Date of the first session").fill("2027-03-01")
    frame.get_by_label("Start time").fill("09:00")
    frame.get_by_label("Length of each session (minutes)").fill("90")
    frame.get_by_label("Number of weekly sessions").fill("10")
    frame.get_by_label("Points (the grade's maximum)").fill("20")
    frame.get_by_label("Number of weekly sessions").focus()
    for _ in range(12):  # the keyboard alone reaches a setting and ticks it
        page.keyboard.press("Tab")
        if focused_id(frame) == "f-mute_on_start":
            break
    assert focused_id(frame) == "f-mute_on_start"
    assert frame.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Space")
    expect(frame.get_by_label("Microphones are muted when people join")).to_be_checked()
    frame.locator("#add-to-course").focus()
    page.keyboard.press("Enter")

    frame.wait_for_url(served.platform.url + "/mod/lti/contentitem_return.php*")
    expect(frame.locator("h1")).to_have_text("Activity added")
    (link,) = served.platform.created_activities
    assert link.title == "Monday seminar"
    assert link.custom["schedule_start"] == "2027-03-01T09:00+01:00" and link.custom["provider"] == "livekit"
    assert link.custom["mute_on_start"] == "true" and link.custom["grade_points"] == "20"
    assert problems.items == []
    context.close()


def test_the_set_up_form_fits_a_phone_and_a_tap_adds_the_class(browser, served):
    context, page, frame, problems = open_dialog(browser, served, timezone_id="America/New_York", **PHONE)
    assert frame.locator("#f-timezone").input_value() == "America/New_York"
    width, client = frame.evaluate(
        "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width <= client, f"the set-up form scrolls sideways: {width} > {client}"
    frame.get_by_label("Date of the first session").fill("2027-09-06")
    frame.get_by_label("Start time").fill("17:00")
    button = frame.locator("#add-to-course")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box["height"] >= 44, f"the button is {box['height']}px high, a finger needs 44"
    page.screenshot(path="/tmp/deep-link-phone.png", full_page=True)
    button.tap()
    frame.wait_for_url(served.platform.url + "/mod/lti/contentitem_return.php*")
    (link,) = served.platform.created_activities
    assert link.custom["schedule_start"] == "2027-09-06T17:00-04:00"
    assert problems.items == []
    context.close()


def test_a_wrong_value_is_shown_beside_its_field_and_can_be_fixed(browser, served):
    context, page, frame, problems = open_dialog(browser, served, timezone_id="Europe/Paris")
    frame.get_by_label("Date of the first session").fill("2027-03-01")  # and no time
    frame.locator("#add-to-course").click()
    expect(frame.locator("#e-time")).to_contain_text("Give the time the first session starts")
    time_field = frame.get_by_label("Start time")
    expect(time_field).to_have_attribute("aria-invalid", "true")
    assert "e-time" in time_field.get_attribute("aria-describedby")
    assert frame.locator("#f-timezone").input_value() == "Europe/Paris"
    time_field.fill("08:15")
    frame.locator("#add-to-course").click()
    frame.wait_for_url(served.platform.url + "/mod/lti/contentitem_return.php*")
    (link,) = served.platform.created_activities
    assert link.custom["schedule_start"] == "2027-03-01T08:15+01:00"
    assert [item for item in problems.items if "/lti/deep-link" not in item] == []  # the 400 of the first try
    context.close()
