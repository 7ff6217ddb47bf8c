"""Bounded HTTP requests to learning platforms: key sets, OpenID configurations, registrations.

What answers at a platform's URL is not under the tool's control (and during a dynamic
registration, anyone may name the URL), so every request made here is bounded the same way:

* a total deadline: connecting, waiting for the headers and reading the body share it, and the
  body is read as it comes, so an answer that trickles in one byte a second is cut at the
  deadline (a plain read timeout would wait once per byte);
* a size cap on the body, checked against `Content-Length` first and while reading;
* redirects only on the URL's own origin (scheme, host and port), at most `MAX_REDIRECTS`, and
  none at all when the caller says so (a POST carrying a registration token never follows one).

Every failure raises `FetchError`, whose message names what was asked for (`what`), the URL
and the reason, with untrusted values quoted and query values hidden (a platform may pass a
credential in a URL's query): callers log it as it is.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from ..logsafe import quoted, quoted_url

MAX_REDIRECTS = 3
# A socket timeout this close to the deadline is the deadline's doing.
DEADLINE_SLACK_SECONDS = 0.05
READ_SIZE = 64 * 1024


class FetchError(Exception):
    """A request to a platform failed (unreachable, too slow, too large, a refused redirect)."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # where the answer came from (after same-origin redirects)


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


@dataclass(frozen=True)
class Limits:
    deadline_seconds: float
    max_bytes: int
    redirects: int = MAX_REDIRECTS


def fetch(session: requests.Session, url: str, *, what: str, limits: Limits, method: str = "GET",
          headers: Mapping[str, str] | None = None, data: bytes | None = None) -> Fetched:
    """One request within `limits`, any status answered (the caller decides what it means).

    `what` names the thing fetched in error messages ("the platform's keys")."""
    deadline = time.monotonic() + limits.deadline_seconds
    current = url
    for _ in range(limits.redirects + 1):
        response = _send(session, method, current, what, (deadline, limits), headers, data)
        with response:
            if not response.is_redirect or limits.redirects == 0:
                body = _read_body(response, current, what, deadline, limits)
                return Fetched(response.status_code, response.headers, body, current)
            target = urljoin(current, response.headers.get("Location", ""))
        if origin(target) != origin(url):
            raise FetchError(f"{what} at {quoted_url(url)}: redirect to {quoted_url(target)} refused (another origin)")
        current = target
    raise FetchError(f"{what} at {quoted_url(url)}: more than {limits.redirects} redirects")


def _send(session, method: str, url: str, what: str, bounds: tuple[float, Limits], headers, data) -> requests.Response:
    deadline, limits = bounds
    try:
        return session.request(
            method,
            url,
            data=data,
            stream=True,
            allow_redirects=False,
            # total: connecting and waiting for the headers share what is left of the deadline.
            timeout=urllib3.Timeout(total=max(deadline - time.monotonic(), 0.001)),
            headers={"Accept-Encoding": "identity", **(headers or {})},
        )
    except requests.RequestException as exc:
        _past_deadline(url, what, deadline, limits)
        raise FetchError(f"could not reach {what} at {quoted_url(url)}: {quoted(_scrubbed(str(exc), url))}") from exc


def _read_body(response: requests.Response, url: str, what: str, deadline: float, limits: Limits) -> bytes:
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limits.max_bytes:
        raise FetchError(f"{what} at {quoted_url(url)} is larger than {limits.max_bytes} bytes ({announced})")
    body = bytearray()
    while chunk := _read_some(response, url, what, deadline, limits):
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchError(f"{what} at {quoted_url(url)} is larger than {limits.max_bytes} bytes")
    return bytes(body)


def _read_some(response: requests.Response, url: str, what: str, deadline: float, limits: Limits) -> bytes:
    """At most one socket read (whatever has arrived), waiting no longer than the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        _past_deadline(url, what, deadline, limits)
    sock = getattr(response.raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(remaining)
    try:
        # read1 returns what one read brings (a drip of one byte, say), so the deadline is
        # checked between reads; decoding, if the server compresses anyway, is bounded too.
        return response.raw.read1(READ_SIZE, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        _past_deadline(url, what, deadline, limits)
        raise FetchError(f"could not read {what} from {quoted_url(url)}: {quoted(_scrubbed(str(exc), url))}") from exc


def _past_deadline(url: str, what: str, deadline: float, limits: Limits) -> None:
    """A connection or read that ended at the deadline failed because of it: say so (a socket
    timeout then reads 'Read timed out', which would hide the reason)."""
    if time.monotonic() >= deadline - DEADLINE_SLACK_SECONDS:
        raise FetchError(f"{what} at {quoted_url(url)} took longer than {limits.deadline_seconds:g} s")


def _scrubbed(text: str, url: str) -> str:
    """An error's text without the URL's query (requests names the URL it failed on)."""
    query = urlsplit(url).query
    return text.replace(query, "…") if query else text
