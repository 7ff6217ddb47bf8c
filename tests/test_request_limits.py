"""Request bodies the tool will not read: 413 before the body is read, on every route.

Observed before: a 300 MB POST took a worker to 1 GB on /webhooks/bbb. Over a real socket, the
tool must answer 413 as soon as it has the headers, without waiting for the body to arrive.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import row_counts

HUGE = 300 * 1024 * 1024


def _send_headers_only(base_url: str, path: str, content_type: str, length: int = HUGE, chunked: bool = False):
    """Announce a body of `length` bytes, send only a few of them, and read the answer."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
            f"{framing}Accept: application/json\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + (b"4\r\nabcd\r\n" if chunked else b"abcd"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode("latin-1")


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/webhooks/bbb", "application/x-www-form-urlencoded"),
        ("/webhooks/bbb/analytics", "application/json"),
        ("/webhooks/bbb/recording-ready", "application/x-www-form-urlencoded"),
        ("/webhooks/livekit", "application/webhook+json"),
        ("/lti/launch", "application/x-www-form-urlencoded"),
        ("/lti/login", "application/x-www-form-urlencoded"),
        ("/rooms/1/settings", "application/x-www-form-urlencoded"),
    ],
)
def test_announced_huge_body_gets_413_before_it_is_read(live, path, content_type):
    before = row_counts(live.app)
    answer = _send_headers_only(live.url, path, content_type)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert row_counts(live.app) == before


def test_413_on_a_machine_route_is_json_and_on_a_page_route_is_a_page(live):
    webhook = requests.post(live.url + "/webhooks/bbb", data=b"x" * (5 * 1024 * 1024),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert webhook.status_code == 413
    assert webhook.headers["Content-Type"].startswith("application/json")
    assert "too large" in webhook.json()["error"]

    launch = requests.post(live.url + "/lti/launch", data={"id_token": "x" * (1024 * 1024)})
    assert launch.status_code == 413
    assert launch.headers["Content-Type"].startswith("text/html")
    assert "too large" in launch.text


def test_chunked_body_over_the_limit_is_refused_while_it_is_read(live):
    """No Content-Length to look at: the limit applies to what is read, and stops it."""
    body = (b"event=" + b"x" * (5 * 1024 * 1024))

    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    answer = requests.post(live.url + "/webhooks/bbb?checksum=" + "0" * 64, data=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413


def test_bodies_of_normal_size_still_pass(live):
    # A well-formed but unauthenticated webhook is refused for its checksum, not its size.
    answer = requests.post(live.url + "/webhooks/bbb?checksum=" + "0" * 64, data={"event": "[]"})
    assert answer.status_code == 401
