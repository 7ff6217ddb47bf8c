"""The finish (issue 11) in headless Chromium: the settings panel inside the LMS frame, error
pages in the frame and on a phone, the LiveKit classroom when its server cannot be reached,
and axe-core over the main pages (no serious or critical violations).

Skipped when Debian's Chromium or Playwright is missing; the axe checks also when axe-core is
(tests/axe_support.py).
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval
from tests.axe_support import axe_problems
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.livekit_classroom import (  # noqa: F401  (classroom is a fixture)
    classroom,
    open_page,
)
from tests.support import hour_long_class
from tests.test_browser_deep_linking import open_dialog, served  # noqa: F401  (served is a fixture)

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
ADMIN_TOKEN = "operator-token-" + "f" * 40

# The contrast ratio (WCAG) of the focused element's outline against the page behind it.
FOCUS_CONTRAST = """() => {
  const el = document.activeElement;
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => {
    const v = c.map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  };
  let behind = el.parentElement, bg = "rgba(0, 0, 0, 0)";
  while (behind && /rgba\\(0, 0, 0, 0\\)|transparent/.test(bg)) {
    bg = getComputedStyle(behind).backgroundColor;
    behind = behind.parentElement;
  }
  if (/rgba\\(0, 0, 0, 0\\)|transparent/.test(bg)) bg = "rgb(255, 255, 255)";
  const style = getComputedStyle(el);
  const a = lum(rgb(style.outlineColor)), b = lum(rgb(bg));
  return {width: style.outlineWidth, style: style.outlineStyle,
          ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
}"""


@pytest.fixture
def live_overrides():
    return {"ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture
def moodle(live):
    """The fake Moodle's activity page embeds the tool in an iframe, as Moodle does."""
    platform = live.platform
    platform.activity_page = lambda query: course_page(live.url, platform.login_initiation(user=query.get("user")))
    return live


def open_in_moodle(browser, moodle, user: str, **context_options):
    context = browser.new_context(**context_options)
    context.set_default_timeout(15_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(moodle.platform.activity_url(user=user))
    frame = page.frame(name="tool")
    frame.wait_for_url(ROOM_URL)
    return context, page, frame, problems


def no_sideways_scroll(target) -> None:
    width = target.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


# --- settings ---------------------------------------------------------------------------------
def test_settings_panel_stays_open_after_saving_and_after_a_refusal(browser, moodle):
    context, page, frame, problems = open_in_moodle(browser, moodle, "teacher")
    panel = frame.locator("#settings-panel")
    expect(panel).not_to_have_attribute("open", "")
    frame.get_by_text("Room settings").click()
    camera = frame.get_by_label("Students may use their camera")
    expect(camera).to_be_checked()
    camera.uncheck()
    frame.get_by_label("Welcome message, shown to everyone in the class").fill("Welcome to week 3")
    frame.get_by_role("button", name="Save settings").click()
    frame.wait_for_url(re.compile(r"saved=1"))
    expect(frame.locator("#settings-panel")).to_have_attribute("open", "")
    expect(frame.locator("#settings-saved")).to_be_visible()
    expect(frame.get_by_label("Students may use their camera")).not_to_be_checked()
    assert axe_problems(frame) == []

    # A contradiction: automatic recording without recording. Refused, panel open, form as left.
    frame.get_by_label("The class may be recorded").uncheck()
    frame.get_by_label("Start recording automatically when the class starts").check()
    with page.expect_response(re.compile(r"/settings$")) as answered:
        frame.get_by_role("button", name="Save settings").click()
    assert answered.value.status == 400
    expect(frame.locator("#settings-problems")).to_contain_text("needs “The class may be recorded”")
    expect(frame.locator("#settings-panel")).to_have_attribute("open", "")
    expect(frame.get_by_label("Start recording automatically when the class starts")).to_be_checked()
    expect(frame.get_by_label("Welcome message, shown to everyone in the class")).to_have_value("Welcome to week 3")
    assert axe_problems(frame) == []
    assert [p for p in problems.items if "/settings" not in p] == []  # the 400 itself is expected
    context.close()


# --- error pages ------------------------------------------------------------------------------
def test_an_error_page_inside_the_lms_frame_shows_its_way_on(browser, moodle):
    context, page, frame, _ = open_in_moodle(browser, moodle, "student")
    frame.goto(moodle.url + "/rooms/999?t=forged")
    expect(frame.locator("h1")).to_have_text("Cannot open this page")
    expect(frame.locator("#way-back")).to_contain_text("open the activity again from your course page")
    expect(frame.locator("#error-reference")).to_have_text(re.compile(r"^[2-9A-Z]{4}-[2-9A-Z]{4}$"))
    expect(frame.locator("#back-to-course")).to_have_count(0)
    assert axe_problems(frame) == []
    context.close()


def test_a_failed_start_on_a_phone_is_said_in_the_course_tab(browser, moodle):
    """With script, the class tab closes and the course tab, where the teacher is looking, says
    why; the Start button is ready for another try."""
    context, page, frame, _ = open_in_moodle(browser, moodle, "teacher", **PHONE)
    moodle.bbb.stop()
    with context.expect_page() as opened:
        frame.locator("#join").click()
    opened.value.wait_for_event("close")
    expect(frame.locator("#class-error")).to_be_visible()
    expect(frame.locator("#class-error")).to_contain_text("not answering")
    expect(frame.locator("#join")).to_be_enabled()
    assert axe_problems(frame) == []
    context.close()


def test_a_failed_start_without_script_offers_try_again_and_back_to_the_course(browser, moodle):
    """Without the page's script the form opens the class tab itself: the error page there has its
    way on. (The room page's script is kept from loading; Moodle's own pages keep theirs.)"""
    context = browser.new_context(**PHONE)
    context.route(re.compile(r".*/static/pages\.js.*"), lambda route: route.abort())
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(moodle.platform.activity_url(user="teacher"))
    frame = page.frame(name="tool")
    frame.wait_for_url(ROOM_URL)
    moodle.bbb.stop()
    with context.expect_page() as opened:
        frame.locator("#join").click()
    error = opened.value
    error.wait_for_load_state()
    expect(error.locator("h1")).to_have_text("Cannot open this page")
    expect(error.locator(".lead")).to_contain_text("not answering")
    expect(error.locator("#try-again")).to_be_visible()
    expect(error.locator("#back-to-course")).to_be_visible()
    assert "/mod/lti/return.php" in error.locator("#back-to-course").get_attribute("href")
    box = error.locator("#try-again").bounding_box()
    assert box["height"] >= 44, "a finger-sized button"
    assert box["x"] + box["width"] <= 390, "the button fits the phone's width"
    # BBB is still down; Try again opens the room page (with a fresh ticket) all the same.
    error.locator("#try-again").click()
    error.wait_for_url(ROOM_URL)
    expect(error.locator("#join")).to_be_visible()
    # In a window of its own the room page says which course (the LMS frame does that otherwise).
    expect(error.locator(".room-header .course")).to_be_visible()
    context.close()


# --- LiveKit classroom ------------------------------------------------------------------------
def test_livekit_server_unreachable_is_said_honestly_and_nobody_is_counted_present(browser, classroom):  # noqa: F811
    teacher = classroom.join(classroom.launch("teacher"))  # the class starts while LiveKit answers
    student = classroom.join(classroom.launch("student"))
    classroom.livekit.stop()
    watched = open_page(browser, classroom, student, **PHONE)
    page = watched.page
    state = page.locator("#lk-connection")
    expect(state).to_have_attribute("data-state", "failed", timeout=30_000)
    expect(state).to_contain_text("video server: it did not answer")
    expect(state).not_to_contain_text("Check your connection")
    expect(page.locator("#lk-retry")).to_be_visible()
    back = page.locator("#lk-back")
    expect(back).to_be_visible()
    assert back.get_attribute("href") == classroom.return_url(student.room_id, "student")
    # Controls that cannot work look it: disabled, dashed, no pointer.
    mic = page.locator("#toggle-mic")
    expect(mic).to_be_disabled()
    look = mic.evaluate("b => { const s = getComputedStyle(b); return [s.cursor, s.borderStyle]; }")
    assert look == ["not-allowed", "dashed"]
    # The focus ring stands out: at least 3:1 against what is behind it.
    page.locator("#lk-retry").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    ring = page.evaluate(FOCUS_CONTRAST)
    assert ring["style"] == "solid" and ring["ratio"] >= 3, ring
    assert axe_problems(page) == []
    # Nobody was in the class: no attendance for the student (nor the teacher, who never connected).
    with classroom.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AttendanceInterval)) == 0
    assert teacher.room_id == student.room_id
    page.context.close()


