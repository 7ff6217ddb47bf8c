"""The room pages' status (docs/room-states.md) over real HTTP with the fake BigBlueButton: what
/rooms/<id>/status says before, during and after a class — including a slow start and an end
the tool learns from the server — and that a Join left on a page after the end starts nothing."""
from __future__ import annotations

import threading
import time

import pytest

from lti_tool.extensions import db
from lti_tool.models import Room
from tests.support import ClassRun


@pytest.fixture
def live_overrides():
    return {"ROOM_STATE_CHECK_SECONDS": "0"}  # every poll asks the server: no waiting in tests


def status(person, shown: str | None = None) -> dict:
    headers = {"X-Room-Ticket": person.ticket, "Accept": "application/json"}
    if shown is not None:
        headers["X-Shown-Version"] = shown
    response = person.session.get(person.url("/status"), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def join_intent(person, intent: str | None, **headers):
    data = {"t": person.ticket, **({"intent": intent} if intent else {})}
    return person.session.post(person.url("/join"), data=data, headers=headers, allow_redirects=False)


def meeting_id(live, person) -> str:
    with live.app.app_context():
        return db.session.get(Room, person.room_id).meeting_id


def test_before_a_class_everyone_reads_not_started(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    mine, theirs = status(teacher), status(student)
    assert mine["state"] == theirs["state"] == "not_started"
    assert mine["open"] is True and theirs["open"] is False
    assert "Start class" in mine["html"]["controls"] and 'id="join"' not in theirs["html"]["controls"]
    assert "has not started yet" in theirs["html"]["status"]


def test_a_page_showing_the_current_state_gets_same_and_a_change_gets_the_words(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    first = status(student)
    again = status(student, shown=first["version"])
    assert again["same"] is True and "html" not in again and "url" not in again
    assert again["state"] == "not_started" and again["open"] is False
    assert status(student, shown="an-older-version")["html"]["status"] == first["html"]["status"]
    assert status(teacher)["version"] != first["version"]  # the teacher's words differ
    assert teacher.join().status_code == 302  # the class starts: the student's page must change
    changed = status(student, shown=first["version"])
    assert "same" not in changed and changed["open"] is True and changed["url"] and changed["html"]


def test_a_slow_start_reads_starting_then_live_with_since_and_people(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    _ = teacher.ticket, student.ticket
    live.bbb.delay_seconds = 0.8  # every call of the server takes this long
    answers = []
    starting = threading.Thread(target=lambda: answers.append(teacher.join()))
    starting.start()
    time.sleep(0.3)
    assert status(student)["state"] == "not_started"  # the create has not answered yet
    starting.join(timeout=30)
    live.bbb.delay_seconds = 0
    assert answers[0].status_code == 302
    during = status(student)
    assert during["state"] == "starting" and during["open"] is True
    assert "Join class" in during["html"]["controls"] and 'name="intent" value="join"' in during["html"]["controls"]

    run = ClassRun(live, teacher)  # the teacher's tab opens the client; BBB says who came
    live.bbb.enter(run.meeting_id, live.public_id("teacher"), "Terry Teacher", "MODERATOR")
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.joined("student", 1))
    now = status(student)
    assert now["state"] == "live" and now["people"] == 2
    assert now["since"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.t0 / 1000))
    assert now["recording"] == "on_demand" and "A teacher may record it." in now["html"]["status"]
    assert "2 people in the class" in now["html"]["status"]
    run.send(run.left("student", 3))
    assert status(teacher)["people"] == 1


def test_an_end_seen_at_the_server_shows_ended_and_takes_join_away(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    run = ClassRun(live, teacher)
    live.bbb.enter(run.meeting_id, live.public_id("teacher"), "Terry Teacher", "MODERATOR")
    assert status(student)["state"] == "live"
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.left("teacher", 40), run.ended(40))
    live.bbb.expire(run.meeting_id)  # the meeting is gone: the tool learns it from the server

    theirs, mine = status(student), status(teacher)
    assert theirs["state"] == mine["state"] == "ended"
    assert theirs["open"] is False and 'id="join"' not in theirs["html"]["controls"]
    assert "The class has ended" in theirs["html"]["status"] and "not started" not in theirs["html"]["status"]
    assert theirs["ended_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.at(40) / 1000))
    assert "Start a new class" in mine["html"]["controls"] and "Join class" not in mine["html"]["controls"]
    assert 'id="ended-attendance"' in theirs["html"]["controls"] and 'href="#recordings"' in theirs["html"]["controls"]
    page = student.get().text
    assert "The class has ended" in page and 'id="join"' not in page and 'id="waiting"' in page


def test_a_join_left_on_a_page_after_the_end_starts_no_meeting(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    run = ClassRun(live, teacher)
    live.bbb.enter(run.meeting_id, live.public_id("teacher"))
    assert 'name="intent" value="join"' in student.get().text  # the page offers to join the class
    creates = live.bbb.count("create")
    live.bbb.expire(run.meeting_id)

    stale = join_intent(student, "join")
    assert stale.status_code == 303 and "/rooms/" in stale.headers["Location"]
    refused = join_intent(teacher, "join", **{"X-Room-Ticket": teacher.ticket})
    assert refused.status_code == 409 and refused.json()["state"] == "ended"
    assert join_intent(teacher, "join").status_code == 303  # without script: back to the page
    assert live.bbb.count("create") == creates and live.bbb.meetings == {}

    again = join_intent(teacher, None)  # "Start a new class" says so: it starts one
    assert again.status_code == 302 and live.bbb.count("create") == creates + 1


def test_a_failed_start_answers_the_page_script_with_the_reason(live):
    teacher = live.launch("teacher")
    _ = teacher.ticket
    live.bbb.fail_next(20)  # every retry fails
    answer = join_intent(teacher, None, **{"X-Room-Ticket": teacher.ticket})
    assert answer.status_code == 503 and "video server" in answer.json()["error"]
    assert status(teacher)["state"] == "not_started"


def test_an_absent_student_reads_you_were_absent(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"))
    run.send(run.left("teacher", 30), run.ended(30))
    page = student.session.post(student.url("/open"), data={"t": student.ticket, "page": "attendance"})
    assert page.status_code == 200
    assert "You were absent from this class." in page.text and "Nobody" not in page.text
