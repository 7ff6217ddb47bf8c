"""Property-based fuzzing of the webhooks over real HTTP. Every body passes authentication — BBB
webhooks checksummed as bbb-webhooks does, analytics callbacks with a valid Bearer JWT, LiveKit
webhooks signed as LiveKit does, end callbacks with the tool's own signature — and holds
anything: plausible events with strange fields, arbitrary JSON, junk. Whatever it holds:

- never a 5xx;
- a refused request (4xx) is JSON and writes nothing;
- an accepted one stores exactly the events it counts as new, each whole (its ids fit their
  columns, its time is sane) and applied or kept — none left pending or failed.

`FUZZ_EXAMPLES` sets the examples per test (default 60), `FUZZ_RANDOM=1` a random seed
(tests/conftest.py's "lti" profile).
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from lti_tool.attendance.service import EARLIEST_EVENT_MS, FUTURE_SLACK_MS, to_ms
from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, ProviderEvent, utcnow
from tests.conftest import BBB_SECRET, LIVEKIT_KEY, LIVEKIT_SECRET, row_counts
from tests.support import ClassRun, analytics_token

# -- building blocks ----------------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates and controls included
odd_text = st.one_of(
    st.text(max_size=12),
    st.text(ANY_CHARACTER, max_size=12),
    st.sampled_from(["", " ", "a\x00b", "line\nbreak", "\ud800", "é", "x" * 255, "x" * 256, "9" * 30]),
    st.text(alphabet="ab", min_size=250, max_size=260),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), odd_text)
any_json = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=12)


def sane_ms(offset: st.SearchStrategy) -> st.SearchStrategy:
    return offset.map(lambda minutes: to_ms(utcnow()) - 3_600_000 + int(minutes) * 60_000)


timestamps = st.one_of(
    sane_ms(st.integers(0, 90)),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from([1e20, 10**20, 2**63, -1, 0, 1.5, "1715261730000", "soon", "1" + "0" * 30, True, None]),
)


def maybe(strategy: st.SearchStrategy, other=odd_text) -> st.SearchStrategy:
    """Mostly `strategy`, sometimes something else."""
    return st.one_of(strategy, strategy, strategy, other)


def iso(ms) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat()


DELETE = object()
odd_values = st.one_of(odd_text, timestamps, any_json, st.just(DELETE))


@st.composite
def mutated(draw, base: dict, paths: list[tuple]) -> dict:
    """`base` (a well-formed body) with up to three of its `paths` set to odd values or removed:
    most bodies get past the parser and reach the checks and the database."""
    body = json.loads(json.dumps(base))
    for path in draw(st.lists(st.sampled_from(paths), max_size=3)):
        parent = body
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            value = draw(odd_values)
            if value is DELETE:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
    return body


@pytest.fixture
def room(live):
    """One class, started: its meeting id is what a fuzzed event may name, to be applied."""
    teacher = live.launch("teacher")
    live.launch("student")
    run = ClassRun(live, teacher)
    return {"run": run, "meeting_id": run.meeting_id, "internal_id": run.internal_id,
            "users": [live.public_id("teacher"), live.public_id("student")]}


def ids_of(room, which: str) -> st.SearchStrategy:
    known = {"meeting": [room["meeting_id"]], "session": [room["internal_id"]], "user": room["users"]}[which]
    return maybe(st.sampled_from(known))


# -- what must hold after every request ------------------------------------------------------------------


def check(live, response: requests.Response, before: dict) -> None:
    assert response.status_code < 500, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    after = row_counts(live.app)
    if response.status_code >= 400:
        assert response.json()["error"]
        assert after == before, "a refused request wrote something"
        return
    counts = response.json()
    if "new" in counts:
        assert counts["new"] + counts.get("refused", 0) <= counts["received"]
        assert after["provider_events"] == before["provider_events"] + counts["new"]
    with live.app.app_context():
        for row in db.session.scalars(select(ProviderEvent)):
            assert row.status in ("applied", "unknown_meeting", "ignored"), (row.status, row.error)
            assert row.meeting_id and len(row.meeting_id) <= 255 and len(row.external_user_id or "") <= 255
            assert EARLIEST_EVENT_MS <= to_ms(row.occurred_at) <= to_ms(utcnow()) + FUTURE_SLACK_MS
        for interval in db.session.scalars(select(AttendanceInterval)):
            assert interval.left_at is None or interval.left_at >= interval.joined_at


# -- bbb-webhooks ---------------------------------------------------------------------------------------


BBB_PATHS = [
    ("data", "id"), ("data", "event"), ("data", "event", "ts"), ("data", "attributes"),
    ("data", "attributes", "meeting"), ("data", "attributes", "meeting", "external-meeting-id"),
    ("data", "attributes", "meeting", "internal-meeting-id"), ("data", "attributes", "meeting", "create-time"),
    ("data", "attributes", "user"), ("data", "attributes", "user", "external-user-id"),
    ("data", "attributes", "user", "internal-user-id"), ("data", "attributes", "user", "name"),
    ("data", "attributes", "user", "role"), ("data", "attributes", "record-id"), ("data", "attributes", "success"),
    ("data", "attributes", "recording"), ("data", "attributes", "recording", "metadata"),
]


@st.composite
def bbb_event(draw, room):
    run, user = room["run"], draw(st.sampled_from(room["users"]))
    at = run.at(draw(st.integers(0, 60)))
    base = draw(st.sampled_from([
        run.created(), run.ended(60),
        run.bbb.event_user_joined(run.meeting_id, user, "Sam", "VIEWER", at, run.internal_id),
        run.bbb.event_user_left(run.meeting_id, user, at, run.internal_id),
        run.bbb.event_rap_publish_ended(run.meeting_id, at, record_id=run.internal_id),
    ]))
    return draw(mutated(base, BBB_PATHS))


def bbb_bodies(room) -> st.SearchStrategy:
    events = st.lists(st.one_of(bbb_event(room), bbb_event(room), bbb_event(room), any_json), max_size=4)
    field = st.one_of(events.map(json.dumps), events.map(json.dumps), events.map(json.dumps), odd_text,
                      st.integers(1, 200).map(lambda depth: "[" * depth + "]" * depth))
    # surrogatepass: a lone surrogate in the field becomes bytes that are not UTF-8, as a broken sender's would.
    return field.map(lambda text: urlencode({"domain": "bbb.example.com",
                                             "event": text.encode("utf-8", "surrogatepass"),
                                             "timestamp": "1"}).encode())


def test_fuzzed_bbb_webhooks_with_valid_checksums(live, room):
    hook = live.url + "/webhooks/bbb"

    @given(body=bbb_bodies(room))
    def deliver(body):
        before = row_counts(live.app)
        checksum = hashlib.sha256(hook.encode() + body + BBB_SECRET.encode()).hexdigest()
        response = requests.post(f"{hook}?checksum={checksum}", data=body, timeout=30,
                                 headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"})
        check(live, response, before)

    deliver()


# -- the analytics callback ------------------------------------------------------------------------------


ANALYTICS_PATHS = [
    ("meeting_id",), ("internal_meeting_id",), ("data",), ("data", "start"), ("data", "finish"),
    ("data", "duration"), ("data", "attendees"), *[
        ("data", "attendees", position, name)
        for position in (0, 1) for name in ("ext_user_id", "name", "moderator", "joins", "leaves", "duration")
    ],
]


@st.composite
def analytics_body(draw, room):
    run = room["run"]
    teacher, student = room["users"]
    base = {"version": "1.0", "meeting_id": run.meeting_id, "internal_meeting_id": run.internal_id,
            "data": {"start": iso(run.at(0)), "finish": iso(run.at(60)), "duration": 3600, "attendees": [
                {"ext_user_id": teacher, "name": "T", "moderator": True, "joins": [iso(run.at(0))],
                 "leaves": [iso(run.at(60))], "duration": 3600},
                {"ext_user_id": student, "name": "S", "moderator": False,
                 "joins": [iso(run.at(draw(st.integers(0, 30))))], "leaves": [iso(run.at(draw(st.integers(30, 60))))],
                 "duration": 600}]}}
    # Lists are indexed like objects here: turn them into dicts keyed 0, 1 to mutate, then back.
    base["data"]["attendees"] = dict(enumerate(base["data"]["attendees"]))
    body = draw(mutated(base, [tuple(str(p) if isinstance(p, int) else p for p in path) for path in ANALYTICS_PATHS]))
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("attendees"), dict):
        data["attendees"] = list(data["attendees"].values())
    return body


def test_fuzzed_analytics_callbacks_with_a_valid_token(live, room):
    url = live.url + "/webhooks/bbb/analytics"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {analytics_token()}"}

    @given(body=st.one_of(analytics_body(room).map(json.dumps), analytics_body(room).map(json.dumps),
                          any_json.map(json.dumps), st.binary(max_size=40)))
    def deliver(body):
        before = row_counts(live.app)
        check(live, requests.post(url, data=body, headers=headers, timeout=30), before)

    deliver()


# -- LiveKit --------------------------------------------------------------------------------------------


LIVEKIT_PATHS = [
    ("event",), ("id",), ("createdAt",), ("room",), ("room", "name"), ("room", "sid"), ("room", "creationTime"),
    ("participant",), ("participant", "sid"), ("participant", "identity"), ("participant", "name"),
    ("participant", "metadata"), ("participant", "kind"), ("participant", "joinedAt"), ("egressInfo",),
    ("egressInfo", "egressId"), ("egressInfo", "status"), ("egressInfo", "fileResults"),
]


@st.composite
def livekit_event(draw, room):
    fake, name, user = room["run"].live.livekit, room["meeting_id"], draw(st.sampled_from(room["users"]))
    at = room["run"].at(draw(st.integers(0, 60))) // 1000
    base = draw(st.sampled_from([
        fake.room_started(name, at), fake.room_finished(name, at),
        fake.participant_joined(name, user, at, "Sam", '{"role":"attendee"}'),
        fake.participant_left(name, user, at, "Sam", '{"role":"attendee"}'),
        fake.egress_ended("EG_fuzz", at, room=name),
    ]))
    return draw(mutated(base, LIVEKIT_PATHS))


def test_fuzzed_livekit_webhooks_correctly_signed(live, room):
    hook = live.url + "/webhooks/livekit"
    bodies = st.one_of(livekit_event(room).map(json.dumps), livekit_event(room).map(json.dumps),
                       any_json.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1")))

    @given(body=bodies)
    def deliver(body):
        raw = body.encode("utf-8", "surrogatepass")
        now = int(time.time())
        token = jwt.encode({"iss": LIVEKIT_KEY, "sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
                            "nbf": now, "iat": now, "exp": now + 300}, LIVEKIT_SECRET, algorithm="HS256")
        before = row_counts(live.app)
        response = requests.post(hook, data=raw, timeout=30,
                                 headers={"Authorization": token, "Content-Type": "application/webhook+json"})
        check(live, response, before)

    deliver()


# -- the end callback -------------------------------------------------------------------------------------


def test_fuzzed_end_callbacks(live, room):
    from lti_tool.providers.bbb.signing import callback_signature

    def signed(meeting_id: str) -> str:
        as_received = meeting_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # what the tool reads
        return callback_signature(live.app.config["SECRET_KEY"], "end", as_received)

    @given(meeting_id=ids_of(room, "meeting"), sig=st.one_of(st.none(), odd_text, st.just("signed")),
           marks=st.one_of(st.none(), odd_text))
    def call(meeting_id, sig, marks):
        params = {"meetingID": meeting_id, "sig": signed(meeting_id) if sig == "signed" else sig,
                  "recordingmarks": marks}
        query = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in params.items() if v is not None})
        before = row_counts(live.app)
        response = requests.get(f"{live.url}/webhooks/bbb/end?{query}", timeout=30)
        check(live, response, before)
        with live.app.app_context():
            ends = db.session.scalars(select(ProviderEvent).where(ProviderEvent.source == "end_callback")).all()
            assert len(ends) <= 1, "one end per run of the meeting, however often it is called"

    call()


# -- recording ready ----------------------------------------------------------------------------------------


def test_fuzzed_recording_ready_callbacks_with_valid_tokens(live, room):
    url = live.url + "/webhooks/bbb/recording-ready"
    claims = st.fixed_dictionaries({"meeting_id": ids_of(room, "meeting"),
                                    "record_id": maybe(st.just(room["internal_id"]))},
                                   optional={"extra": any_json})

    @given(claims=claims)
    def deliver(claims):
        token = jwt.encode(claims, BBB_SECRET, algorithm="HS256")
        before = row_counts(live.app)
        check(live, requests.post(url, data={"signed_parameters": token}, timeout=30), before)

    deliver()
