"""A whole class, simulated over real HTTP: the fake BBB sends webhooks and callbacks with past
timestamps (an hour-long class runs in seconds), the worker delivers scores to the fake Moodle.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ProviderEvent, ScoreDelivery
from tests.support import MINUTE, ClassRun, hour_long_class, scores_for


def test_simulated_class_ends_with_every_students_score_at_the_platform_once(live):
    platform = live.platform
    hour_long_class(live)
    live.run_worker()
    book = platform.gradebook
    assert scores_for(platform, "4")[0]["scoreGiven"] == 100.0
    assert scores_for(platform, "5")[0]["scoreGiven"] == 75.0  # 15 + 30 of 60 minutes
    assert scores_for(platform, "6")[0]["scoreGiven"] == 0.0  # on the roster, never came
    assert scores_for(platform, "3") == []  # the teacher is not graded
    for sub in ("4", "5", "6"):
        assert len(scores_for(platform, sub)) == 1, f"user {sub} scored more than once"
        score = scores_for(platform, sub)[0]
        assert score["gradingProgress"] == "FullyGraded" and score["activityProgress"] == "Completed"
        assert score["scoreMaximum"] == 100.0 and "." in score["timestamp"]
    assert scores_for(platform, "5")[0]["comment"] == "Attended 45 of 60 minutes"
    assert book["5"]["comment"] == "Attended 45 of 60 minutes"
    assert platform.token_requests <= 2  # AGS scope set + NRPS scope set, each fetched once


def test_duplicate_and_reordered_events_give_the_same_intervals(live):
    teacher = live.launch("teacher")
    live.launch("student5")
    run = ClassRun(live, teacher)
    events = [run.created(), run.joined("student5", 5), run.left("student5", 20), run.joined("student5", 30),
              run.left("student5", 60), run.ended(60)]
    for event in reversed(events):  # newest first
        run.send(event)
    for event in events:  # and everything again
        run.send(event)
    with live.app.app_context():
        rows = db.session.scalars(
            select(AttendanceInterval).where(AttendanceInterval.external_user_id == live.public_id("student5"))
            .order_by(AttendanceInterval.joined_at)
        ).all()
        spans = [
            ((r.joined_at.timestamp() * 1000 - run.t0) / MINUTE, (r.left_at.timestamp() * 1000 - run.t0) / MINUTE)
            for r in rows
        ]
        assert spans == [(5, 20), (30, 60)]
        assert db.session.scalar(select(func.count(ProviderEvent.id))) == len(events)


def test_overlapping_connections_are_merged(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    uid = live.public_id("student")
    tab_a = run.bbb.event_user_joined(run.meeting_id, uid, "S", "VIEWER", run.at(0), run.internal_id)
    tab_b = run.bbb.event_user_joined(run.meeting_id, uid, "S", "VIEWER", run.at(10), run.internal_id)
    tab_b["data"]["attributes"]["user"]["internal-user-id"] = "w_second_tab"
    leave_a = run.left("student", 30)
    leave_b = run.bbb.event_user_left(run.meeting_id, uid, run.at(40), run.internal_id)
    leave_b["data"]["attributes"]["user"]["internal-user-id"] = "w_second_tab"
    run.send(run.created(), tab_a, tab_b, leave_a, leave_b, run.ended(60))
    live.run_worker()
    assert scores_for(live.platform, "4")[0]["comment"] == "Attended 40 of 60 minutes"


def test_platform_down_for_a_while_then_back_delivers_everything_once(live):
    platform = live.platform
    platform.down = True
    hour_long_class(live)
    live.run_worker(passes=3)
    assert platform.scores == []
    with live.app.app_context():
        pending = db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.status == "pending")).all()
        assert pending and all(d.attempts >= 1 and d.last_error for d in pending)
        # Time passes: the backoff is over.
        for delivery in pending:
            delivery.next_attempt_at = delivery.created_at
        db.session.commit()
    platform.down = False
    live.run_worker()
    for sub in ("4", "5", "6"):
        assert len(scores_for(platform, sub)) == 1


def test_worker_killed_mid_delivery_loses_nothing(live):
    from lti_tool.attendance.roster import courses_needing_roster, refresh_roster
    from lti_tool.grades.delivery import claim, due_deliveries

    platform = live.platform
    hour_long_class(live)
    with live.app.app_context():
        for course in courses_needing_roster():
            refresh_roster(course)  # every score is queued now
        assert len(due_deliveries()) == 3
        for delivery_id in due_deliveries():
            assert claim(delivery_id)  # a worker took them… and was killed before sending
    live.run_worker(passes=2)
    assert platform.scores == [], "leased rows must not be sent twice at once"
    with live.app.app_context():
        for delivery in db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.status == "pending")):
            delivery.locked_until = delivery.created_at  # the lease ran out
        db.session.commit()
    live.run_worker()
    for sub in ("4", "5", "6"):
        assert len(scores_for(platform, sub)) == 1


def test_user_the_platform_cannot_grade_fails_without_retries(live):
    platform = live.platform
    platform.add_user("guest", "77", ["Learner"], "Gus", "Guest", "g@example.com", enrolled=False)
    teacher = live.launch("teacher")
    live.launch("guest")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("guest", 0), run.left("guest", 30), run.ended(60))
    live.run_worker()
    with live.app.app_context():
        failed = db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.sub == "77")).all()
        assert [d.status for d in failed] == ["failed"] and failed[0].attempts == 1
        assert "400" in failed[0].last_error


def test_teacher_sees_attendance_and_can_send_grades_again(live):
    teacher, run = hour_long_class(live)
    live.run_worker()
    page = teacher.get("/attendance")
    assert page.status_code == 200
    assert "Sam Student" in page.text and "75%" in page.text and "Sent" in page.text
    csv = teacher.post("/attendance.csv")
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "joined" in csv.text.splitlines()[0] and len(csv.text.splitlines()) >= 5
    assert teacher.post("/grades/send").status_code == 303


def test_student_sees_only_their_own_attendance(live):
    teacher, run = hour_long_class(live)
    student = live.launch("student5")
    live.run_worker()
    page = student.get("/attendance")
    assert page.status_code == 200 and "75%" in page.text
    assert "Sam Student" not in page.text
    assert student.post("/attendance.csv").status_code == 403
    assert student.post("/grades/send").status_code == 403


def test_grading_policy_threshold_and_absentees(live):
    teacher, run = hour_long_class(live)
    live.run_worker()
    response = teacher.post("/grading", present_threshold_percent="70", late_grace_minutes="0")  # absentees: no grade
    assert response.status_code == 303
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0, 100.0]
    assert len(scores_for(live.platform, "6")) == 1  # no new score for the absentee
    assert teacher.post("/grading", present_threshold_percent="300").status_code == 400


# The 3.0-3.3 checksum is accepted only when switched on: tests/test_webhook_legacy_checksum.py.
@pytest.mark.parametrize(
    "variant, algorithm", [("v3.4", "sha256"), ("v3.4", "sha512"), ("v2", "sha1"), ("bearer", "sha1")]
)
def test_every_bbb_webhook_variant_that_binds_the_body_is_accepted(live, variant, algorithm):
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    run.send(run.created(), variant=variant, algorithm=algorithm)


def test_forged_webhook_is_refused_and_stores_nothing(live):
    import requests

    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    body = "domain=x&event=%5B%5D&timestamp=1"
    for url in (run.hook, run.hook + "?checksum=" + "0" * 40):
        assert requests.post(url, data=body, timeout=5).status_code == 401
    response = requests.post(run.hook, data=body, headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert response.status_code == 401 and response.json()["error"]
    with live.app.app_context():
        assert db.session.scalar(select(func.count(ProviderEvent.id))) == 0


def test_analytics_callback_alone_gives_attendance(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    attendees = [{"user_id": live.public_id("student"), "name": "Sam", "moderator": False,
                  "joins": [run.at(10)], "leaves": [run.at(40)], "talk_time": 0}]
    response = run.bbb.send_analytics(None, run.meeting_id, attendees, run.at(0), run.at(60),
                                      internal_meeting_id=run.internal_id)
    assert response.status_code == 200, response.text
    live.run_worker()
    assert scores_for(live.platform, "4")[0]["comment"] == "Attended 30 of 60 minutes"


def test_events_for_an_unknown_meeting_are_kept_and_replayable(live):
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)
    stranger = run.bbb.event_meeting_created("not-ours", run.t0, "abc-123")
    run.send(stranger)
    with live.app.app_context():
        row = db.session.scalar(select(ProviderEvent).where(ProviderEvent.meeting_id == "not-ours"))
        assert row.status == "unknown_meeting"
    result = live.app.test_cli_runner().invoke(args=["webhooks", "replay"])
    assert result.exit_code == 0 and "replayed 1 event(s): 1 unknown_meeting" in result.output


def test_polling_notices_someone_the_webhooks_missed(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    run.bbb.enter(run.meeting_id, live.public_id("student"), "Sam Student")
    from lti_tool.attendance.polling import poll_running_rooms

    with live.app.app_context():
        poll_running_rooms()
        open_rows = db.session.scalars(select(AttendanceInterval).where(AttendanceInterval.left_at.is_(None))).all()
        assert [r.external_user_id for r in open_rows] == [live.public_id("student")]
    run.bbb.leave(run.meeting_id, live.public_id("student"))
    with live.app.app_context():
        poll_running_rooms()
        open_intervals = select(func.count(AttendanceInterval.id)).where(AttendanceInterval.left_at.is_(None))
        assert db.session.scalar(open_intervals) == 0


def test_end_callback_closes_the_session_when_webhooks_are_missing(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    run.send(run.joined("student", 0))
    run.bbb.expire(run.meeting_id)
    assert run.bbb.call_end_callback(run.meeting_id).json() == {"ended": True}
    live.run_worker()
    assert len(scores_for(live.platform, "4")) == 1
