"""When students may enter a scheduled class on their own (issue 10): from the room's early-entry
minutes before the start to its end, even while the room waits for a teacher otherwise; never
again once the teacher has ended that class; the teacher may start at any time."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lti_tool.extensions import db
from lti_tool.models import Room
from lti_tool.schedule import service as schedule


def _schedule(lms, starts_in: timedelta, minutes: int = 60):
    start = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    return lms.launch("teacher", custom={"schedule_start": start.isoformat(), "schedule_minutes": str(minutes)})


def test_students_enter_a_scheduled_class_from_the_early_minutes_without_a_teacher(lms, app, bbb):
    teacher = _schedule(lms, timedelta(minutes=5))
    student = lms.launch("student")
    page = student.page().get_data(as_text=True)
    assert 'id="join"' in page
    answer = student.join()
    assert answer.status_code == 302 and "role=VIEWER" in answer.headers["Location"]
    assert len(bbb.meetings) == 1  # the student's entry opened the meeting
    del teacher


def test_before_the_early_minutes_students_wait(lms, app):
    _schedule(lms, timedelta(minutes=30))
    student = lms.launch("student")
    assert 'id="join"' not in student.page().get_data(as_text=True)
    assert student.status().get_json()["open"] is False
    assert student.join().status_code == 303  # back to the waiting page, no meeting


def test_the_early_minutes_are_the_rooms_own(lms, app):
    teacher = _schedule(lms, timedelta(minutes=30))
    with app.app_context():
        schedule.set_early_join(db.session.get(Room, teacher.room_id), 45)
    assert 'id="join"' in lms.launch("student").page().get_data(as_text=True)


def test_a_class_the_teacher_ended_is_not_reopened_by_a_stale_join(lms, app, bbb):
    teacher = _schedule(lms, timedelta(minutes=-10))
    student = lms.launch("student")
    assert student.join().status_code == 302
    assert teacher.join().status_code == 302
    assert teacher.end().status_code == 303
    assert bbb.meetings == {}  # ended at the server
    answer = student.join()  # the button of a page left open
    assert answer.status_code == 303 and "/rooms/" in answer.headers["Location"]
    assert bbb.meetings == {}  # nothing created again
    assert 'id="join"' not in student.page().get_data(as_text=True)


def test_the_teacher_starts_an_unscheduled_class_at_any_time(lms, app, bbb):
    teacher = _schedule(lms, timedelta(days=3))
    answer = teacher.join()
    assert answer.status_code == 302 and "role=MODERATOR" in answer.headers["Location"]


def test_a_cancelled_class_closes_for_entry_at_once(lms, app):
    teacher = _schedule(lms, timedelta(minutes=5))
    student = lms.launch("student")
    assert student.status().get_json()["open"] is True  # the window is open (and now remembered)
    with app.app_context():
        room = db.session.get(Room, teacher.room_id)
        schedule.cancel_occasion(room, schedule.occasions_of(room)[0].id, "Teacher ill")
    assert student.status().get_json()["open"] is False
    assert 'id="join"' not in student.page().get_data(as_text=True)


def test_students_entering_an_open_scheduled_class_do_not_create_it_again(lms, app, bbb):
    _schedule(lms, timedelta(minutes=3))
    first, second, third = (lms.launch(name) for name in ("student", "student5", "student6"))
    assert first.join().status_code == 302
    assert bbb.count("create") == 1
    assert second.join().status_code == 302 and third.join().status_code == 302
    assert bbb.count("create") == 1  # they joined the class the first one opened
