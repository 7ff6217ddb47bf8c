"""BBB's end-of-meeting callback (GET /webhooks/bbb/end, signed by the tool, not by BBB).

Observed before: each signed call added an inbox row and made an unthrottled getMeetingInfo
call, so anyone holding the URL (it is in the meeting's metadata) could hammer both. Now: at
most one server call per room per ROOM_STATE_CHECK_SECONDS, at most one stored end per run of
the meeting, and a genuine end that arrives inside the window is confirmed by the worker once
the window has passed — not lost. Over real HTTP; the fake BBB records every API call.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ClassSession, ProviderEvent, Room
from lti_tool.worker import Worker
from tests.support import ClassRun

CALLS = 20


def end_rows(live) -> list[ProviderEvent]:
    with live.app.app_context():
        rows = db.session.scalars(select(ProviderEvent).where(ProviderEvent.source == "end_callback")).all()
        db.session.expunge_all()
        return rows


def session_of(live, run) -> ClassSession | None:
    with live.app.app_context():
        session = db.session.scalar(select(ClassSession).where(ClassSession.run_id == run.internal_id))
        db.session.expunge_all()
        return session


@pytest.fixture
def run(live):
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("student", 0))
    return run


def end_url(run) -> str:
    return run.bbb._create_meta(run.meeting_id, "endCallbackUrl") + "&recordingmarks=false"


def test_repeated_end_calls_after_the_end_ask_the_server_once_and_store_one_end(live, run):
    run.bbb.expire(run.meeting_id)  # the class is over at the server
    asked = run.bbb.count("getMeetingInfo")
    answers = [requests.get(end_url(run), timeout=10) for _ in range(CALLS)]
    assert {(a.status_code, a.text.strip()) for a in answers} == {(200, '{"ended":true}')}
    assert run.bbb.count("getMeetingInfo") - asked == 1
    [end] = end_rows(live)
    assert end.status == "applied"
    assert session_of(live, run).ended_at is not None


def test_hammering_the_end_url_while_the_class_runs_asks_the_server_once_per_window(live, run):
    run.bbb.enter(run.meeting_id, live.public_id("student"))  # the meeting runs
    asked = run.bbb.count("getMeetingInfo")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: requests.get(end_url(run), timeout=10), range(CALLS)))
    assert all(a.status_code == 200 and a.json()["ended"] is False for a in answers)
    assert run.bbb.count("getMeetingInfo") - asked <= 1
    assert len(end_rows(live)) <= 1  # at most one report waiting for the worker's confirmation
    assert session_of(live, run).ended_at is None


def test_concurrent_end_calls_after_the_end_store_one_end(live, run):
    run.bbb.expire(run.meeting_id)
    asked = run.bbb.count("getMeetingInfo")
    start = threading.Barrier(CALLS)

    def call(_):
        start.wait()
        return requests.get(end_url(run), timeout=10)

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        answers = list(pool.map(call, range(CALLS)))
    assert all(a.status_code == 200 for a in answers)
    assert run.bbb.count("getMeetingInfo") - asked <= 1
    live.run_worker()
    [end] = end_rows(live)
    assert end.status == "applied" and session_of(live, run).ended_at is not None


@pytest.mark.parametrize("live_overrides", [{"ROOM_STATE_CHECK_SECONDS": "1"}])
def test_a_genuine_end_inside_the_window_of_another_check_is_confirmed_by_the_worker(live, run):
    """A waiting student's page asked the server a moment before the class ended: the callback
    may not ask again so soon. It is kept, unconfirmed, and the worker confirms it after."""
    student = live.launch("student5")
    assert student.get("/status").status_code == 200  # claims this window's server call
    run.bbb.expire(run.meeting_id)
    asked = run.bbb.count("getMeetingInfo")
    first = requests.get(end_url(run), timeout=10)
    assert first.status_code == 200 and first.json()["ended"] is False
    assert requests.get(end_url(run), timeout=10).json()["ended"] is False
    assert run.bbb.count("getMeetingInfo") == asked, "no server call inside the window"
    [reported] = end_rows(live)
    assert reported.status == "unconfirmed"

    time.sleep(1.1)  # the window passes
    Worker(live.app).run_once()
    [end] = end_rows(live)
    assert end.status == "applied" and end.occurred_at == reported.occurred_at  # the time BBB called
    assert session_of(live, run).ended_at == reported.occurred_at
    assert requests.get(end_url(run), timeout=10).json() == {"ended": True}


@pytest.mark.parametrize("live_overrides", [{"ROOM_STATE_CHECK_SECONDS": "1"}])
def test_an_end_reported_while_the_class_still_runs_is_dropped_by_the_worker(live, run):
    run.bbb.enter(run.meeting_id, live.public_id("student"))
    student = live.launch("student5")
    assert student.get("/status").status_code == 200
    assert requests.get(end_url(run), timeout=10).json()["ended"] is False
    assert [r.status for r in end_rows(live)] == ["unconfirmed"]

    time.sleep(1.1)
    Worker(live.app).run_once()
    assert end_rows(live) == []  # the server says the class runs: the report was premature or forged
    assert session_of(live, run).ended_at is None
    with live.app.app_context():
        assert db.session.scalar(select(Room.running))


def test_an_end_for_a_run_that_is_already_over_asks_nothing(live, run):
    run.send(run.ended(60))  # the webhook said so first
    asked = run.bbb.count("getMeetingInfo")
    assert requests.get(end_url(run), timeout=10).json() == {"ended": True}
    assert run.bbb.count("getMeetingInfo") == asked
    assert end_rows(live) == []
