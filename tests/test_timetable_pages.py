"""The timetable on the pages: the teacher's forms (add, move, cancel, early entry), what they
refuse, who may use them; the student's next class and own attendance; the course view and
"My classes"; the early-entry window deciding between the room page and the waiting page.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Occasion, Room
from tests.conftest import row_counts
from tests.support import hour_long_class

LOCAL = "%Y-%m-%dT%H:%M"  # what a datetime-local input sends


def post(person, path: str, **fields):
    return person.client.post(f"/rooms/{person.room_id}/timetable/{path}", data={"t": person.ticket, **fields})


def occasions(app, room_id: int) -> list[Occasion]:
    with app.app_context():
        rows = db.session.scalars(select(Occasion).where(Occasion.room_id == room_id).order_by(Occasion.starts_at))
        return [(o.id, o.starts_at, o.minutes, o.status, o.reason, o.sequence) for o in rows]


def add_class(person, start: datetime, weeks: int = 1, minutes: int = 60):
    answer = post(person, "add", start=start.strftime(LOCAL), minutes=str(minutes), weeks=str(weeks))
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return answer


def refused(answer, status: int = 400) -> str:
    body = answer.get_data(as_text=True)
    assert answer.status_code == status, body
    assert "<h1" in body and "Traceback" not in body
    return body


def test_teacher_adds_a_weekly_series_read_in_the_browsers_time_zone(app, lms):
    teacher = lms.launch("teacher")
    answer = post(teacher, "add", start="2027-03-01T09:00", time_zone="Europe/Paris", tz_offset="-60",
                  minutes="90", weeks="5")
    assert answer.status_code == 303
    assert re.search(r"^/rooms/\d+\?t=[^&]+&timetable=added#timetable$", answer.headers["Location"]) or \
        "timetable=added" in answer.headers["Location"]
    rows = occasions(app, teacher.room_id)
    # 09:00 in Paris: 08:00 UTC in winter; after the clocks change (28 March 2027) 07:00 UTC.
    assert [r[1] for r in rows] == [datetime(2027, 3, d, 8, tzinfo=UTC) for d in (1, 8, 15, 22)] + [
        datetime(2027, 3, 29, 7, tzinfo=UTC)]
    assert {r[2] for r in rows} == {90}
    with app.app_context():
        assert db.session.get(Room, teacher.room_id).time_zone == "Europe/Paris"
    page = teacher.client.get(answer.headers["Location"]).get_data(as_text=True)
    assert 'role="status">Saved: the class is in the timetable.' in page
    assert page.count('datetime="2027-03-') >= 5  # each class, in UTC for the script to rewrite
    assert '<time datetime="2027-03-01T08:00:00Z" data-local="datetime">Mon 1 Mar 2027, 08:00 UTC</time>' in page


def test_without_a_known_time_zone_the_browsers_offset_is_used(app, lms):
    teacher = lms.launch("teacher")
    post(teacher, "add", start="2027-03-01T09:00", time_zone="Mars/Olympus", tz_offset="-60", minutes="60", weeks="1")
    assert [r[1] for r in occasions(app, teacher.room_id)] == [datetime(2027, 3, 1, 8, tzinfo=UTC)]


def _other_rooms_occasion(app, lms, platform) -> int:
    platform.add_resource_link("7", "Second class")
    other = lms.launch("teacher", resource_link_id="7")
    add_class(other, datetime(2027, 5, 3, 9, tzinfo=UTC))
    return occasions(app, other.room_id)[0][0]


@pytest.mark.parametrize("form, words", [
    ({"path": "add", "start": "next monday", "minutes": "60", "weeks": "1"}, "date and time"),
    ({"path": "add", "start": "2027-02-30T09:00", "minutes": "60", "weeks": "1"}, "date and time"),
    ({"path": "add", "start": "2027-03-01T09:00", "minutes": "0", "weeks": "1"}, "1 to 1440 minutes"),
    ({"path": "add", "start": "2027-03-01T09:00", "minutes": "60", "weeks": "60"}, "1 to 52 weekly"),
    ({"path": "add", "start": "2027-03-01T09:00", "minutes": "an hour", "weeks": "1"}, "whole number"),
    ({"path": "add", "start": "1999-03-01T09:00", "minutes": "60", "weeks": "1"}, "2000 and 2100"),
    ({"path": "move", "occasion": "OTHER", "start": "2027-04-01T09:00", "minutes": "60"}, "not in this room"),
    ({"path": "cancel", "occasion": "OTHER", "reason": "ill"}, "not in this room"),
    ({"path": "move", "occasion": "MINE", "start": "2027-04-01T09:00", "minutes": "0"}, "1 to 1440 minutes"),
    ({"path": "move", "occasion": "MINE", "start": "", "minutes": "60"}, "date and time"),
    ({"path": "early", "early_minutes": "500"}, "0 to 120 minutes"),
])
def test_bad_timetable_forms_get_a_readable_page_and_change_nothing(app, lms, platform, form, words):
    other = _other_rooms_occasion(app, lms, platform)
    teacher = lms.launch("teacher")
    add_class(teacher, datetime(2027, 4, 5, 9, tzinfo=UTC), weeks=2)
    mine = occasions(app, teacher.room_id)[0][0]
    before, mine_before = row_counts(app), occasions(app, teacher.room_id)
    fields = {k: {"OTHER": str(other), "MINE": str(mine)}.get(v, v) for k, v in form.items() if k != "path"}
    body = refused(post(teacher, form["path"], **fields))
    assert words in body
    assert row_counts(app) == before
    assert occasions(app, teacher.room_id) == mine_before
    with app.app_context():
        assert db.session.get(Room, teacher.room_id).early_join_minutes == 10
        untouched = db.session.get(Occasion, other)
        assert (untouched.status, untouched.starts_at, untouched.sequence) == (
            "scheduled", datetime(2027, 5, 3, 9, tzinfo=UTC), 0)


def test_students_cannot_change_the_timetable(app, lms):
    teacher = lms.launch("teacher")
    add_class(teacher, datetime(2027, 4, 5, 9, tzinfo=UTC))
    occasion = occasions(app, teacher.room_id)[0][0]
    student = lms.launch("student")
    before = row_counts(app)
    for path, fields in (("add", {"start": "2027-03-01T09:00", "minutes": "60", "weeks": "3"}),
                         ("move", {"occasion": occasion, "start": "2027-03-01T09:00", "minutes": "60"}),
                         ("cancel", {"occasion": occasion, "reason": "no"}), ("early", {"early_minutes": "60"})):
        assert "Only the teachers" in refused(post(student, path, **fields), 403)
    assert refused(student.client.get(f"/rooms/{student.room_id}/course", query_string={"t": student.page_ticket}),
                   403)
    assert row_counts(app) == before
    assert occasions(app, teacher.room_id)[0][3:] == ("scheduled", "", 0)


def test_teacher_moves_one_class_and_cancels_the_rest_of_the_series_students_see_why(app, lms):
    teacher = lms.launch("teacher")
    first = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2)
    add_class(teacher, first, weeks=4)
    ids = [r[0] for r in occasions(app, teacher.room_id)]
    moved_to = first + timedelta(days=1, hours=3)
    assert post(teacher, "move", occasion=str(ids[0]), start=moved_to.strftime(LOCAL), minutes="45",
                reason="Lab booked on Monday").status_code == 303
    assert post(teacher, "cancel", occasion=str(ids[2]), reason="Teacher at a conference",
                rest_of_series="on").status_code == 303
    rows = {r[0]: r for r in occasions(app, teacher.room_id)}
    assert rows[ids[0]][1:] == (moved_to, 45, "scheduled", "Lab booked on Monday", 1)
    assert rows[ids[1]][3] == "scheduled"
    assert [rows[i][3:5] for i in ids[2:]] == [("cancelled", "Teacher at a conference")] * 2

    student = lms.launch("student")
    page = student.page().get_data(as_text=True)
    assert 'id="waiting"' in page and 'id="join"' not in page
    next_class = page[page.index('id="next-class"'):page.index('id="coming-up"')]
    assert "2027" not in next_class and "starts in 3 days" in next_class  # the moved class comes first
    assert "Moved: Lab booked on Monday" in next_class
    assert page.count("Cancelled</strong>: Teacher at a conference") == 2
    teacher_page = teacher.page().get_data(as_text=True)
    assert teacher_page.count("Cancelled</strong>: Teacher at a conference") == 2
    assert "moved: Lab booked on Monday" in teacher_page


def test_student_inside_the_early_entry_window_gets_the_room_page_and_outside_the_waiting_page(app, lms):
    teacher = lms.launch("teacher")
    soon = datetime.now(UTC) + timedelta(minutes=5)
    add_class(teacher, soon)  # 4–5 minutes away: inside the default 10 minutes of early entry
    student = lms.launch("student")
    page = student.page().get_data(as_text=True)
    assert 'id="join"' in page and 'id="waiting"' not in page
    assert "starts in 4 minutes" in page or "starts in 5 minutes" in page

    assert post(teacher, "early", early_minutes="0").status_code == 303
    page = student.page().get_data(as_text=True)
    assert 'id="waiting"' in page and 'id="join"' not in page
    assert "you can enter from its start" in page


def test_student_before_the_window_waits_and_is_told_when_to_come(app, lms):
    teacher = lms.launch("teacher")
    later = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3, minutes=30)
    add_class(teacher, later)
    page = lms.launch("student").page().get_data(as_text=True)
    assert 'id="waiting"' in page and 'id="join"' not in page
    assert "starts in 3 hours" in page
    assert f"The class opens at <time datetime=\"{later:%Y-%m-%dT%H:%M:%SZ}\" data-local=\"time\">" in page
    enter = later - timedelta(minutes=10)
    assert f"you can enter from <time datetime=\"{enter:%Y-%m-%dT%H:%M:%SZ}\"" in page
    # The page fetches itself again when the entry window opens (static/timetable.js).
    assert f'data-refresh-at="{enter:%Y-%m-%dT%H:%M:%SZ}"' in page


def _room_list(page: str) -> dict[int, str]:
    """The rooms a course view or "My classes" lists: room id → the room ticket its link posts."""
    found = re.findall(r'<li class="room-item" data-room="(\d+)">.*?name="t" value="([^"]+)"', page, re.S)
    return {int(room): ticket for room, ticket in found}


def test_course_view_lists_only_the_rooms_the_teacher_launched_in_this_course(app, lms, platform):
    platform.add_resource_link("7", "Second class")
    platform.add_resource_link("8", "Colleague's class")
    platform.add_course("3", "OTHER", "Other course")
    platform.add_resource_link("9", "Other course's class", course_id="3")
    platform.add_user("teacher2", "30", ["Instructor"], "Tina", "Teacher", "teacher2@example.com")
    teacher = lms.launch("teacher")
    second = lms.launch("teacher", resource_link_id="7")
    colleagues = lms.launch("teacher2", resource_link_id="8")
    elsewhere = lms.launch("teacher", resource_link_id="9", context_id="3")
    student = lms.launch("student")
    add_class(second, datetime.now(UTC) + timedelta(days=2, minutes=1))

    page = teacher.client.get(f"/rooms/{teacher.room_id}/course", query_string={"t": teacher.page_ticket})
    assert page.status_code == 200
    listed = _room_list(page.get_data(as_text=True))
    assert set(listed) == {teacher.room_id, second.room_id}
    assert colleagues.room_id not in listed and elsewhere.room_id not in listed
    assert "starts in 2 days" in page.get_data(as_text=True)

    # A room's link opens that room, with the teacher's own enrolment there.
    opened = teacher.client.post(f"/rooms/{second.room_id}/open", data={"t": listed[second.room_id], "page": "room"})
    assert opened.status_code == 303 and f"/rooms/{second.room_id}?t=" in opened.headers["Location"]
    room_page = teacher.client.get(opened.headers["Location"]).get_data(as_text=True)
    assert "Second class" in room_page and "Start class" in room_page

    mine = teacher.client.get(f"/rooms/{teacher.room_id}/mine", query_string={"t": teacher.page_ticket})
    assert set(_room_list(mine.get_data(as_text=True))) == {teacher.room_id, second.room_id, elsewhere.room_id}
    theirs = student.client.get(f"/rooms/{student.room_id}/mine", query_string={"t": student.page_ticket})
    assert set(_room_list(theirs.get_data(as_text=True))) == {student.room_id}


def test_room_links_cannot_be_used_for_another_room(app, lms, platform):
    platform.add_resource_link("7", "Second class")
    teacher = lms.launch("teacher")
    second = lms.launch("teacher", resource_link_id="7")
    listed = _room_list(teacher.client.get(f"/rooms/{teacher.room_id}/mine",
                                           query_string={"t": teacher.page_ticket}).get_data(as_text=True))
    wrong_room = teacher.client.post(f"/rooms/{teacher.room_id}/open", data={"t": listed[second.room_id]})
    refused(wrong_room, 403)


def test_past_classes_show_how_many_came_and_each_student_their_own_attendance(live):
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    # Scheduled for 90 minutes: the hour that ran (from a few seconds after the scheduled start)
    # lies wholly inside, so the counted minutes do not depend on the second the test runs at.
    live.launch("teacher", custom={"schedule_start": start.isoformat(), "schedule_minutes": "90"})
    teacher, _ = hour_long_class(live)  # student: whole hour; student5: 45 minutes; student6 never came
    live.run_worker()  # the roster (NRPS) brings student6
    page = teacher.get().text
    past = page[page.index('id="past-classes"'):]
    assert "2 of 3 came" in past
    assert "Past classes and how many of the 3 students came" in past
    assert "<strong>present</strong>, 60 min" in live.launch("student").get().text
    # joined five minutes after the start: late, as the attendance page and the grade count it
    assert "<strong>late</strong>, 45 min" in live.launch("student5").get().text
    assert "<strong>absent</strong>" in live.launch("student6").get().text
