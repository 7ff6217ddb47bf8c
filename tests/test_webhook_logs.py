"""Log lines cannot be forged through the webhooks: every untrusted value the tool logs (meeting
and user ids, names, event names, reasons quoting them) goes through `logsafe.quoted()`, so
newlines, carriage returns, terminal escapes and line separators arrive escaped, and a long
value is cut. Authentic and forged requests alike, over real HTTP."""
from __future__ import annotations

import json
import logging

import jwt
import pytest
import requests

from tests.conftest import BBB_SECRET
from tests.support import ClassRun, analytics_body, livekit_signed, post_analytics, post_bbb_events

FORGED = "x\nINFO lti_tool.webhooks.routes: all fine\r\x1b[2J\u2028" + "y" * 5000
BAD_CHARACTERS = ("\n", "\r", "\x1b", "\u2028")


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.DEBUG, logger="lti_tool")
    return caplog


def tool_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("lti_tool")]


def assert_safe(caplog) -> None:
    lines = tool_lines(caplog)
    assert lines, "the requests were logged"
    for line in lines:
        assert not any(c in line for c in BAD_CHARACTERS), line[:300]
        assert len(line) < 2000, f"a line of {len(line)} characters"


def test_bbb_webhook_values_are_quoted_in_the_log(live, logged):
    run = ClassRun(live, live.launch("teacher"))
    stranger = run.bbb.event_user_joined("other\u2028meeting", "u\u2028" + "z" * 300, FORGED, "VIEWER", run.at(0),
                                         "i-1")
    refused = run.bbb.event_user_joined(run.meeting_id, FORGED, FORGED, "VIEWER", run.at(0), run.internal_id)
    bad_time = run.bbb.event_user_left(run.meeting_id, "u1", run.at(0), run.internal_id)
    bad_time["data"]["event"]["ts"] = FORGED
    assert post_bbb_events(live, [stranger, refused, bad_time]).status_code == 200
    assert any("other\\u2028meeting" in line for line in tool_lines(logged))  # quoted, still readable
    assert_safe(logged)


def test_analytics_livekit_recording_and_end_callback_values_are_quoted_in_the_log(live, logged):
    run = ClassRun(live, live.launch("teacher"))
    body = analytics_body(run, [{"ext_user_id": FORGED, "from": 0, "to": 30}])
    body["meeting_id"] = "m\u2028" + FORGED[:100]
    assert post_analytics(live, body).status_code == 200
    assert livekit_signed(live, json.dumps({"event": FORGED, "room": {"name": FORGED}}).encode()).status_code == 200
    assert livekit_signed(live, json.dumps({"event": "room_started", "createdAt": FORGED}).encode()).status_code == 400
    token = jwt.encode({"meeting_id": FORGED, "record_id": FORGED}, BBB_SECRET, algorithm="HS256")
    recording_ready = live.url + "/webhooks/bbb/recording-ready"
    assert requests.post(recording_ready, data={"signed_parameters": token}).status_code == 200
    assert requests.post(recording_ready, data={"signed_parameters": FORGED}).status_code == 401
    assert requests.get(live.url + "/webhooks/bbb/end", params={"meetingID": FORGED, "sig": FORGED}).status_code == 401
    assert_safe(logged)
