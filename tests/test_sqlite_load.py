"""A class's load on the embedded SQLite database: many webhooks and launches at once.

Observed before: under a class's concurrent webhooks and launches, /webhooks/bbb answered 500
("database is locked") now and then; BBB's retry is a duplicate, so those events waited as
pending. Now SQLite runs in WAL mode with a busy timeout and takes the write lock up front
(BEGIN IMMEDIATE) for every write transaction: never a 500, every event applied at once. The
same test runs on PostgreSQL (the suite runs on both); the SQLite settings' own checks skip there.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select, text, update

from lti_tool.attendance.service import store_events
from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ProviderEvent, utcnow
from lti_tool.providers.bbb.callbacks import parse_webhook
from lti_tool.worker import Worker
from tests.conftest import BBB_SECRET
from tests.support import ClassRun

SENDERS = 12  # threads sending webhooks, as bbb-webhooks does for a busy class
PEOPLE_PER_SENDER = 6  # each person: a join, then a leave, in separate deliveries
LAUNCHERS = 3  # threads launching the activity meanwhile
LAUNCHES_PER_LAUNCHER = 3


def deliver(session: requests.Session, hook: str, events: list[dict]) -> int:
    body = urlencode({"domain": "bbb.example.com", "event": json.dumps(events), "timestamp": "1"}).encode()
    checksum = hashlib.sha1(hook.encode() + body + BBB_SECRET.encode()).hexdigest()
    return session.post(f"{hook}?checksum={checksum}", data=body, timeout=60,
                        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}).status_code


def test_a_class_of_concurrent_webhooks_and_launches_never_gets_a_500_and_every_event_is_applied(live):
    run = ClassRun(live, live.launch("teacher"))
    assert deliver(requests.Session(), run.hook, [run.created()]) == 200
    start = threading.Barrier(SENDERS + LAUNCHERS)

    def send(sender: int) -> list[int]:
        session, statuses = requests.Session(), []
        start.wait()
        for person in range(PEOPLE_PER_SENDER):
            user, minute = f"guest-{sender}-{person}", person
            joined = run.bbb.event_user_joined(run.meeting_id, user, user, "VIEWER", run.at(minute), run.internal_id)
            left = run.bbb.event_user_left(run.meeting_id, user, run.at(minute + 30), run.internal_id)
            statuses += [deliver(session, run.hook, [joined]), deliver(session, run.hook, [left])]
        return statuses

    def launch(_: int) -> list[int]:
        start.wait()
        codes = []
        for who in ["student", "student5", "student6"][:LAUNCHES_PER_LAUNCHER]:
            try:
                person = live.launch(who)
                codes.append(person.get("/status").status_code)
            except AssertionError:  # live.launch asserts the 303; count the failure instead
                codes.append(500)
        return codes

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SENDERS + LAUNCHERS) as pool:
        senders = [pool.submit(send, n) for n in range(SENDERS)]
        launchers = [pool.submit(launch, n) for n in range(LAUNCHERS)]
        webhook_codes = Counter(code for f in senders for code in f.result())
        launch_codes = Counter(code for f in launchers for code in f.result())
    seconds = time.monotonic() - started
    print(f"\n{sum(webhook_codes.values())} webhooks {dict(webhook_codes)}, "
          f"{sum(launch_codes.values())} launches {dict(launch_codes)}, {seconds:.1f} s")

    assert webhook_codes == Counter({200: SENDERS * PEOPLE_PER_SENDER * 2})
    assert launch_codes == Counter({200: LAUNCHERS * LAUNCHES_PER_LAUNCHER})
    # Under contention a request only stores its events and the worker applies them
    # (docs/attendance-and-grades.md, "How ingestion scales"): one pass of it, as deployed.
    Worker(live.app).run_once()
    with live.app.app_context():
        statuses = Counter(db.session.scalars(select(ProviderEvent.status)))
        assert statuses == Counter({"applied": 1 + SENDERS * PEOPLE_PER_SENDER * 2}), "every event applied"
        intervals = db.session.scalars(select(AttendanceInterval)).all()
        assert len(intervals) == SENDERS * PEOPLE_PER_SENDER
        assert {(i.left_at - i.joined_at) for i in intervals} == {timedelta(minutes=30)}


def test_an_event_a_killed_request_left_pending_is_applied_by_the_next_worker_pass(live):
    """A request stored the event (committed) and died before applying it."""
    run = ClassRun(live, live.launch("teacher"))
    live.launch("student")
    body = urlencode({"event": json.dumps([run.created(), run.joined("student", 0)])}).encode()
    with live.app.app_context():
        receipt = store_events(parse_webhook(body))  # stored, as the dead request left it
        ids = [row.id for row in receipt.new]
        assert [row.status for row in receipt.new] == ["pending", "pending"]
        db.session.execute(update(ProviderEvent).values(received_at=utcnow() - timedelta(seconds=11)))
        db.session.commit()
    Worker(live.app).run_once()
    with live.app.app_context():
        assert [db.session.get(ProviderEvent, i).status for i in ids] == ["applied", "applied"]
        assert db.session.scalars(select(AttendanceInterval.external_user_id)).all() == [live.public_id("student")]


def test_the_redelivery_of_an_event_a_failed_request_left_pending_applies_it_at_once(live):
    """bbb-webhooks retries what got no 2xx: the retry is a duplicate, and applies the original."""
    run = ClassRun(live, live.launch("teacher"))
    live.launch("student")
    events = [run.created(), run.joined("student", 0)]
    body = urlencode({"event": json.dumps(events)}).encode()
    with live.app.app_context():
        store_events(parse_webhook(body))
    answer = run.send(*events)
    assert answer.json() == {"received": 2, "new": 0, "refused": 0}
    with live.app.app_context():
        assert Counter(db.session.scalars(select(ProviderEvent.status))) == Counter({"applied": 2})


# -- the SQLite settings themselves ----------------------------------------------------------------------


@pytest.fixture
def sqlite_app(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite's own settings")
    return app


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_app):
    with sqlite_app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_sqlite_takes_the_write_lock_at_the_first_write_and_reads_take_none(sqlite_app):
    """Reads before a transaction's first write hold no lock (so a read-then-write never fails
    on a stale snapshot); the first write takes the write lock up front (BEGIN IMMEDIATE) and
    other connections still read meanwhile (WAL)."""
    with sqlite_app.app_context(), db.engine.connect() as reader, db.engine.connect() as writer:
        writer.execute(select(func.count(ProviderEvent.id))).scalar()
        assert not writer.connection.dbapi_connection.in_transaction, "a read holds nothing"
        writer.execute(ProviderEvent.__table__.delete().where(ProviderEvent.id == -1))
        assert writer.connection.dbapi_connection.in_transaction
        assert reader.execute(select(func.count(ProviderEvent.id))).scalar() == 0
        assert not reader.connection.dbapi_connection.in_transaction
        writer.rollback()
