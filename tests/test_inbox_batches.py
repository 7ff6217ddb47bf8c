"""The inbox applied in batches (lti_tool/attendance/service.py): events sent one by one over HTTP
and the same events applied together by the worker give the same intervals; a request that finds
events waiting only stores its own, and the worker applies them; two workers claiming at once
(PostgreSQL, FOR UPDATE SKIP LOCKED) never get the same event; `webhooks replay` in batches.
Real HTTP with the fake BigBlueButton; the suite runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select, update

from lti_tool.attendance.service import apply_rows, claim_pending, store_events
from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ClassSession, ProviderEvent
from lti_tool.providers.bbb.callbacks import parse_webhook
from lti_tool.worker import Worker
from tests.support import ClassRun, post_bbb_events

GUESTS = [f"guest-{n}" for n in range(6)]


@pytest.fixture
def run(live):
    return ClassRun(live, live.launch("teacher"))


def joined(run: ClassRun, who: str, minutes: float) -> dict:
    return run.bbb.event_user_joined(run.meeting_id, who, who, "VIEWER", run.at(minutes), run.internal_id)


def left(run: ClassRun, who: str, minutes: float) -> dict:
    return run.bbb.event_user_left(run.meeting_id, who, run.at(minutes), run.internal_id)


def a_class(run: ClassRun) -> list[dict]:
    """Six guests in and out (overlaps, a reconnect at the same minute, one never leaving), the
    start and the end: what a batch must rebuild exactly as event-by-event application does."""
    events = [run.created(), run.ended(90)]
    for n, who in enumerate(GUESTS):
        events += [joined(run, who, n), left(run, who, 20 + n), joined(run, who, 20 + n), left(run, who, 50)]
        if n % 2:
            events += [joined(run, who, 60 + n)]  # still inside at the end
    return events


def intervals(live) -> list[tuple]:
    with live.app.app_context():
        rows = db.session.execute(select(AttendanceInterval.external_user_id, AttendanceInterval.joined_at,
                                         AttendanceInterval.left_at)
                                  .order_by(AttendanceInterval.external_user_id, AttendanceInterval.joined_at))
        return [tuple(row) for row in rows]


def statuses(live) -> dict[str, int]:
    """The states of the webhook events (the worker's polling adds events of its own)."""
    with live.app.app_context():
        found: dict[str, int] = {}
        for status in db.session.scalars(select(ProviderEvent.status).where(ProviderEvent.source == "webhook")):
            found[status] = found.get(status, 0) + 1
        return found


def test_a_batch_gives_the_intervals_that_events_one_by_one_give(live, run):
    events = a_class(run)
    random.Random(7).shuffle(events)
    for event in events:
        run.send(event)
    one_by_one = intervals(live)
    assert len({row[0] for row in one_by_one}) == len(GUESTS)
    with live.app.app_context():  # forget what was applied; the worker applies it all, one batch
        db.session.execute(AttendanceInterval.__table__.delete())
        db.session.execute(update(ProviderEvent).values(status="pending", applied_at=None, session_id=None))
        db.session.execute(update(ClassSession).values(started_at=None, ended_at=None, ended_by=None))
        db.session.commit()
    live.run_worker()
    assert statuses(live) == {"applied": len(events)}
    assert intervals(live) == one_by_one


def test_one_delivery_of_every_event_gives_the_same_intervals_as_one_by_one(live, run):
    events = a_class(run)
    run.send(*events)
    together = intervals(live)
    with live.app.app_context():
        db.session.execute(AttendanceInterval.__table__.delete())
        db.session.execute(ProviderEvent.__table__.delete())
        db.session.execute(update(ClassSession).values(started_at=None, ended_at=None, ended_by=None))
        db.session.commit()
    for event in reversed(events):
        run.send(event)
    assert intervals(live) == together


def test_a_request_that_finds_events_waiting_only_stores_its_own_and_the_worker_applies_both(live, run):
    with live.app.app_context():  # stored by a request that died before applying it
        store_events(parse_webhook_body(joined(run, "guest-1", 0)))
    answer = post_bbb_events(live, [joined(run, "guest-2", 1)])
    assert answer.status_code == 200 and answer.json()["new"] == 1
    assert statuses(live) == {"pending": 2}
    live.run_worker()
    assert statuses(live) == {"applied": 2}
    assert [row[0] for row in intervals(live)] == ["guest-1", "guest-2"]


def test_a_duplicate_delivery_stores_and_applies_nothing_twice(live, run):
    events = [joined(run, "guest-1", 0), left(run, "guest-1", 30)]
    first, again = post_bbb_events(live, events), post_bbb_events(live, events + events)
    assert first.json() == {"received": 2, "new": 2, "refused": 0}
    assert again.json() == {"received": 4, "new": 0, "refused": 0}
    assert statuses(live) == {"applied": 2}
    assert len(intervals(live)) == 1


def parse_webhook_body(event: dict):
    from urllib.parse import urlencode

    return parse_webhook(urlencode({"event": __import__("json").dumps([event])}).encode())


def test_two_workers_claiming_at_once_never_get_the_same_event(live, run, database_url):
    if not database_url.startswith("postgres"):
        pytest.skip("row locks skipped by other claims: PostgreSQL (SQLite has one writer at a time)")
    with live.app.app_context():
        store_events([e for n in range(25) for e in parse_webhook_body(joined(run, f"guest-{n}", n))]
                     + [e for n in range(25) for e in parse_webhook_body(left(run, f"guest-{n}", 40 + n))])
    claimed: dict[str, list[int]] = {}
    first_holds, second_done = threading.Event(), threading.Event()

    def worker(name: str, limit: int, before=None, after=None):
        with live.app.app_context():
            if before:
                before.wait(10)
            rows = claim_pending(limit)
            claimed[name] = [row.id for row in rows]
            if after:
                after.set()
                # Hold the claim until the other worker has claimed and applied: it must not wait.
                claimed["second finished meanwhile"] = [second_done.wait(10)]
            apply_rows(rows)
            db.session.remove()
        if name == "second":
            second_done.set()

    threads = [threading.Thread(target=worker, args=("first", 30, None, first_holds)),
               threading.Thread(target=worker, args=("second", 100, first_holds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert claimed["second finished meanwhile"] == [True]
    assert len(claimed["first"]) == 30 and len(claimed["second"]) == 20
    assert not set(claimed["first"]) & set(claimed["second"])
    assert statuses(live) == {"applied": 50}
    assert len(intervals(live)) == 25


def test_replay_applies_in_batches_and_leaves_unknown_meetings_waiting(live, run):
    events = [e for n in range(5) for e in (joined(run, f"guest-{n}", n), left(run, f"guest-{n}", 30))]
    stranger = run.bbb.event_user_joined("not-ours", "guest-9", "Nine", "VIEWER", run.at(1), "abc-123")
    run.send(*events, stranger)
    before = intervals(live)
    with live.app.app_context():
        db.session.execute(AttendanceInterval.__table__.delete())
        db.session.execute(update(ProviderEvent).where(ProviderEvent.meeting_id == run.meeting_id)
                           .values(status="failed", applied_at=None))
        db.session.commit()
    result = live.app.test_cli_runner().invoke(args=["webhooks", "replay", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "replayed 11 event(s): 10 applied, 1 unknown_meeting" in result.output
    assert intervals(live) == before


def test_replay_refuses_a_batch_size_of_zero(live):
    result = live.app.test_cli_runner().invoke(args=["webhooks", "replay", "--batch-size", "0"])
    assert result.exit_code == 2 and "batch-size" in result.output


def test_the_worker_applies_what_waits_even_between_its_passes(live, run):
    with live.app.app_context():
        store_events(parse_webhook_body(joined(run, "guest-3", 2)))
    stop = threading.Event()
    inbox = threading.Thread(target=Worker(live.app).apply_inbox_forever, args=(stop,))
    inbox.start()
    try:
        for _ in range(100):
            if statuses(live) == {"applied": 1}:
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        inbox.join(10)
    assert statuses(live) == {"applied": 1}
