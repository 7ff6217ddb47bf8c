"""Access logs never write the secrets some URLs carry: the shipped gunicorn set-up and the
quick-start server, each run as a real process and read back."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lti_tool.access_log import redact_request_line, redact_target

PROJECT = Path(__file__).resolve().parent.parent
SECRETS = {
    "page ticket": "PAGETICKETSECRET",
    "webhook checksum": "CHECKSUMSECRET",
    "end callback signature": "SIGNATURESECRET",
    "registration token": "REGISTRATIONSECRET",
    "referer ticket": "REFERERSECRET",
    "calendar mac": "CALENDARMACSECRET",
}


@pytest.mark.parametrize("target, expected", [
    ("/rooms/3?t=abc.def", "/rooms/3?t=…"),
    ("/rooms/3/attendance?t=abc&notice=Saved", "/rooms/3/attendance?t=…&notice=…"),
    ("/webhooks/bbb?checksum=0f0f", "/webhooks/bbb?checksum=…"),
    ("/webhooks/bbb/end?meetingID=m&sig=99", "/webhooks/bbb/end?meetingID=…&sig=…"),
    (
        "/lti/register?openid_configuration=x&registration_token=y",
        "/lti/register?openid_configuration=…&registration_token=…",
    ),
    ("http://tool.example/rooms/1/live?t=x#lk=token", "http://tool.example/rooms/1/live?t=…"),
    ("/rooms/1?junk-without-equals", "/rooms/1?junk-without-equals=…"),
    ("/healthz?verbose=1", "/healthz?verbose=1"),
    ("/static/style.css?v=3", "/static/style.css?v=3"),
    ("/rooms/1", "/rooms/1"),
    ("-", "-"),
])
def test_query_values_of_the_tools_routes_are_hidden(target, expected):
    assert redact_target(target) == expected


def test_request_lines_keep_method_and_protocol():
    assert redact_request_line("GET /rooms/1?t=x HTTP/1.1") == "GET /rooms/1?t=… HTTP/1.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(database_url, keys_dir, tmp_path) -> dict:
    config = tmp_path / "tool_config.json"
    config.write_text(json.dumps({}))
    return {**os.environ, "DATABASE_URL": database_url, "KEYS_DIR": str(keys_dir), "TOOL_CONFIG": str(config),
            "SECRET_KEY": "access-log-test", "TOOL_BASE_URL": "http://127.0.0.1", "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}  # not the project's instance/


def _wait_until_up(url: str, process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the server exited: " + process.stdout.read().decode(errors="replace"))
        try:
            requests.get(url + "/healthz", timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a first answer slow under load
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def _requests_with_secrets(url: str) -> None:
    requests.get(f"{url}/rooms/1", params={"t": SECRETS["page ticket"]},
                 headers={"Referer": f"{url}/rooms/1?t={SECRETS['referer ticket']}"}, timeout=5)
    requests.post(f"{url}/webhooks/bbb", params={"checksum": SECRETS["webhook checksum"]}, data={"event": "[]"},
                  timeout=5)
    requests.get(f"{url}/webhooks/bbb/end", params={"meetingID": "m", "sig": SECRETS["end callback signature"]},
                 timeout=5)
    requests.get(f"{url}/lti/register", params={"registration_token": SECRETS["registration token"],
                                                "openid_configuration": "http://lms.example/openid"}, timeout=5)
    requests.get(f"{url}/calendar/7.3.{SECRETS['calendar mac']}.ics", timeout=5)


def _stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output.decode(errors="replace")


def _assert_logged_without_secrets(log: str) -> None:
    assert "/rooms/1?t=…" in log and "/webhooks/bbb?checksum=…" in log, log[-2000:]
    assert "/calendar/7.3.….ics" in log, log[-2000:]
    for what, secret in SECRETS.items():
        assert secret not in log, f"the {what} is in the access log"


def _log_of_a_server_sent_secrets(command, environment: dict) -> str:
    """Start the server (`command(port)`) as its own process, send it requests carrying
    secrets, stop it, and return everything it printed."""
    port = _free_port()
    process = subprocess.Popen(command(port), cwd=PROJECT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        _requests_with_secrets(url)
    finally:
        log = _stop(process)
    return log


def test_gunicorn_with_the_shipped_configuration_logs_no_secrets(migrated, database_url, keys_dir, tmp_path):
    # Started in the project directory without -c: gunicorn reads gunicorn.conf.py by itself.
    def command(port):
        return [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}", "wsgi:app"]

    _assert_logged_without_secrets(
        _log_of_a_server_sent_secrets(command, _environment(database_url, keys_dir, tmp_path)))


def test_quick_start_server_logs_no_secrets(migrated, database_url, keys_dir, tmp_path):
    def command(port):
        return [sys.executable, "-m", "flask", "--app", "wsgi", "serve", "--port", str(port)]

    _assert_logged_without_secrets(
        _log_of_a_server_sent_secrets(command, _environment(database_url, keys_dir, tmp_path)))
