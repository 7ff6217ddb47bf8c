"""Submission review over real HTTP: a grade opened from the fake Moodle's gradebook sends an
LtiSubmissionReviewRequest naming the student (`for_user`). The teacher sees that student's
classes, join and leave times, minutes, grade and the policy in words; a student sees their
own record; a student asking for someone else's is refused, with nothing written.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.fakes.lti_platform import DEEP_LINKING_REQUEST, SUBMISSION_REVIEW_REQUEST
from tests.support import hour_long_class, page_form, row_counts


def review(live, user: str, for_user: str, resource_link_id: str = "1") -> tuple[requests.Session, requests.Response]:
    """Open a grade's review in the gradebook: the launch, then the page it leads to."""
    browser = requests.Session()
    answer = live.platform.launch(browser, user=user, message_type=SUBMISSION_REVIEW_REQUEST, for_user=for_user,
                                  resource_link_id=resource_link_id)
    if answer.status_code != 303:
        return browser, answer
    return browser, browser.get(live.url + answer.headers["Location"], allow_redirects=False)


def offer_review(platform, link_id: str = "1") -> None:
    """The activity's grade item has a submissionReview (what deep linking's lineItem gives)."""
    next(item for item in platform.line_items.values() if item.resource_link_id == link_id).submission_review = {}


def cells(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_a_teacher_reviews_a_students_classes_times_minutes_grade_and_policy(live):
    offer_review(live.platform)
    _, run = hour_long_class(live)
    live.run_worker()
    _, page = review(live, "teacher", for_user="student5")
    assert page.status_code == 200, page.text
    text = cells(page.text)
    assert "Attendance of Sally Student" in text
    assert re.search(r'id="review-grade">75%<', page.text) and "Attended 45 of 60 minutes" in text
    t0 = run.at(0) // 1000
    joined_at = [f"{(t0 + m * 60) // 3600 % 24:02d}:{(t0 + m * 60) // 60 % 60:02d}" for m in (5, 20, 30, 60)]
    for moment in joined_at:
        assert moment in text, moment
    assert "45" in text and "75%" in text and "Gradebook: sent" in text
    assert "the grade is the average of those shares" in text and "Students who attended no class get 0." in text
    assert "Sam Student" not in text, "only the reviewed student"


def test_a_student_reviewing_their_own_grade_sees_their_own_record(live):
    offer_review(live.platform)
    hour_long_class(live)
    live.run_worker()
    browser, page = review(live, "student", for_user="student")
    assert page.status_code == 200
    text = cells(page.text)
    assert "Attendance of Sam Student" in text and "100%" in text and "Sally Student" not in text
    query = parse_qs(urlsplit(page.url).query)
    assert query["student"] and query["t"]
    sally = live.public_id("student5")  # another student's id, as one might guess or see it
    tampered = browser.get(page.url.replace(query["student"][0], sally))
    assert tampered.status_code == 403 and "only review your own" in tampered.text


def test_a_student_asking_to_review_someone_else_is_refused_and_nothing_is_written(live):
    offer_review(live.platform)
    hour_long_class(live)
    before = row_counts(live.app)
    _, answer = review(live, "student", for_user="student5")
    assert answer.status_code == 403 and "only review your own" in answer.text and "<h1" in answer.text
    after = row_counts(live.app)
    assert after["enrolments"] == before["enrolments"] and after["used_nonces"] == before["used_nonces"]


def test_reviewing_a_student_the_tool_has_no_record_of_says_so(live):
    offer_review(live.platform)
    live.launch("teacher")
    _, page = review(live, "teacher", for_user="student6")
    assert page.status_code == 200 and "no attendance record for this student" in page.text


def test_a_deep_linked_activity_offers_review_of_its_grades(live):
    platform = live.platform
    setup_browser = requests.Session()
    form_page = platform.launch(setup_browser, user="teacher", message_type=DEEP_LINKING_REQUEST)
    _, fields = page_form(form_page.text, "deep-link-form")
    fields.update(title="Reviewed seminar", provider="bbb", points="20")
    answer = setup_browser.post(live.url + "/lti/deep-link", data=fields, headers={"Origin": live.url})
    action, returned = page_form(answer.text, "deep-link-return")
    assert requests.post(action, data=returned, timeout=10).status_code == 200
    (link,) = platform.created_activities
    live.launch("teacher", resource_link_id=link.id)
    live.launch("student", resource_link_id=link.id)
    _, page = review(live, "teacher", for_user="student", resource_link_id=link.id)
    assert page.status_code == 200 and "Attendance of Sam Student · Reviewed seminar" in cells(page.text)
    assert "out of 20 points" in page.text and "No class has run in this activity yet." in page.text
