"""The top-of-the-hour crowd (bench/herd.py measures it): what one waiting page's poll and one
student's join cost the database, counted on the engine over real HTTP, and what the waiting
page needs from its poll to let the person in without loading another page."""
from __future__ import annotations

import re

import pytest

from lti_tool.extensions import db
from lti_tool.models import Enrolment, Room
from lti_tool.rooms.tickets import issue_ticket
from tests.test_launch_limits import counted_statements


def poll(person, shown: str | None = None):
    headers = {"X-Room-Ticket": person.ticket, "Accept": "application/json"}
    if shown:
        headers["X-Shown-Version"] = shown
    return person.session.get(person.url("/status"), headers=headers)


@pytest.mark.parametrize("live_overrides", [{"ROOM_SHOWN_SECONDS": "0"}])
def test_a_waiting_students_poll_costs_one_statement(live):
    student = live.launch("student")
    shown = poll(student).json()["version"]  # the first poll may take the state check
    with counted_statements(live.app) as statements:
        answers = [poll(student, shown) for _ in range(3)]
    assert all(answer.status_code == 200 and answer.json()["same"] for answer in answers)
    assert len(statements) == 3, statements


@pytest.mark.parametrize("live_overrides", [{"ROOM_SHOWN_SECONDS": "60"}])  # kept 5 s: the state check's
def test_a_page_showing_the_current_state_is_answered_without_the_database(live):
    first, second = live.launch("student"), live.launch("student")
    shown = poll(first).json()["version"]
    _ = second.ticket  # read from its page, before counting
    with counted_statements(live.app) as statements:
        answers = [poll(person, shown) for person in (first, second, first)]
    assert [answer.json().get("same") for answer in answers] == [True, True, True]
    assert answers[1].json()["open"] is False and statements == []
    # The ticket is still checked first: a forged one gets nothing, kept version or not.
    forged = first.session.get(first.url("/status"), headers={
        "X-Room-Ticket": first.ticket[:-4] + "AAAA", "X-Shown-Version": shown, "Accept": "application/json"})
    assert forged.status_code == 401 and "same" not in forged.text


@pytest.mark.parametrize("live_overrides", [{"ROOM_SHOWN_SECONDS": "60"}])
def test_a_page_showing_the_old_state_learns_of_the_start_at_its_next_poll(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    shown = poll(student).json()["version"]
    assert poll(student, shown).json()["same"] is True
    assert teacher.join().status_code == 302
    answer = poll(student, shown).json()
    assert answer["open"] is True and not answer.get("same") and 'id="join"' in answer["html"]["controls"]


def test_a_student_joining_a_started_class_costs_one_statement(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    assert teacher.join().status_code == 302
    assert poll(student).json()["open"] is True  # this poll asked the server: the state is fresh
    with counted_statements(live.app) as statements:
        joined = student.session.post(student.url("/join"), data={"t": student.ticket, "intent": "join"},
                                      headers={"Accept": "application/json"})
    assert joined.status_code == 200 and "role=VIEWER" in joined.json()["url"]
    assert len(statements) == 1, statements  # room, enrolment and user together
    assert live.bbb.count("create") == 1, "a student's join never creates the meeting"


def test_the_waiting_pages_poll_brings_the_join_form_once_the_class_opens(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    waiting = poll(student).json()
    assert waiting["open"] is False and 'id="join"' not in waiting["html"]["controls"]
    teacher.join()
    opened = poll(student, waiting["version"]).json()
    assert opened["open"] is True and not opened.get("same")
    # What the page swaps in is a working form: its fields, sent as they are, let the person in.
    form = opened["html"]["controls"]
    assert 'id="join"' in form and "Join class" in form
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    joined = student.session.post(student.url("/join"), data=fields, allow_redirects=False)
    assert joined.status_code == 302 and "role=VIEWER" in joined.headers["Location"]


def test_a_signed_ticket_pairing_someone_with_another_links_room_opens_nothing(live):
    live.platform.add_course("3", "OTHER", "Another course")
    live.platform.add_resource_link("20", "Other class", course_id="3")
    mine = live.launch("student")
    theirs = live.launch("teacher", resource_link_id="20", context_id="3")
    with live.app.app_context():
        enrolment = db.session.scalar(
            db.select(Enrolment.id).join(Room, Room.resource_link_id == Enrolment.resource_link_id)
            .where(Room.id == mine.room_id))
        forged = issue_ticket(enrolment, theirs.room_id)  # signed, names the wrong pair
    answer = mine.session.get(theirs.url("/status"), headers={"X-Room-Ticket": forged, "Accept": "application/json"})
    assert answer.status_code == 403
    joined = mine.session.post(theirs.url("/join"), data={"t": forged}, allow_redirects=False)
    assert joined.status_code == 403


@pytest.mark.parametrize("live_overrides", [{"ROOM_POLLS_PER_SECOND": "0.1"}])  # 2 people: a "big" class
def test_a_big_class_is_told_to_poll_less_often(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    first = poll(student).json()
    assert first["poll"] == round(2 / 0.1 / 1.375, 1)  # 2 pages at 0.1 polls a second: every 14.5-25 s
    assert poll(student, first["version"]).json()["poll"] == first["poll"]  # the kept answer says it too
    assert poll(teacher).json()["poll"] == first["poll"]


def test_a_class_of_ordinary_size_keeps_the_pages_own_interval(live):
    student = live.launch("student")
    assert poll(student).json()["poll"] == 0
