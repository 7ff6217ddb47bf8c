"""Log lines of logins and launches: one line per event, whatever the request holds.

Observed before: the launch's `error` parameter went into the log as it came, so a newline in
it wrote a line of its own ("log forging"). Every untrusted value is now logged through
`logsafe.quoted()`: escaped (no line breaks) and bounded.
"""
from __future__ import annotations

import logging

import pytest

from tests.conftest import row_counts

LONGEST_LOG_LINE = 1000


@pytest.fixture
def tool_log(caplog):
    caplog.set_level(logging.INFO, logger="lti_tool")

    def lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name.startswith("lti_tool")]

    return lines


def assert_single_lines(lines: list[str]) -> None:
    assert lines, "nothing was logged"
    for line in lines:
        assert "\n" not in line and "\r" not in line, f"a value wrote a line of its own: {line!r}"
        assert len(line) <= LONGEST_LOG_LINE, f"log line of {len(line)} characters"


def test_platform_error_with_a_newline_logs_one_line(app, client, tool_log):
    before = row_counts(app)
    response = client.post("/lti/launch", data={
        "error": "x\nFAKE LINE", "error_description": "y\r\n2026-01-01 INFO lti_tool: forged",
    })
    assert response.status_code == 400 and "<h1" in response.get_data(as_text=True)
    lines = tool_log()
    assert_single_lines(lines)
    refusal = [line for line in lines if "platform returned an error" in line]
    assert len(refusal) == 1 and "FAKE LINE" in refusal[0] and "\\n" in refusal[0]
    assert row_counts(app) == before


def test_long_login_values_are_logged_bounded_on_one_line(app, client, platform, tool_log):
    fields = {**platform.login_initiation(user="student"),
              "iss": "https://evil.example.com/\nFAKE LINE" + "x" * 3000}
    response = client.post("/lti/login", data=fields)
    assert response.status_code == 403
    assert_single_lines(tool_log())


def test_forged_kid_is_logged_bounded_on_one_line(app, lms, tool_log):
    client = app.test_client()
    form = lms.start_login(client, as_="student")
    from tests.support import claims_of

    forged = lms.platform.sign_jwt(claims_of(form["id_token"]), header={"kid": "k\nFAKE LINE" + "x" * 5000})
    response = client.post("/lti/launch", data={"id_token": forged, "state": form["state"]})
    assert response.status_code == 401
    assert_single_lines(tool_log())


def test_unknown_custom_provider_is_logged_quoted(app, lms, tool_log):
    lms.launch("teacher", custom={"provider": "zoom\nFAKE LINE"})
    lines = tool_log()
    assert_single_lines(lines)
    assert any("custom provider" in line and "fake line" in line.lower() for line in lines)


def test_request_path_of_a_refused_request_is_logged_on_one_line(app, client, tool_log):
    """Error pages log the path; a percent-encoded newline in it must not start a line."""
    response = client.post("/lti/launch%0AFAKE%20LINE", data=b"x" * (300 * 1024),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert_single_lines(tool_log())
