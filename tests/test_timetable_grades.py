"""Grades count occasions, not meetings (issue 10): a weekly series of three from the link's
custom parameters, one occasion moved and one cancelled, classes run on two occasions with a
late join, an early leave and an absent student; the grade and the teacher's page follow the
policy, occasion by occasion."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ClassSession, Occasion, Room
from lti_tool.schedule import service as schedule
from tests.support import ClassRun, scores_for

HOUR_MS = 3_600_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _occasions(live, room_id: int) -> list[Occasion]:
    with live.app.app_context():
        rows = db.session.scalars(select(Occasion).where(Occasion.room_id == room_id).order_by(Occasion.id)).all()
        db.session.expunge_all()
        return rows


def _with_room(live, room_id: int, change):
    with live.app.app_context():
        return change(db.session.get(Room, room_id))


@pytest.fixture
def term(live):
    """The series (start: this minute), occasion 2 cancelled, occasion 3 moved to three hours
    from the start; the first class run now, the second at the moved occasion's time."""
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    teacher = live.launch("teacher", custom={
        "schedule_start": start.isoformat(timespec="minutes"), "schedule_minutes": "60", "schedule_weeks": "3"})
    live.launch("student")
    live.launch("student5")  # student6 never launches: only the roster knows them
    first, second, third = _occasions(live, teacher.room_id)
    assert [o.starts_at for o in (first, second, third)] == [start + timedelta(weeks=w) for w in range(3)]
    assert {o.minutes for o in (first, second, third)} == {60} and len({o.uid for o in (first, second, third)}) == 3
    _with_room(live, teacher.room_id, lambda room: schedule.cancel_occasion(room, second.id, "Public holiday"))
    moved_to = start + timedelta(hours=3)
    _with_room(live, teacher.room_id,
               lambda room: schedule.move_occasion(room, third.id, moved_to, 60, "Swapped with the lab"))
    assert teacher.post("/grading", late_grace_minutes="5", absent_gets_zero="on").status_code == 303

    # Class 1 at the first occasion: the teacher ends it after 50 minutes; student5 is 12 minutes late.
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.joined("student", 0))
    run.send(run.joined("student5", 12))
    run.send(run.left("student5", 50), run.left("student", 50), run.left("teacher", 50), run.ended(50))
    assert teacher.post("/end").status_code == 303
    # Class 2 at the moved occasion (the fake server's clock set three hours on): student5 leaves halfway.
    live.bbb._last_create_time = _ms(moved_to) - 1
    run = ClassRun(live, teacher)
    assert run.t0 == _ms(moved_to)
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.joined("student", 0), run.joined("student5", 0))
    run.send(run.left("student5", 30), run.left("student", 60), run.left("teacher", 60), run.ended(60))
    assert teacher.post("/end").status_code == 303
    live.run_worker()
    return teacher, start, (first, second, third)


def _grade(live, user: str) -> float:
    scores = scores_for(live.platform, live.platform.user(user).sub)
    assert scores, f"no score reached the gradebook for {user}"
    return scores[-1]["scoreGiven"]


def test_runs_are_matched_to_their_occasions(live, term):
    teacher, _, (first, second, third) = term
    with live.app.app_context():
        table = schedule.room_timetable(db.session.get(Room, teacher.room_id))
        by_occasion = {line.slot.key: len(line.runs) for line in table.timelines if line.slot}
        assert by_occasion == {first.id: 1, second.id: 0, third.id: 1}
        assert [line for line in table.timelines if line.slot is None] == []  # no unscheduled class
        assert db.session.query(ClassSession).filter_by(room_id=teacher.room_id).count() == 2


def test_grades_count_occasions_and_never_the_cancelled_one(live, term):
    # Occasion 1: 50 minutes ran. student present throughout (100%); student5 38 of 50 (76%).
    # Occasion 3: student 100%; student5 30 of 60 (50%). Occasion 2 (cancelled) does not count.
    assert _grade(live, "student") == 100
    assert _grade(live, "student5") == pytest.approx(63.0)
    assert _grade(live, "student6") == 0  # absent from both: 0 by the policy
    comment = scores_for(live.platform, live.platform.user("student5").sub)[-1]["comment"]
    assert "over 2 classes" in comment


def test_teacher_page_shows_each_occasion_present_late_left_early_absent(live, term):
    teacher, _, _ = term
    page = teacher.get("/attendance").text
    assert page.count("2</strong> of 3 students came") == 2
    sections = page.split('<section class="card occasion')[1:]
    # Newest first; the cancelled occasion is a week ahead, so not on this page of what happened.
    assert [section.split('"', 1)[0].strip() for section in sections] == ["occasion-ended", "occasion-ended"]
    newest, oldest = sections
    assert "Scheduled for 60 minutes" in newest and "Scheduled for 60 minutes" in oldest

    def status_of(section: str, name: str) -> str:
        row = section.split(name, 1)[1].split("</tr>", 1)[0]
        cell = row.split("<td>", 1)[1].split("</td>", 1)[0]
        return cell.split("<br>", 1)[0].strip()  # the participation line follows the status

    assert [status_of(oldest, n) for n in ("Sam Student", "Sally Student", "Steve Student")] == [
        "present", "late", "absent"]
    assert [status_of(newest, n) for n in ("Sam Student", "Sally Student", "Steve Student")] == [
        "present", "left early", "absent"]


def test_a_scheduled_class_that_did_not_take_place_counts_only_when_the_policy_says(live, term):
    teacher, start, _ = term
    yesterday = start - timedelta(days=1)
    _with_room(live, teacher.room_id, lambda room: schedule.add_series(room, yesterday, 60, 1))
    assert teacher.post("/grading", late_grace_minutes="5", absent_gets_zero="on").status_code == 303
    live.run_worker()
    assert _grade(live, "student5") == pytest.approx(63.0)  # not counted by default
    assert "Did not take place" in teacher.get("/attendance").text
    assert teacher.post("/grading", late_grace_minutes="5", absent_gets_zero="on",
                        unheld_counts_as_attended="on").status_code == 303
    live.run_worker()
    assert _grade(live, "student5") == pytest.approx((76 + 50 + 100) / 3, abs=0.01)
    assert _grade(live, "student6") == pytest.approx(100 / 3, abs=0.01)


def test_a_student_sees_their_own_status_per_occasion(live, term):
    student5 = live.launch("student5")
    page = student5.get("/attendance").text
    assert "late" in page and "left early" in page
    assert "Sam Student" not in page  # nobody else's row
