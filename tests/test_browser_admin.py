"""The administration page in headless Chromium: a platform administrator opens it from the
room page inside Moodle's iframe, and it keeps itself up to date; an operator signs in on a
phone."""
from __future__ import annotations

import re

import pytest

from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.support import grades_given_up

TOKEN = "operator-token-" + "b" * 40
PHONE = {"viewport": {"width": 375, "height": 667}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture
def live_overrides():
    return {"ADMIN_TOKEN": TOKEN, "ADMIN_REFRESH_SECONDS": "1"}


@pytest.fixture
def moodle(live):
    """The fake Moodle's activity page embeds the tool in an iframe, as Moodle does."""
    platform = live.platform
    platform.activity_page = lambda query: course_page(live.url, platform.login_initiation(user=query.get("user")))
    return live


def test_a_platform_administrator_opens_administration_inside_moodles_frame(browser, moodle):
    context = browser.new_context()
    context.set_default_timeout(15_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(moodle.platform.activity_url(user="admin"))
    frame = page.frame(name="tool")
    frame.wait_for_url(ROOM_URL)
    frame.get_by_role("button", name="Administration").click()
    frame.wait_for_url(re.compile(r"/admin\?t="))
    expect(frame.locator("#admin-scope")).to_contain_text(moodle.platform.issuer)
    expect(frame.locator("#registrations")).to_contain_text(moodle.platform.issuer)
    expect(frame.locator("#servers")).to_contain_text("Accepted")
    expect(frame.locator("#no-failures")).to_be_visible()
    # Grades fail while the page is open: it shows them without a reload.
    grades_given_up(moodle)
    expect(frame.locator("#failed-total")).to_have_text("2", timeout=20_000)
    moodle.platform.down = False
    frame.get_by_role("button", name="Send the failed grades again").click()
    expect(frame.locator("#retried")).to_contain_text("2 failed grades put back in the queue")
    assert problems.items == []
    context.close()


def test_an_operator_signs_in_on_a_phone(browser, live):
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(live.url + "/admin")
    page.get_by_label("Operator token").fill(TOKEN)
    page.get_by_label("Operator token").press("Enter")
    page.wait_for_url(re.compile(r"/admin\?t="))
    expect(page.locator("#admin-scope")).to_contain_text("every platform")
    expect(page.locator("#servers")).to_contain_text("bbb")
    # Nothing wider than the phone: the tables scroll inside their own box.
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
    assert problems.items == []
    context.close()


def test_a_wrong_token_on_the_sign_in_form_says_so(browser, live):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(live.url + "/admin")
    page.get_by_label("Operator token").fill("not-the-token-" + "c" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-problem")).to_have_text("That token is not right.")
    context.close()