# --- axe-core over the main pages -------------------------------------------------------------
def test_room_waiting_and_timetable_pages_have_no_serious_accessibility_violations(browser, moodle):
    context, _, frame, problems = open_in_moodle(browser, moodle, "student")
    expect(frame.locator("h1")).to_be_visible()  # the waiting page: the class has not started
    assert frame.locator("#join").count() == 0
    assert axe_problems(frame) == []
    context.close()
    context, _, frame, problems = open_in_moodle(browser, moodle, "teacher", **PHONE)
    expect(frame.locator("#join")).to_be_visible()
    expect(frame.locator(".room-header .course")).to_have_count(0)  # Moodle's heading names the course
    frame.get_by_text("Room settings").click()
    assert axe_problems(frame) == []  # room page, its timetable section and the open settings
    no_sideways_scroll(frame)
    assert problems.items == []
    context.close()


def test_attendance_pages_fit_a_phone_and_have_no_serious_accessibility_violations(browser, live):
    teacher, _ = hour_long_class(live)
    live.run_worker()
    context = browser.new_context(**PHONE)
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    page.goto(teacher.url("/attendance") + f"?t={teacher.page_ticket}")
    expect(page.locator("#grades")).to_be_visible()
    no_sideways_scroll(page)
    # Every column of every table is inside the page or its scrolling wrapper, which says so.
    for wrap in page.locator(".table-wrap").all():
        overflow = wrap.evaluate("w => w.scrollWidth > w.clientWidth + 1")
        if overflow:
            expect(wrap).to_have_attribute("tabindex", "0")
            expect(wrap.locator("xpath=preceding-sibling::p[1]")).to_contain_text("scroll it sideways")
    assert axe_problems(page) == []
    assert problems.items == []
    context.close()


def test_administration_pages_have_no_serious_accessibility_violations(browser, live):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(live.url + "/admin")
    assert axe_problems(page) == []  # the sign-in form
    page.get_by_label("Operator token").fill(ADMIN_TOKEN)
    page.get_by_label("Operator token").press("Enter")
    page.wait_for_url(re.compile(r"/admin\?t="))
    expect(page.locator("#servers")).to_be_visible()
    assert axe_problems(page) == []
    no_sideways_scroll(page)
    context.close()


def test_the_set_up_form_has_no_serious_accessibility_violations(browser, served):  # noqa: F811
    context, _, frame, _ = open_dialog(browser, served)
    assert axe_problems(frame) == []
    context.close()
