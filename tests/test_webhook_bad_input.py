"""Bad input to the webhooks is answered 4xx JSON or refused event by event — never a 500.
Each case here answered 500 before: a non-ASCII `sig` (hmac.compare_digest refuses non-ASCII
str), a signed `ts` of 1e20 (datetime overflow), deeply nested JSON (RecursionError while
parsing). Over real HTTP; tests/test_fuzz_webhooks.py looks for more.
"""
from __future__ import annotations

import hashlib
import json

import jwt
import pytest
import requests

from lti_tool.extensions import db
from lti_tool.models import ClassSession, ProviderEvent
from tests.conftest import BBB_SECRET, row_counts
from tests.support import ClassRun, analytics_token, livekit_signed, post_bbb_events

DEEP = 100_000  # far beyond Python's recursion limit


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def signed_bbb_body(live, body: bytes) -> requests.Response:
    hook = live.url + "/webhooks/bbb"
    checksum = hashlib.sha1(hook.encode() + body + BBB_SECRET.encode()).hexdigest()
    return requests.post(f"{hook}?checksum={checksum}", data=body, timeout=30,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


def assert_json_4xx(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json") and response.json()["error"]


@pytest.fixture
def run(live):
    return ClassRun(live, live.launch("teacher"))


# -- the end callback --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    pytest.param({"meetingID": "x", "sig": "é"}, id="non-ASCII sig"),
    pytest.param({"meetingID": "x", "sig": "é" * 64}, id="non-ASCII sig of a signature's length"),
    pytest.param({"meetingID": "é\x00\n", "sig": "0" * 64}, id="control characters in the meeting id"),
    pytest.param({"sig": "abc"}, id="no meeting id"),
    pytest.param({}, id="nothing"),
])
def test_end_callback_with_a_bad_signature_is_401_json(live, query):
    before = row_counts(live.app)
    assert_json_4xx(requests.get(live.url + "/webhooks/bbb/end", params=query, timeout=10), 401)
    assert row_counts(live.app) == before


@pytest.mark.parametrize("meeting_id", ["not-a-room", "a\x00b", "x" * 300])
def test_end_callback_signed_for_a_meeting_the_tool_does_not_have_is_404(live, meeting_id):
    from lti_tool.providers.bbb.signing import callback_signature

    sig = callback_signature(live.app.config["SECRET_KEY"], "end", meeting_id)
    before = row_counts(live.app)
    answer = requests.get(live.url + "/webhooks/bbb/end", params={"meetingID": meeting_id, "sig": sig}, timeout=10)
    assert_json_4xx(answer, 404)
    assert row_counts(live.app) == before


# -- bbb-webhooks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", [1e20, 10**20, "1" + "0" * 5000, -1, 1.5, float(2**63)], ids=str)
def test_a_signed_event_whose_time_is_out_of_range_is_refused_alone(live, run, ts):
    joined = run.bbb.event_user_joined(run.meeting_id, "lti-user-9", "Eve", "VIEWER", run.at(0), run.internal_id)
    joined["data"]["event"]["ts"] = ts
    answer = post_bbb_events(live, [run.created(), joined])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 2, "new": 1, "refused": 1}


def test_a_signed_create_time_out_of_range_is_refused_alone(live, run):
    created = run.created()
    created["data"]["attributes"]["meeting"]["create-time"] = 1e20
    assert post_bbb_events(live, [created, run.ended(60)]).json() == {"received": 2, "new": 1, "refused": 1}


def test_an_internal_meeting_id_ending_in_a_huge_number_is_stored_and_applied(live, run):
    """BBB's internal id ends in the create time: one that cannot be a time is no start time."""
    ended = run.bbb.event_meeting_ended(run.meeting_id, run.at(60), run.internal_id.split("-")[0] + "-" + "9" * 40)
    assert post_bbb_events(live, [ended]).json() == {"received": 1, "new": 1, "refused": 0}
    with live.app.app_context():
        [row] = db.session.scalars(db.select(ProviderEvent)).all()
        assert (row.status, row.error) == ("applied", None)
        session = db.session.get(ClassSession, row.session_id)
        assert session.started_at is None


@pytest.mark.parametrize("depth", [DEEP, 40])
def test_a_signed_webhook_nested_too_deeply_is_400(live, depth):
    before = row_counts(live.app)
    body = f"domain=x&event={nested(depth)}&timestamp=1".encode()
    assert_json_4xx(signed_bbb_body(live, body), 400)
    assert row_counts(live.app) == before


def test_a_deeply_nested_field_inside_one_event_refuses_the_body(live, run):
    created = run.created()
    created["data"]["attributes"]["meeting"]["metadata"] = json.loads(nested(40))
    assert_json_4xx(post_bbb_events(live, [created]), 400)


# -- the analytics callback ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    pytest.param(nested(DEEP).encode(), id="nested 100000 deep"),
    pytest.param(b'{"meeting_id": ' + nested(40).encode() + b"}", id="nested 40 deep"),
    pytest.param(b'{"meeting_id": 1' + b"0" * 5000 + b"}", id="a number of 5000 digits"),
    pytest.param(b'{"meeting_id": NaN}', id="NaN"),
    pytest.param(b'{"meeting_id": 1e400}', id="a number out of range"),
    pytest.param(b"\xff\xfe\x00", id="not UTF-8"),
    pytest.param(b"", id="empty"),
])
def test_analytics_body_that_is_not_sane_json_is_400(live, body):
    before = row_counts(live.app)
    answer = requests.post(live.url + "/webhooks/bbb/analytics", data=body, timeout=30,
                           headers={"Content-Type": "application/json", "Authorization": f"Bearer {analytics_token()}"})
    assert_json_4xx(answer, 400)
    assert row_counts(live.app) == before


# -- recording ready --------------------------------------------------------------------------------------


def test_recording_ready_with_ids_that_cannot_be_stored_is_refused(live):
    token = jwt.encode({"meeting_id": "m" * 300, "record_id": "r\x00"}, BBB_SECRET, algorithm="HS256")
    answer = requests.post(live.url + "/webhooks/bbb/recording-ready", data={"signed_parameters": token}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"received": 1, "new": 0, "refused": 1}


# -- LiveKit -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    pytest.param(nested(DEEP).encode(), id="nested 100000 deep"),
    pytest.param(b'{"event": "room_started", "room": {"name": "r", "sid": "RM_1", "metadata": "x"}, "x": '
                 + nested(40).encode() + b"}", id="nested 40 deep in an unknown field"),
    pytest.param(b'{"event": "room_started", "createdAt": "100000000000000000000"}', id="createdAt beyond int64"),
    pytest.param(b'{"event": "room_started", "createdAt": NaN}', id="NaN"),
    pytest.param(b"[1, 2]", id="not an object"),
])
def test_a_signed_livekit_body_that_is_not_sane_is_400(live, body):
    before = row_counts(live.app)
    assert_json_4xx(livekit_signed(live, body), 400)
    assert row_counts(live.app) == before


def test_webhook_routes_answer_wrong_methods_with_json(live):
    for path in ("/webhooks/bbb", "/webhooks/bbb/analytics", "/webhooks/livekit"):
        assert_json_4xx(requests.get(live.url + path, timeout=10), 405)
    assert_json_4xx(requests.post(live.url + "/webhooks/bbb/end", timeout=10), 405)
