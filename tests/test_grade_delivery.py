"""Delivery guarantees of the score outbox, against the fake Moodle over real HTTP."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from lti_tool.extensions import db
from lti_tool.grades import delivery
from lti_tool.lti.platform_services import SCOPE_SCORE
from lti_tool.models import PlatformToken, ResourceLink, ScoreDelivery, utcnow
from lti_tool.worker import Worker, start_worker_thread
from tests.support import ClassRun, hour_long_class, scores_for

ROOT = Path(__file__).resolve().parent.parent


def deliveries(live, **where):
    with live.app.app_context():
        query = select(ScoreDelivery).filter_by(**where).order_by(ScoreDelivery.id)
        return [(d.sub, d.status, d.attempts, d.next_attempt_at, d.last_error) for d in db.session.scalars(query)]


def make_due(live) -> None:
    """Let the backoff pass, as time would."""
    with live.app.app_context():
        for delivery in db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.status == "pending")):
            delivery.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.session.commit()


def test_two_workers_at_once_never_send_the_same_score_twice(live):
    platform = live.platform
    hour_long_class(live)
    with live.app.app_context():  # the roster first, so every score is queued before the race
        from lti_tool.attendance.roster import courses_needing_roster, refresh_roster

        for course in courses_needing_roster():
            refresh_roster(course)
    workers = [Worker(live.app) for _ in range(3)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    live.run_worker()
    for sub in ("4", "5", "6"):
        assert len(scores_for(platform, sub)) == 1, sub


def test_retry_after_is_honoured(live):
    platform = live.platform
    hour_long_class(live)
    platform.fail_next(20, status=429, retry_after=120)
    live.run_worker(passes=2)
    rows = deliveries(live, status="pending")
    assert rows and all(next_at >= utcnow() + timedelta(seconds=110) for _, _, _, next_at, _ in rows)
    assert all("429" in error for *_, error in rows)


@pytest.mark.parametrize("live_overrides", [{"RETRY_BASE_SECONDS": "10"}])
def test_backoff_doubles_from_retry_base_seconds(live):
    platform = live.platform
    platform.down = True
    hour_long_class(live)
    waits = []
    for _ in range(4):
        started = utcnow()
        live.run_worker(passes=1)
        (_, _, attempts, next_at, _), *_ = deliveries(live, status="pending", sub="4")
        waits.append((attempts, (next_at - started).total_seconds()))
        make_due(live)
    assert [a for a, _ in waits] == [1, 2, 3, 4]
    for (_, wait), expected in zip(waits, (10, 20, 40, 80), strict=True):
        assert expected - 1 <= wait <= expected + 2, waits


def test_gives_up_after_the_last_retry_and_the_teacher_can_retry(live):
    from lti_tool.grades import delivery

    platform = live.platform
    platform.down = True
    teacher, _ = hour_long_class(live)
    for _ in range(delivery.MAX_ATTEMPTS + 1):
        live.run_worker(passes=1)
        make_due(live)
    failed = deliveries(live, status="failed")
    assert failed and all("gave up" in error for *_, error in failed)
    # the attempt that gave up is counted once, not twice
    assert {attempts for _, _, attempts, _, _ in failed} == {delivery.MAX_ATTEMPTS}
    assert all(f"gave up after {delivery.MAX_ATTEMPTS} attempts" in error for *_, error in failed)
    page = teacher.get("/attendance")
    assert "Failed" in page.text and "retry failed" in page.text
    platform.down = False
    assert teacher.post("/grades/send").status_code == 303
    live.run_worker()
    for sub in ("4", "5", "6"):
        assert len(scores_for(platform, sub)) == 1


def test_conflict_409_is_resolved_with_a_later_timestamp(live):
    platform = live.platform
    # The gradebook holds a score stamped 2 s in the future (another tool, a clock ahead).
    platform.line_items["2"].grades["4"] = {
        "grade": 10, "comment": "", "timestamp": "", "timemodified": int(time.time()) + 2,
        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
    }
    hour_long_class(live)
    deadline = time.monotonic() + 10
    while not scores_for(platform, "4") and time.monotonic() < deadline:
        live.run_worker(passes=1)
        make_due(live)
        time.sleep(0.2)
    assert len(scores_for(platform, "4")) == 1 and platform.gradebook["4"]["grade"] == 100.0


def test_timestamps_only_move_forward_for_a_person(live):
    platform = live.platform
    teacher, _ = hour_long_class(live)
    live.run_worker()
    teacher.post("/grading", present_threshold_percent="50", absent_gets_zero="on")
    live.run_worker()
    stamps = [s["timestamp"] for s in scores_for(platform, "5")]
    assert len(stamps) == 2 and stamps[0] < stamps[1]
    assert stamps[1][:19] > stamps[0][:19], "must be later at one-second resolution"


def test_line_item_is_created_when_the_launch_brings_none(live):
    platform = live.platform
    platform.add_resource_link("30", "Ungraded activity", graded=False)
    teacher = live.launch("teacher", resource_link_id="30")
    live.launch("student", resource_link_id="30")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("student", 0), run.left("student", 30), run.ended(60))
    live.run_worker()
    [score] = scores_for(platform, "4")
    item = platform.line_items[score["lineitem_id"]]
    assert item.resource_link_id == "30" and item.tag == "attendance"
    with live.app.app_context():
        link = db.session.scalar(select(ResourceLink).where(ResourceLink.resource_link_id == "30"))
        assert link.lineitem_url is None and link.tool_lineitem_url
    # A second class reuses the line item the tool made.
    items_before = len(platform.line_items)
    live.run_worker()
    assert len(platform.line_items) == items_before


def test_embedded_worker_thread_delivers_without_a_separate_worker(live):
    platform = live.platform
    stop = start_worker_thread(live.app)
    try:
        hour_long_class(live)
        deadline = time.monotonic() + 15
        while len({s["userId"] for s in platform.scores}) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
    assert {s["userId"] for s in platform.scores} == {"4", "5", "6"}


def worker_process(live, log_path, **settings) -> subprocess.Popen:
    """A real `flask --app wsgi worker` process on the live tool's database and platform."""
    config = live.app.config
    env = {
        **os.environ,
        "DATABASE_URL": config["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://"),
        "TOOL_BASE_URL": config["TOOL_BASE_URL"], "TOOL_CONFIG": config["TOOL_CONFIG"],
        "KEYS_DIR": config["KEYS_DIR"], "SECRET_KEY": config["SECRET_KEY"],
        "BBB_SERVER_URL": config["BBB_SERVER_URL"], "BBB_SHARED_SECRET": config["BBB_SHARED_SECRET"],
        "ATTENDANCE_POLL_SECONDS": "3600", **settings,
    }
    with open(log_path, "w") as worker_log:  # the worker keeps its own copy of the handle
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=worker_log)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def queue_every_score(live) -> None:
    """An hour-long class, and the roster, so that every score is queued before any worker runs."""
    from lti_tool.attendance.roster import courses_needing_roster, refresh_roster

    hour_long_class(live)
    with live.app.app_context():
        for course in courses_needing_roster():
            refresh_roster(course)


