"""The attendance page in headless Chromium: readable on a phone, tables labelled, no errors."""
from __future__ import annotations

import tests.browser_support  # noqa: F401  (skips this module without a browser)
from tests.browser_support import Problems
from tests.support import hour_long_class


def test_teacher_attendance_page_on_a_phone(browser, live):
    teacher, _ = hour_long_class(live)
    live.run_worker()
    context = browser.new_context(viewport={"width": 375, "height": 667}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    page.goto(teacher.url("/attendance") + f"?t={teacher.page_ticket}")
    assert page.locator("h1").inner_text().startswith("Attendance and grades")
    assert page.locator("#grades tbody tr").count() == 3
    assert page.locator("#grades thead th[scope=col]").count() == 4
    assert page.locator("#grades td", has_text="Sent").count() == 3
    width = page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width[0] <= width[1], f"horizontal scroll on a phone: {width}"
    page.locator("#send-grades").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**notice=*")
    assert page.locator("p.notice[role=status]").is_visible()
    page.screenshot(path="/tmp/attendance-phone.png", full_page=True)
    assert problems.items == []
    context.close()


def test_student_sees_their_own_record_only(browser, live):
    hour_long_class(live)
    student = live.launch("student5")
    live.run_worker()
    context = browser.new_context()
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    page.goto(student.url("/attendance") + f"?t={student.page_ticket}")
    assert "My attendance" in page.locator("h1").inner_text()
    assert "75%" in page.locator("main").inner_text()
    assert page.locator("#grades").count() == 0 and page.locator("#send-grades").count() == 0
    assert problems.items == []
    context.close()
