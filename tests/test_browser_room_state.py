"""The room pages follow the class by themselves (docs/room-states.md), in headless Chromium, inside
the LMS's iframe and at 390 px: the teacher starts, the class runs, the server ends it — the
teacher's and the student's pages change without a reload; a failed start shows in the course tab.
"""
from __future__ import annotations

import pytest

from tests.axe_support import axe_problems
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.conftest import empty_tables  # noqa: F401  (the live fixture empties the tables)

CHANGES_WITHIN_MS = 20_000  # pages poll every 4-7 s
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture
def live_overrides():
    return {"ROOM_STATE_CHECK_SECONDS": "0"}


@pytest.fixture
def course(live):
    """The fake Moodle's activity page embeds the tool in an iframe named `tool`."""
    live.platform.activity_page = lambda query: course_page(
        live.url, live.platform.login_initiation(user=query.get("user", "teacher")))
    return live


class InCourse:
    def __init__(self, browser, live, user, **options):
        self.context = browser.new_context(**options)
        self.context.set_default_timeout(10_000)
        self.problems = Problems()
        self.page = self.problems.watch(self.context.new_page())
        self.page.goto(live.platform.activity_url(user=user))
        self.frame = self.page.frame(name="tool")
        self.frame.wait_for_url(ROOM_URL)
        self.frame.wait_for_load_state()

    def status(self):
        return self.frame.locator("p.status[role=status]")


@pytest.fixture
def open_course(browser, course):
    opened = []

    def open_(user, **options):
        opened.append(InCourse(browser, course, user, **options))
        return opened[-1]

    yield open_
    for person in opened:
        person.context.close()


def meeting_of(live):
    (meeting_id,) = live.bbb.meetings
    return meeting_id


@pytest.mark.parametrize("options", [{}, PHONE], ids=["desktop", "phone-390"])
def test_both_pages_follow_start_run_and_end_without_a_reload(open_course, course, options):
    teacher, student = open_course("teacher", **options), open_course("student", **options)
    expect(student.status()).to_contain_text("has not started yet")
    expect(teacher.frame.locator("#join")).to_have_text("Start class")

    with teacher.context.expect_page() as opened:
        teacher.frame.locator("#join").click()
    tab = opened.value
    tab.wait_for_url(course.bbb.url + "/html5client/join?sessionToken=*")  # the teacher is in: it runs

    expect(teacher.status()).to_contain_text("The class is running", timeout=CHANGES_WITHIN_MS)
    expect(teacher.frame.locator("#join")).to_have_text("Join class")
    expect(teacher.frame.locator("#end")).to_be_visible()
    expect(student.frame.locator("#join")).to_have_text("Join class", timeout=CHANGES_WITHIN_MS)
    expect(student.status()).to_contain_text("The class is running", timeout=CHANGES_WITHIN_MS)

    course.bbb.expire(meeting_of(course))  # the server ends the meeting (everyone left)
    expect(student.status()).to_contain_text("The class has ended", timeout=CHANGES_WITHIN_MS)
    expect(student.frame.locator("#join")).to_have_count(0)
    expect(student.frame.locator("#ended-attendance")).to_be_visible()
    expect(teacher.frame.locator("#join")).to_have_text("Start a new class", timeout=CHANGES_WITHIN_MS)
    expect(teacher.frame.locator("#end")).to_have_count(0)
    assert ROOM_URL.search(teacher.frame.url) and ROOM_URL.search(student.frame.url)
    width = student.frame.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"
    assert axe_problems(teacher.frame) == [] and axe_problems(student.frame) == []  # the ended state's pages
    assert teacher.problems.items == [] and student.problems.items == []


@pytest.mark.parametrize("options", [{}, PHONE], ids=["desktop", "phone-390"])
def test_a_failed_start_is_shown_in_the_course_tab(open_course, course, options):
    teacher = open_course("teacher", **options)
    course.bbb.fail_next(50)  # create fails, retries too
    tabs = []
    teacher.context.on("page", lambda tab: tabs.append(tab))
    teacher.frame.locator("#join").click()
    error = teacher.frame.locator("#class-error[role=alert]")
    expect(error).to_be_visible(timeout=CHANGES_WITHIN_MS)
    expect(error).to_contain_text("video server")
    expect(teacher.frame.locator("#join")).to_have_text("Start class")
    assert len(tabs) == 1 and tabs[0].is_closed(), "the class tab opens, and closes on an error"
    assert course.bbb.meetings == {}
    assert all("503" in item and "/join" in item for item in teacher.problems.items), teacher.problems.items
