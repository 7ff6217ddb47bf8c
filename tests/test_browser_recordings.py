"""Recordings in headless Chromium, in Moodle's iframe on a 390 px phone: after a class the
teacher's page shows "No recordings yet"; BBB finishes the recording and calls the tool back, and
the recording appears in the page's `recordings` list without a reload (static/recordings.js);
deleting it asks for confirmation first (a dismissed question deletes nothing).
"""
from __future__ import annotations

import re

import pytest

import tests.browser_support  # noqa: F401  (skips this module without a browser)
from tests.axe_support import axe_problems
from tests.browser_support import ROOM_URL, Problems, course_page, expect
from tests.support import ClassRun

PHONE = {"viewport": {"width": 390, "height": 760}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
SIDEWAYS = "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"


@pytest.fixture
def live_overrides() -> dict:
    return {"RECORDINGS_CHECK_SECONDS": "3600", "RECORDINGS_PAGE_REFRESH_SECONDS": "1"}


def open_in_moodle(browser, live, user: str):
    live.platform.activity_page = lambda query: course_page(live.url, live.platform.login_initiation(user=user))
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    problems = Problems()
    page = problems.watch(context.new_page())
    page.goto(live.platform.activity_url())
    frame = page.frame(name="tool")
    frame.wait_for_url(ROOM_URL)
    return context, page, frame, problems


def test_a_new_recording_appears_without_a_reload_and_delete_asks_first(browser, live):
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    assert teacher.post("/end").status_code == 303
    context, page, frame, problems = open_in_moodle(browser, live, "teacher")
    recordings = frame.locator("#recordings")
    expect(recordings).to_contain_text("No recordings yet")
    frame.evaluate("() => { window.notReloaded = true; }")

    record_id = live.bbb.record_run(run.meeting_id, minutes=50)
    assert live.bbb.send_recording_ready(None, run.meeting_id, record_id).status_code == 200
    link = recordings.locator("a.playback")
    expect(link).to_have_attribute("href", live.bbb.recording(record_id).playback[0][1], timeout=15_000)
    expect(recordings).to_contain_text("50 min")
    expect(recordings.locator("time")).not_to_contain_text("UTC")  # the browser's own time zone
    assert frame.evaluate("() => window.notReloaded === true"), "the page reloaded"
    width, client = frame.evaluate(SIDEWAYS)
    assert width <= client, f"the recordings scroll sideways on a phone: {width} > {client}"
    assert axe_problems(frame) == []  # the teacher's page with a recording and its forms

    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    recordings.get_by_role("button", name="Delete").click()
    expect(link).to_be_visible()
    assert live.bbb.recording(record_id) is not None and len(questions) == 1
    assert "Delete the recording" in questions[0]

    page.once("dialog", lambda dialog: answer(dialog, True))
    recordings.get_by_role("button", name="Delete").click()
    frame.wait_for_url(re.compile(r"recording=deleted"))
    expect(frame.locator("#recordings [role=status]")).to_contain_text("Recording deleted")
    expect(frame.locator("#recordings a.playback")).to_have_count(0)
    assert live.bbb.recording(record_id) is None and len(questions) == 2
    assert problems.items == []
    context.close()
