"""Prometheus metrics: what the tool counts, and the text `/metrics` answers (health.py).

Counters and histograms live in the process that counts (a gunicorn worker, the `worker`
process, the quick-start server). With several processes, prometheus-client's multiprocess mode
keeps each process's values in files under `PROMETHEUS_MULTIPROC_DIR`, and a scrape of any web
worker adds up every process's files, the `worker` process's too when it shares the directory
(gunicorn.conf.py sets the directory up and forgets dead workers; docs/deployment.md). The
variable must be in the environment before prometheus-client is imported: prometheus-client
picks its storage once, at import.

What waits (grades not delivered yet, provider events not applied) is not counted by anyone: it
is read from the database at scrape time (`Backlog`), so every web worker answers the same.

Labels are few and bounded (an endpoint name, an outcome from a fixed list): never a user, a
room, an issuer or anything a request can choose.
"""
from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

log = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# Before any metric is made: an unlabelled metric would open its file at once (multiprocess mode).
# Every metric here has labels, so a process that counts nothing (a `flask` command) writes nothing.
if multiprocess_dir():
    os.makedirs(multiprocess_dir(), exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LAUNCHES = Counter("lti_tool_launches_total", "LTI launches at /lti/launch, by outcome "
                   "(room, review, deep_linking, continued: a page that finishes the launch, refused, error).",
                   ["outcome"])
LOGINS = Counter("lti_tool_logins_total", "OIDC login initiations at /lti/login, by outcome (ok, refused, error).",
                 ["outcome"])
JOINS = Counter("lti_tool_joins_total", "Joins at /rooms/<id>/join, by outcome (ok, refused, error).", ["outcome"])
ROOM_POLLS = Counter("lti_tool_room_polls_total", "Status polls of room pages (/rooms/<id>/status), by outcome "
                     "(ok, refused, error).", ["outcome"])
WEBHOOK_EVENTS = Counter("lti_tool_webhook_events_total", "Provider events received by webhooks, by provider "
                         "and what became of them (applied, ignored, unknown_meeting, failed, pending, duplicate, "
                         "refused).", ["provider", "outcome"])
GRADE_DELIVERIES = Counter("lti_tool_grade_deliveries_total", "Score deliveries to platforms, by outcome "
                           "(delivered, superseded, retry, failed, given_up).", ["outcome"])
RESPONSES = Counter("lti_tool_http_failures_total", "Answers with a 4xx or 5xx status, by endpoint and status "
                    "class.", ["endpoint", "status"])
LATENCY = Histogram("lti_tool_http_request_duration_seconds", "Time to answer a request, by endpoint.",
                    ["endpoint"], buckets=LATENCY_BUCKETS)


class Backlog:
    """Gauges read from the database at scrape time: what waits for the worker. `read` answers
    the administration page's backlog (admin.service.backlog, every platform's)."""

    def __init__(self, read):
        self.read = read

    def collect(self):
        try:
            waiting = self.read()
        except SQLAlchemyError as exc:  # the counters are still worth a scrape; /healthz says 503
            db.session.rollback()
            log.warning("metrics: the backlog could not be read: %s", exc.__class__.__name__)
            return []
        grades = GaugeMetricFamily("lti_tool_grades_pending", "Score deliveries waiting to be sent, by whether an "
                                   "attempt failed already (retrying) or not (new).", labels=["state"])
        grades.add_metric(["new"], waiting.grades_pending - waiting.grades_retrying)
        grades.add_metric(["retrying"], waiting.grades_retrying)
        events = GaugeMetricFamily("lti_tool_events_unapplied", "Provider events stored but not applied, by status.",
                                   labels=["status"])
        for status in ("pending", "failed", "unknown_meeting"):
            events.add_metric([status], waiting.events.get(status, 0))
        db.session.rollback()  # a read only: no transaction left open on the scrape's connection
        return [grades, events]


def exposition(read_backlog) -> bytes:
    """The text of one scrape: every process's counters (multiprocess mode) or this process's
    (with its CPU and memory), then the backlog gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    waiting = CollectorRegistry()
    waiting.register(Backlog(read_backlog))
    return generate_latest(registry) + generate_latest(waiting)


def forget_dead_process(pid: int) -> None:
    """gunicorn's `child_exit`: a dead worker's live gauges go (its counters stay counted)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
