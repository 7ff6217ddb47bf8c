"""One bad event never costs the good ones. The hook the tool registers receives every meeting on
the BBB server (other applications' too), so each event of a delivery is checked and stored on
its own: a bad one is refused (counted, logged with its reason), the others are stored and
applied, and the answer is 200 with the counts so bbb-webhooks keeps the hook. Observed before:
two genuine events and one with a 256-character id or a NUL in a name answered 500 on
PostgreSQL and stored nothing. Runs on SQLite and PostgreSQL (the suite runs on both).
"""
from __future__ import annotations

import hashlib
import logging

import pytest
import requests
from sqlalchemy import select, text

from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ProviderEvent
from tests.conftest import BBB_SECRET
from tests.support import ClassRun, analytics_body, post_analytics, post_bbb_events

MINUTE = 60_000


# -- senders: signed exactly as the servers sign, whatever the events hold ---------------------------


def stored(live) -> list[ProviderEvent]:
    with live.app.app_context():
        rows = db.session.scalars(select(ProviderEvent).order_by(ProviderEvent.id)).all()
        db.session.expunge_all()
        return rows


def open_intervals(live) -> list[str]:
    with live.app.app_context():
        return list(db.session.scalars(select(AttendanceInterval.external_user_id)))


@pytest.fixture
def run(live):
    teacher = live.launch("teacher")
    live.launch("student")
    return ClassRun(live, teacher)


# -- bbb-webhooks --------------------------------------------------------------------------------------


def spoil(change):
    """A user-joined of someone else, changed by `change(data)`."""
    def make(run: ClassRun) -> dict:
        event = run.bbb.event_user_joined(run.meeting_id, "lti-user-9", "Eve", "VIEWER", run.at(1), run.internal_id)
        change(event["data"])
        return event
    return make


def _meeting(data) -> dict:
    return data["attributes"]["meeting"]


def _user(data) -> dict:
    return data["attributes"]["user"]


BAD_EVENTS = {
    "meeting id of 256 characters": spoil(lambda d: _meeting(d).update({"external-meeting-id": "m" * 256})),
    "internal meeting id of 256 characters": spoil(lambda d: _meeting(d).update({"internal-meeting-id": "i" * 256})),
    "user id of 256 characters": spoil(lambda d: _user(d).update({"external-user-id": "u" * 256})),
    "NUL in the name": spoil(lambda d: _user(d).update(name="Eve\x00Mallory")),
    "NUL in the meeting id": spoil(lambda d: _meeting(d).update({"external-meeting-id": "abc\x00"})),
    "newline in the user id": spoil(lambda d: _user(d).update({"external-user-id": "lti-user-9\nFAKE LOG LINE"})),
    "lone surrogate in the user id": spoil(lambda d: _user(d).update({"external-user-id": "lti-\ud800"})),
    "role of 40 characters": spoil(lambda d: _user(d).update(role="MODERATOR" * 5)),
    "time in the year 5138": spoil(lambda d: d["event"].update(ts=10**14)),
    "time before 2000": spoil(lambda d: d["event"].update(ts=86_400_000)),
    "no data.id": spoil(lambda d: d.pop("id")),
    "user-joined without a user": spoil(lambda d: d["attributes"].pop("user")),
    "recording metadata that is not an object": lambda run: {"data": {
        "id": "rap-published", "event": {"ts": run.at(90)},
        "attributes": {"meeting": {"internal-meeting-id": run.internal_id}, "record-id": "r1",
                       "recording": {"metadata": ["not", "an", "object"]}}}},
    "event that is a number": lambda run: 42,
}


@pytest.mark.parametrize("bad", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_one_bad_event_is_refused_and_the_others_are_stored_and_applied(live, run, bad, caplog):
    student = live.public_id("student")
    with caplog.at_level(logging.WARNING):
        answer = post_bbb_events(live, [run.created(), bad(run), run.joined("student", 0)])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 3, "new": 2, "refused": 1}
    rows = stored(live)
    assert [(r.kind, r.external_user_id, r.status) for r in rows] == [
        ("meeting_started", None, "applied"), ("user_joined", student, "applied"),
    ]
    assert open_intervals(live) == [student]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage() and "event" in r.getMessage()]
    assert refusals, "the refusal is logged with its reason"
    assert all("\n" not in message and "\x00" not in message for message in refusals)


def test_a_redelivery_of_the_same_batch_stores_nothing_twice_and_still_refuses_the_bad_one(live, run):
    batch = [run.created(), BAD_EVENTS["NUL in the name"](run), run.joined("student", 0)]
    assert post_bbb_events(live, batch).json() == {"received": 3, "new": 2, "refused": 1}
    assert post_bbb_events(live, batch).json() == {"received": 3, "new": 0, "refused": 1}
    assert len(stored(live)) == 2


def test_a_long_name_is_cut_to_the_column_not_refused(live, run):
    joined = run.joined("student", 0)
    joined["data"]["attributes"]["user"]["name"] = "Sam " + "S" * 400
    assert post_bbb_events(live, [joined]).json() == {"received": 1, "new": 1, "refused": 0}
    [row] = stored(live)
    assert row.user_name == ("Sam " + "S" * 400)[:255]


@pytest.mark.parametrize("body", [
    pytest.param(b"domain=x&event=not-json", id="event not JSON"),
    pytest.param(b"domain=x&event=%7B%22a%22%3A1%7D%7D", id="event broken JSON"),
    pytest.param(b"domain=x&timestamp=1", id="no event field"),
    pytest.param(b"domain=x&event=%5BNaN%5D", id="NaN"),
])
def test_a_body_that_is_not_a_batch_at_all_is_400_and_stores_nothing(live, body):
    hook = live.url + "/webhooks/bbb"
    checksum = hashlib.sha1(hook.encode() + body + BBB_SECRET.encode()).hexdigest()
    answer = requests.post(f"{hook}?checksum={checksum}", data=body, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]
    assert stored(live) == []


