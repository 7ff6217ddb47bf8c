"""Events for meetings the tool does not know — other applications' meetings on the same BBB
server, people's names included — are kept UNKNOWN_EVENT_RETENTION_HOURS (24) for a replay, then
deleted: by the worker (at most once an hour per worker) and by `flask --app wsgi webhooks
prune`, which prints what it deleted. Everything else in the inbox stays.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from lti_tool.attendance.events import MEETING_STARTED, RECORDING_READY, USER_JOINED, IncomingEvent
from lti_tool.attendance.service import receive
from lti_tool.extensions import db
from lti_tool.models import ProviderEvent, utcnow
from lti_tool.worker import Worker

T0 = 1_715_261_728_000


def event(meeting_id: str, user: str | None = None, kind: str = USER_JOINED, minute: int = 0) -> IncomingEvent:
    return IncomingEvent(provider="bbb", source="webhook", kind=kind, meeting_id=meeting_id,
                         run_id=f"{meeting_id}-{T0}", occurred_at_ms=T0 + minute * 60_000,
                         external_user_id=user, user_name="Someone Else" if user else "")


def age(meeting_id: str, hours: float) -> None:
    """Received that long ago (the inbox's own clock, as if time had passed)."""
    db.session.execute(update(ProviderEvent).where(ProviderEvent.meeting_id == meeting_id)
                       .values(received_at=utcnow() - timedelta(hours=hours)))
    db.session.commit()


def statuses() -> dict[str, str]:
    """Each event's status, by meeting (the room's own by kind: it has two)."""
    return {row.meeting_id if row.meeting_id.startswith("other-") else row.kind: row.status
            for row in db.session.scalars(select(ProviderEvent))}


@pytest.fixture
def inbox(app, lms):
    """Old and new events of unknown meetings, and the tool's own events, old ones included."""
    lms.launch("teacher")
    with app.app_context():
        from lti_tool.models import Room

        room = db.session.scalar(select(Room))
        receive([event("other-app-old", "u1"), event("other-app-older", "u2", minute=1),
                 event("other-app-fresh", "u3"), event(room.meeting_id, kind=MEETING_STARTED)])
        receive([IncomingEvent(provider="bbb", source="recording_ready", kind=RECORDING_READY,
                               meeting_id=room.meeting_id, run_id="r", occurred_at_ms=T0)])
        age("other-app-old", 25)
        age("other-app-older", 24 * 30)
        age("other-app-fresh", 23)
        age(room.meeting_id, 24 * 30)
        before, meeting_id = statuses(), room.meeting_id
    assert before == {"other-app-old": "unknown_meeting", "other-app-older": "unknown_meeting",
                      "other-app-fresh": "unknown_meeting", MEETING_STARTED: "applied", RECORDING_READY: "ignored"}
    return meeting_id


KEPT = {"other-app-fresh", MEETING_STARTED, RECORDING_READY}  # the room's own events stay, however old


def test_prune_command_deletes_old_unknown_meeting_events_and_keeps_the_rest(app, inbox):
    result = app.test_cli_runner().invoke(args=["webhooks", "prune"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted 2 event(s) of unknown meetings received before ")
    assert "(retention 24 h)" in result.output
    with app.app_context():
        assert set(statuses()) == KEPT
    again = app.test_cli_runner().invoke(args=["webhooks", "prune"])
    assert again.output.startswith("deleted 0 event(s)")


def test_prune_command_takes_another_retention(app, inbox):
    result = app.test_cli_runner().invoke(args=["webhooks", "prune", "--older-than-hours", "0"])
    assert result.output.startswith("deleted 3 event(s)")
    with app.app_context():
        assert "other-app-fresh" not in statuses()
    refused = app.test_cli_runner().invoke(args=["webhooks", "prune", "--older-than-hours", "-1"])
    assert refused.exit_code != 0 and "older-than-hours" in refused.output


@pytest.mark.parametrize("app_overrides", [{"UNKNOWN_EVENT_RETENTION_HOURS": "48"}])
def test_the_retention_comes_from_the_setting(app, inbox):
    result = app.test_cli_runner().invoke(args=["webhooks", "prune"])
    assert result.output.startswith("deleted 1 event(s)") and "(retention 48 h)" in result.output


def test_the_worker_prunes_at_most_once_an_hour(app, inbox):
    worker = Worker(app)
    worker.run_once()
    with app.app_context():
        assert set(statuses()) == KEPT
        receive([event("other-app-later", "u5")])
        age("other-app-later", 48)
    worker.run_once()
    with app.app_context():
        assert "other-app-later" in statuses(), "the same worker waits an hour before pruning again"
    Worker(app).run_once()  # another worker process: its first pass prunes
    with app.app_context():
        assert "other-app-later" not in statuses()
