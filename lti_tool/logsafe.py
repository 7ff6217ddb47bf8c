"""Untrusted values in log lines: quoted and bounded.

Whatever came from outside (a launch's claims, a webhook's ids, a query parameter) is logged
through `quoted()`: `repr` escapes newlines and control characters, so a value cannot write a
line of its own, and long values and containers are cut, so one request cannot flood the log.

    log.warning("launch refused: unknown issuer %s", quoted(body.get("iss")))
"""
from __future__ import annotations

import reprlib

DEFAULT_LIMIT = 200

_containers = reprlib.Repr()
_containers.maxlevel = 2
_containers.maxlist = _containers.maxtuple = _containers.maxset = _containers.maxdict = 5
_containers.maxstring = 60
_containers.maxother = 60


def quoted(value, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as a quoted, escaped and bounded piece of a log line."""
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "replace")
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value)} characters)"
    shown = _containers.repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def without_query_values(url: str) -> str:
    """A URL with its query values written as `…` (`/x?registration_token=…`): some URLs carry
    credentials there (a platform may pass its registration token in the configuration URL)."""
    if not isinstance(url, str) or "?" not in url:
        return url
    base, _, query = url.partition("?")
    names = [pair.split("=", 1)[0][:40] for pair in query.split("#", 1)[0].split("&") if pair]
    return base + "?" + "&".join(f"{name}=…" for name in names)


def quoted_url(url, limit: int = DEFAULT_LIMIT) -> str:
    """`quoted()` for a URL from outside, its query values hidden."""
    return quoted(without_query_values(url), limit)
