"""Engagement on the teacher's attendance page in headless Chromium, on a 390 px phone: the
participation line is on screen, under the student's status, and the participation rule, switched
on from the page's own form with the keyboard, changes the grade shown."""
from __future__ import annotations

import tests.browser_support  # noqa: F401  (skips this module without a browser)
from tests.browser_support import Problems
from tests.support import hour_long_class
from tests.test_engagement import SALLY, engagement, report


def test_teacher_sees_participation_and_requires_it_on_a_phone(browser, live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(chats=4, talk_time=190, raisehand=1), engagement(raisehand=2))
    live.run_worker()
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    page.goto(teacher.url("/attendance") + f"?t={teacher.page_ticket}")
    sally_row = page.locator(".attendance-table tr", has_text=SALLY)
    line = sally_row.locator(".participation")
    assert line.inner_text().startswith("did not speak · 0 messages · 2 hands")
    box = line.bounding_box()  # inside the phone's width, not scrolled out of the table
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    width = page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert width[0] <= width[1], f"horizontal scroll on a phone: {width}"
    assert page.locator("#grades tr", has_text=SALLY).locator("td").first.inner_text() == "75%"

    page.locator("details:has(#g-participation) summary").click()
    page.locator("#g-participation").focus()
    page.keyboard.press("Space")
    assert page.locator("#g-participation").is_checked()
    page.locator("#g-participation").press("Enter")  # submits the form, as a keyboard user would
    page.wait_for_url("**notice=*")
    assert page.locator("#grades tr", has_text=SALLY).locator("td").first.inner_text() == "0%"
    assert "late, did not speak or write" in sally_row.inner_text()
    page.screenshot(path="/tmp/attendance-engagement-phone.png", full_page=True)
    assert problems.items == []
    context.close()
