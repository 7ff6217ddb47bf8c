"""The timetable in headless Chromium: a teacher in Moodle's iframe, in Paris, adds a weekly
series, moves one class and cancels another; a student on a phone sees the next class in Paris
time with its countdown and the cancelled one with its reason; the course view and My classes
list the rooms and open them.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

import tests.browser_support  # noqa: F401  (skips this module without a browser)
from lti_tool.extensions import db
from lti_tool.models import Occasion
from tests.axe_support import axe_problems
from tests.browser_support import ROOM_URL, Problems, course_page, expect

PARIS = ZoneInfo("Europe/Paris")
IN_PARIS = {"timezone_id": "Europe/Paris", "locale": "en-GB"}
SIDEWAYS = "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
PHONE = {"viewport": {"width": 390, "height": 760}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def in_moodle(live, **login) -> str:
    """The fake Moodle's activity page embedding the tool, for this login."""
    live.platform.activity_page = lambda query: course_page(live.url, live.platform.login_initiation(**login))
    return live.platform.activity_url()


def open_in_moodle(browser, live, user: str, **options):
    context = browser.new_context(**IN_PARIS, **options)
    context.set_default_timeout(10_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(in_moodle(live, user=user))
    frame = page.frame(name="tool")
    frame.wait_for_url(ROOM_URL)
    return context, page, frame, problems


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS).astimezone(UTC)


def stored(live) -> list[tuple]:
    with live.app.app_context():
        return [(o.starts_at, o.minutes, o.status, o.reason)
                for o in db.session.scalars(select(Occasion).order_by(Occasion.starts_at))]


def teacher_plans_three_weeks(browser, live, first: date):
    context, page, frame, problems = open_in_moodle(browser, live, "teacher")
    frame.locator("#add-class summary").click()
    frame.get_by_label("Date and time of the first class").fill(f"{first:%Y-%m-%d}T09:00")
    frame.get_by_label("Length (minutes)").fill("90")
    frame.get_by_label("Number of weekly classes").fill("3")
    expect(frame.locator("#add-zone")).to_contain_text("Europe/Paris")
    frame.get_by_role("button", name="Add to the timetable").click()
    frame.wait_for_url(re.compile(r"timetable=added"))
    expect(frame.locator("#timetable p.notice[role=status]")).to_contain_text("Saved")
    weeks = [first + timedelta(weeks=n) for n in range(3)]
    assert stored(live) == [(paris(day, 9), 90, "scheduled", "") for day in weeks]
    expect(frame.locator("#upcoming li").first).to_contain_text("09:00")  # Paris time, not UTC

    second = frame.locator("#upcoming li").nth(1)
    second.locator("summary").click()
    second.get_by_label("New date and time").fill(f"{weeks[1] + timedelta(days=1):%Y-%m-%d}T14:30")
    second.get_by_label("Reason, shown to students").fill("Room change")
    second.get_by_role("button", name="Move this class").click()
    frame.wait_for_url(re.compile(r"timetable=moved"))

    third = frame.locator("#upcoming li").nth(2)
    third.locator("summary").click()
    third.get_by_label("Reason for cancelling, shown to students").fill("Teacher ill")
    page.once("dialog", lambda dialog: dialog.accept())
    third.get_by_role("button", name="Cancel this class").click()
    frame.wait_for_url(re.compile(r"timetable=cancelled"))
    assert stored(live) == [
        (paris(weeks[0], 9), 90, "scheduled", ""),
        (paris(weeks[1] + timedelta(days=1), 14, 30), 90, "scheduled", "Room change"),
        (paris(weeks[2], 9), 90, "cancelled", "Teacher ill"),
    ]
    expect(frame.locator("#upcoming li").nth(1)).to_contain_text("14:30")
    assert axe_problems(frame) == []  # the teacher's page with a timetable, a move and a cancellation
    return context, page, frame, problems


def test_teacher_plans_moves_and_cancels_and_the_student_sees_it_on_a_phone_in_local_time(browser, live):
    first = (datetime.now(PARIS) + timedelta(days=3)).date()
    context, _, _, problems = teacher_plans_three_weeks(browser, live, first)
    assert problems.items == []
    context.close()

    context, page, frame, problems = open_in_moodle(browser, live, "student", **PHONE)
    expect(frame.locator("#waiting")).to_be_visible()
    next_class = frame.locator("#next-class")
    expect(next_class).to_contain_text(re.compile(r"starts in [23] days"))
    expect(next_class).to_contain_text("09:00")
    expect(next_class).not_to_contain_text("UTC")
    expect(next_class).to_contain_text("you can enter from 08:50")
    expect(frame.locator("#coming-up")).to_contain_text("Cancelled: Teacher ill")
    expect(frame.locator("#coming-up")).to_contain_text("moved: Room change")
    expect(frame.locator("#timetable [data-timezone-name]")).to_have_text("Europe/Paris")
    width, client = frame.evaluate(SIDEWAYS)
    assert width <= client, f"the waiting page scrolls sideways on a phone: {width} > {client}"
    assert axe_problems(frame) == []  # the waiting page with its timetable, on a phone

    frame.locator("#mine-link").click()
    frame.wait_for_url(re.compile(r"/mine\?t="))
    expect(frame.locator("h1")).to_have_text("My classes")
    expect(frame.locator("#rooms li")).to_have_count(1)
    expect(frame.locator("#rooms")).to_contain_text(re.compile(r"starts in [23] days"))
    assert axe_problems(frame) == []
    assert problems.items == []
    context.close()


def test_course_view_lists_the_teachers_rooms_and_opens_another(browser, live):
    live.platform.add_resource_link("7", "Second class")
    live.launch("teacher", resource_link_id="7")
    context, page, frame, problems = open_in_moodle(browser, live, "teacher", **PHONE)
    frame.locator("#course-link").click()
    frame.wait_for_url(re.compile(r"/course\?t="))
    expect(frame.locator("h1")).to_have_text("Classes of LTI Live 101")
    expect(frame.locator("#rooms li")).to_have_count(2)
    expect(frame.locator("#rooms li").first).to_contain_text("(this room)")
    frame.get_by_role("button", name="Second class").click()
    frame.wait_for_url(ROOM_URL)
    expect(frame.locator("h1#room-title")).to_have_text("Second class")
    expect(frame.locator("#join")).to_have_text("Start class")

    frame.locator("#mine-link").click()
    frame.wait_for_url(re.compile(r"/mine\?t="))
    expect(frame.locator("#rooms li")).to_have_count(2)
    width, client = frame.evaluate(SIDEWAYS)
    assert width <= client, f"My classes scrolls sideways on a phone: {width} > {client}"
    assert problems.items == []
    context.close()
