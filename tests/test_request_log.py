"""One log line per request, over real HTTP: method, path without its query, status, duration,
and the LTI context the request named (a launch's ids, a room page's room and user); never a
ticket, a token or a query value. LOG_FORMAT=json writes the same as one JSON object per line."""
from __future__ import annotations

import json
import logging

import pytest
import requests

from lti_tool.request_log import JsonFormatter

REQUESTS = "lti_tool.requests"


def request_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == REQUESTS]


def test_a_launch_line_names_its_lti_context_and_no_secret(live, caplog):
    with caplog.at_level(logging.INFO, logger=REQUESTS):
        student = live.launch("student")
        student.get()
        student.join()
    lines = {(r.fields["method"], r.fields["path"]): r for r in request_lines(caplog)}
    launch = lines[("POST", "/lti/launch")].fields
    user = live.platform.user("student")
    assert launch["status"] == 303 and launch["duration_ms"] >= 0
    assert launch["issuer"] == live.platform.issuer and launch["sub"] == user.sub
    assert launch["deployment"] and launch["context"] and launch["resource_link"]
    assert launch["room"] == student.room_id
    page = lines[("GET", f"/rooms/{student.room_id}")].fields
    assert page["status"] == 200 and page["room"] == student.room_id and page["user"] == launch["user"]
    assert lines[("POST", f"/rooms/{student.room_id}/join")].fields["status"] in (302, 303)
    text = "\n".join(r.getMessage() + json.dumps(r.fields) for r in request_lines(caplog))
    for secret in (student.page_ticket, student.ticket, "id_token", "?"):
        assert secret not in text


def test_a_refusal_is_logged_with_its_status_and_without_the_query(live, caplog):
    with caplog.at_level(logging.INFO, logger=REQUESTS):
        answer = requests.get(f"{live.url}/rooms/1?t=forged-ticket-value", timeout=10)
    assert answer.status_code == 401
    (line,) = [r for r in request_lines(caplog) if r.fields["path"] == "/rooms/1"]
    assert line.fields["status"] == 401 and "room" not in line.fields
    assert "forged-ticket-value" not in line.getMessage()


def test_a_path_cannot_write_a_line_of_its_own(live, caplog):
    with caplog.at_level(logging.INFO, logger=REQUESTS):
        requests.get(f"{live.url}/nowhere%0AFAKE%20LINE", timeout=10)
    (line,) = [r for r in request_lines(caplog) if r.fields["path"].startswith("/nowhere")]
    assert line.fields["status"] == 404
    assert "\n" not in line.getMessage()


@pytest.mark.parametrize("live_overrides", [{"LOG_FORMAT": "json"}])
def test_json_lines_are_one_object_each_with_the_request_fields(live, caplog):
    with caplog.at_level(logging.INFO, logger=REQUESTS):
        student = live.launch("student")
    formatter = JsonFormatter()
    entries = [json.loads(formatter.format(r)) for r in request_lines(caplog)]
    launch = next(e for e in entries if e["path"] == "/lti/launch")
    assert launch["level"] == "INFO" and launch["logger"] == REQUESTS and launch["time"].endswith("Z")
    assert launch["status"] == 303 and launch["room"] == student.room_id
    assert all("\n" not in formatter.format(r) for r in request_lines(caplog))