def test_two_worker_processes_deliver_each_score_once_with_one_token(live, tmp_path):
    """Two `flask worker` processes (separate database connections, separate in-process locks)
    race for the same queue and the same, not yet fetched, access token."""
    platform = live.platform
    queue_every_score(live)
    with live.app.app_context():  # no token stored yet: both workers need one at once
        db.session.execute(delete(PlatformToken))
        db.session.commit()
    tokens_before = len(platform.issued_tokens)
    workers = [worker_process(live, tmp_path / f"worker{n}.log", DELIVERY_BATCH_SIZE="1")
               for n in range(2)]
    try:
        deadline = time.monotonic() + 60
        while len({s["userId"] for s in platform.scores}) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a second delivery of any score would arrive now
    finally:
        for worker in workers:
            stop(worker)
    assert sorted(s["userId"] for s in platform.scores) == ["4", "5", "6"], [
        (tmp_path / f"worker{n}.log").read_text()[-2000:] for n in range(2)]
    score_tokens = [t for t in platform.issued_tokens[tokens_before:] if SCOPE_SCORE in t["scopes"]]
    assert len(score_tokens) == 1


def test_claims_never_overlap_and_leave_rows_another_worker_holds(live):
    queue_every_score(live)
    with live.app.app_context():
        first, lease_end = delivery.claim_batch(2)
        second, _ = delivery.claim_batch(2)
        third, _ = delivery.claim_batch(2)
        assert (len(first), len(second), third) == (2, 1, [])
        delivery.release(first, lease_end)  # given back (its lease about to run out)
        assert sorted(delivery.claim_batch(5)[0]) == sorted(first)