# -- a database error the checks did not foresee -------------------------------------------------------


@pytest.fixture
def poisoned_inbox(live):
    """The database itself refuses events of one meeting (as a constraint the tool's checks do not
    know would): on SQLite a trigger, on PostgreSQL a trigger function raising an error."""
    poison = "poisoned-meeting"
    with live.app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        if sqlite:
            db.session.execute(text(
                "CREATE TRIGGER poison BEFORE INSERT ON provider_events "
                f"WHEN NEW.meeting_id = '{poison}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))
        else:
            db.session.execute(text(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.meeting_id = '{poison}' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"))
            db.session.execute(text(
                "CREATE TRIGGER poison BEFORE INSERT ON provider_events FOR EACH ROW EXECUTE FUNCTION poison()"))
        db.session.commit()
    yield poison
    with live.app.app_context():
        db.session.execute(text("DROP TRIGGER poison" if sqlite else "DROP TRIGGER poison ON provider_events"))
        if not sqlite:
            db.session.execute(text("DROP FUNCTION poison()"))
        db.session.commit()


def test_a_database_error_on_one_event_is_a_refusal_of_that_event_only(live, run, poisoned_inbox):
    poisoned = run.bbb.event_meeting_created(poisoned_inbox, run.t0, "abc-1")
    answer = post_bbb_events(live, [run.created(), poisoned, run.joined("student", 0)])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 3, "new": 2, "refused": 1}
    assert [r.status for r in stored(live)] == ["applied", "applied"]
    assert open_intervals(live) == [live.public_id("student")]


# -- the analytics callback -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    pytest.param({"ext_user_id": "u" * 256}, id="user id of 256 characters"),
    pytest.param({"ext_user_id": "lti-user-9", "name": "Eve\x00"}, id="NUL in the name"),
    pytest.param({"ext_user_id": "lti-user-9", "joins": "13:35"}, id="joins not a list"),
    pytest.param({"ext_user_id": 7}, id="user id a number"),
])
def test_analytics_refuses_one_attendee_and_keeps_the_others(live, run, bad):
    student = live.public_id("student")
    body = analytics_body(run, [{"ext_user_id": student, "from": 10, "to": 40}, {"from": 0, "to": 60, **bad}])
    answer = post_analytics(live, body)
    assert answer.status_code == 200, answer.text
    counts = answer.json()
    assert counts["refused"] >= 1 and counts["new"] == 4  # start, Sam's join and leave, end
    assert counts["received"] == counts["new"] + counts["refused"]
    assert {r.external_user_id for r in stored(live)} == {None, student}
    live.run_worker()
    assert live.platform.scores and [s["comment"] for s in live.platform.scores if s["userId"] == "4"] == [
        "Attended 30 of 60 minutes"]


def test_analytics_for_a_meeting_id_that_cannot_be_stored_is_refused_whole(live, run):
    body = analytics_body(run, [{"ext_user_id": live.public_id("student"), "from": 10, "to": 40}])
    body["meeting_id"] = "m" * 256
    answer = post_analytics(live, body)
    assert answer.status_code == 200 and answer.json() == {"received": 4, "new": 0, "refused": 4}
    assert stored(live) == []


# -- LiveKit --------------------------------------------------------------------------------------------


@pytest.fixture
def livekit_room(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    assert teacher.join().status_code == 302
    [name] = live.livekit.rooms
    return name


@pytest.mark.parametrize("change", [
    pytest.param(lambda e: e["participant"].update(identity="u" * 256), id="identity of 256 characters"),
    pytest.param(lambda e: e["participant"].update(name="Eve\x00"), id="NUL in the name"),
    pytest.param(lambda e: e["participant"].pop("sid"), id="no participant sid"),
    pytest.param(lambda e: e.update(createdAt=str(9 * 10**18)), id="createdAt far in the future"),
])
def test_a_livekit_event_that_cannot_be_stored_is_refused_with_200(live, livekit_room, change):
    hook = live.url + "/webhooks/livekit"
    bad = live.livekit.participant_joined(livekit_room, "lti-user-9", 1_715_261_730, "Eve")
    change(bad)
    answer = live.livekit.send_webhook(hook, bad)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "new": 0, "refused": 1}
    good = live.livekit.room_started(livekit_room, 1_715_261_728)
    assert live.livekit.send_webhook(hook, good).json() == {"received": 1, "new": 1, "refused": 0}
    assert [r.kind for r in stored(live)] == ["meeting_started"]


def test_ids_as_long_as_their_columns_are_stored_and_never_merged_into_one_event(live, run):
    """Such a key is longer than its column: it is hashed whole, so two events never share it."""
    meeting, internal = "m" * 255, "i" * 255
    first = run.bbb.event_user_joined(meeting, "u" * 254 + "1", "A", "VIEWER", run.at(0), internal)
    second = run.bbb.event_user_joined(meeting, "u" * 254 + "2", "B", "VIEWER", run.at(0), internal)
    assert post_bbb_events(live, [first, second]).json() == {"received": 2, "new": 2, "refused": 0}
    assert post_bbb_events(live, [second]).json() == {"received": 1, "new": 0, "refused": 0}
    rows = stored(live)
    assert [len(r.external_user_id) for r in rows] == [255, 255]
    assert {r.status for r in rows} == {"unknown_meeting"}
    assert len({r.dedupe_key for r in rows}) == 2 and all(len(r.dedupe_key) <= 512 for r in rows)
