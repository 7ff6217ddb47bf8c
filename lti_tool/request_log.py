"""One log line per request, and the request's metrics (lti_tool/metrics.py).

The line (logger `lti_tool.requests`) says what was asked and how it ended — method, path,
status, duration — and, when the request named them, the LTI context: issuer, deployment,
context, resource link and user sub (a launch: `note_launch`, called by the launch view),
the room and the tool's user id (a room page, poll or join: `note_room`, called by rooms/access.py).
It never carries a query string, a ticket, a token or a cookie: the path only, a calendar
address's mac hidden (access_log.redact_path).

`LOG_FORMAT=json` makes every log record of the process one JSON object per line (the request
line's fields as keys); `text`, the default, keeps readable lines (`key=value` for the fields).

The same hook counts: answers 4xx/5xx by endpoint, the latency histogram by endpoint, and
logins, launches, joins and room polls by outcome — in one place, so the views and services
that another change may rewrite carry no metric calls.
"""
from __future__ import annotations

import json
import logging
import time

from flask import Flask, g, request

from . import metrics
from .access_log import redact_path
from .logsafe import quoted

log = logging.getLogger("lti_tool.requests")
STARTED = "lti_tool.started"  # kept with the request: one app context may serve several (tests)
# The LTI context's fields, in the order the text line writes them.
CONTEXT_FIELDS = ("issuer", "deployment", "context", "resource_link", "room", "user", "sub")


def note_launch(claims, recorded=None) -> None:
    """The launch's LTI context, for this request's log line."""
    g.lti_context = {
        "issuer": claims.issuer, "deployment": claims.deployment_id, "context": claims.context_id,
        "resource_link": claims.resource_link_id, "sub": claims.sub,
    }
    if recorded is not None:
        g.lti_context.update(room=recorded.room.id, user=recorded.enrolment.user_id)


def note_outcome(outcome: str) -> None:
    """What a launch became (room, review, deep_linking), for the launch counter."""
    g.launch_outcome = outcome


def note_room(room_id: int, user_id: int) -> None:
    """The room and the tool's user a room ticket named (rooms/access.py), for the log line.
    Noted as plain ids when the ticket is checked: after the view's commit, reading them from
    the rows would cost a query each."""
    g.lti_context = {**(g.get("lti_context") or {}), "room": room_id, "user": user_id}


def request_context() -> dict:
    """What this request is known to be about: a launch's claims, or a room ticket's room."""
    context = g.get("lti_context") or {}
    # Ids from a platform are bounded (their columns hold 255 characters): no flooding the log.
    return {name: context[name] if isinstance(context[name], int) else str(context[name])[:255]
            for name in CONTEXT_FIELDS if context.get(name) not in (None, "")}


def _outcome(status: int, success: str = "ok") -> str:
    if status >= 500:
        return "error"
    return "refused" if status >= 400 else success


def count(endpoint: str, status: int, seconds: float) -> None:
    """The request's metrics: latency, failures, and what the endpoint is counted for."""
    metrics.LATENCY.labels(endpoint).observe(seconds)
    if status >= 400:
        metrics.RESPONSES.labels(endpoint, f"{status // 100}xx").inc()
    if endpoint == "lti.launch":
        # A 200 without a recorded outcome is a page that finishes the launch in the browser.
        metrics.LAUNCHES.labels(_outcome(status, g.get("launch_outcome") or "continued")).inc()
    elif endpoint == "lti.login":
        metrics.LOGINS.labels(_outcome(status)).inc()
    elif endpoint == "rooms.join":
        metrics.JOINS.labels(_outcome(status)).inc()
    elif endpoint == "rooms.status":
        metrics.ROOM_POLLS.labels(_outcome(status)).inc()


def request_fields(status: int, seconds: float) -> dict:
    return {
        "method": request.method[:16], "path": redact_path(request.path)[:500], "status": status,
        "duration_ms": round(seconds * 1000, 1), **request_context(),
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and a request line's fields."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _bare(text: str) -> str:
    """`text` as it is when it cannot break the line or its words, else quoted."""
    return text if text.isprintable() and " " not in text else quoted(text)


def text_line(fields: dict) -> str:
    """`GET /rooms/3 200 12.5ms room=3 user=7`: the values are the tool's own or quoted."""
    head = f"{_bare(fields['method'])} {_bare(fields['path'])} {fields['status']} {fields['duration_ms']}ms"
    extra = " ".join(f"{name}={quoted(fields[name])}" for name in CONTEXT_FIELDS if name in fields)
    return f"{head} {extra}".rstrip()


def init_app(app: Flask) -> None:
    @app.before_request
    def start_clock():
        request.environ[STARTED] = time.perf_counter()
        g.pop("lti_context", None)  # an app context kept across requests (tests) starts clean
        g.pop("launch_outcome", None)

    @app.after_request
    def log_request(response):
        seconds = time.perf_counter() - request.environ.get(STARTED, time.perf_counter())
        endpoint = request.endpoint or "unmatched"  # a 404's path is the client's choice: not a label
        count(endpoint, response.status_code, seconds)
        if log.isEnabledFor(logging.INFO):
            fields = request_fields(response.status_code, seconds)
            # A record made directly: `log.info` would walk the stack for a caller no format shows
            # (measured: 2 µs of the line's 13, on every request).
            log.handle(log.makeRecord(log.name, logging.INFO, "request_log", 0, "%s", (text_line(fields),), None,
                                      extra={"fields": fields}))
        return response