@pytest.mark.parametrize("live_overrides", [{"DELIVERY_LEASE_SECONDS": "4"}])
def test_worker_gives_back_rows_it_cannot_send_before_its_lease_ends(live):
    """A slow platform: the worker sends what it can while the lease lasts and gives the rest
    back instead of racing the worker that takes them over."""
    platform = live.platform
    queue_every_score(live)
    platform.score_delay_seconds = 1.6  # two fit before the lease's last quarter, the third not
    with live.app.app_context():
        ids, lease_end = delivery.claim_batch()
        delivery.deliver_claimed(ids, lease_end)  # one after the other; stops 1 s before the end
        rows = db.session.scalars(select(ScoreDelivery).order_by(ScoreDelivery.id)).all()
        sent = [d for d in rows if d.status == "delivered"]
        given_back = [d for d in rows if d.status == "pending"]
        assert sent and given_back and all(d.locked_until is None for d in given_back)
    platform.score_delay_seconds = 0
    live.run_worker()
    assert sorted(s["userId"] for s in platform.scores) == ["4", "5", "6"]


@pytest.mark.parametrize("live_overrides", [{"DELIVERY_LEASE_SECONDS": "2"}])
def test_worker_process_killed_mid_delivery_then_another_delivers(live, tmp_path):
    """A real `flask --app wsgi worker` process is killed (SIGKILL) while the gradebook is
    answering its score; once the lease runs out, another worker delivers everything."""
    platform = live.platform
    queue_every_score(live)
    platform.score_delay_seconds = 30
    worker = worker_process(live, tmp_path / "worker.log", DELIVERY_LEASE_SECONDS="2")
    try:
        deadline = time.monotonic() + 30
        while platform.score_requests_started == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert platform.score_requests_started == 1, (tmp_path / "worker.log").read_text()[-2000:]
    finally:
        stop(worker)
    platform.score_delay_seconds = 0
    with live.app.app_context():
        claimed = db.session.scalars(select(ScoreDelivery).where(ScoreDelivery.locked_until.is_not(None))).all()
        # The worker leased its whole batch (the three scores); the lease outlives it.
        assert len(claimed) == 3 and {d.status for d in claimed} == {"pending"}, "the killed claim stays"
    time.sleep(2.1)  # the lease runs out
    live.run_worker()
    assert {d[1] for d in deliveries(live)} == {"delivered"}
    book = platform.gradebook
    assert (book["4"]["grade"], book["5"]["grade"], book["6"]["grade"]) == (100.0, 75.0, 0.0)


def test_grading_turned_off_in_the_tool_drops_waiting_grades_and_turned_on_sends_them(live):
    platform = live.platform
    platform.down = True
    teacher, _ = hour_long_class(live)
    live.run_worker(passes=1)
    assert deliveries(live, status="pending")
    policy = {"present_threshold_percent": "0", "late_grace_minutes": "0", "absent_gets_zero": "on",
              "graded_shown": "1"}
    assert teacher.post("/grading", **policy).status_code == 303  # the box unticked: off
    assert deliveries(live, status="pending") == [] and deliveries(live, status="failed") == []
    page = teacher.get("/attendance").text
    assert "Grading is off" in page and 'id="send-grades"' not in page
    platform.down = False
    make_due(live)
    live.run_worker()
    assert platform.scores == []
    teacher.post("/grading", **policy, graded="on")
    live.run_worker()
    assert len(scores_for(platform, "4")) == 1 and len(scores_for(platform, "5")) == 1
