"""What every provider's callback views share (they live in the provider packages, under
/webhooks/<name>/): refusals answered as JSON with one log line, and the answer to an
accepted batch of events.

A callback is authenticated the way its server signs it; one that fails answers 401 and stores
nothing; a body unreadable as a whole answers 400. Otherwise the answer is 200 with counts,
`{"received": 3, "new": 2, "refused": 1}`: each event is checked and stored on its own, and a
refused one (logged with its reason) costs only itself — a 4xx would make a provider retry, and
bbb-webhooks then drops its hook for every meeting on the server.
"""
from __future__ import annotations

import logging
from collections import Counter

from flask import jsonify, request

from .attendance.events import RECORDING_READY, Batch
from .attendance.service import log_refusals, receive
from .logsafe import quoted
from .metrics import WEBHOOK_EVENTS
from .recordings.service import mark_stale

log = logging.getLogger(__name__)


def refuse(status: int, message: str, reason: str):
    """A JSON refusal (`{"error": message}`) and a log line with the reason (already quoted)."""
    log.warning("%s %s refused (%s): %s", request.method, quoted(request.path), status, reason)
    return jsonify({"error": message}), status


def _count_events(batch: Batch, receipt) -> None:
    """Each event the callback carried, by what became of it: its stored row's status (applied,
    ignored, pending, failed, unknown_meeting), refused, or a duplicate of one stored before."""
    provider = request.path.split("/")[2]  # /webhooks/<name>…: a route of a loaded provider package
    rows = receipt.new + receipt.retried
    outcomes = Counter(row.status for row in rows)
    outcomes["refused"] += len(batch.refused) + len(receipt.refused)
    outcomes["duplicate"] += len(batch.events) - len(rows) - len(receipt.refused)
    for outcome, count in outcomes.items():
        if count > 0:
            WEBHOOK_EVENTS.labels(provider, outcome).inc(count)


def accept(batch: Batch, what: str):
    """Store and apply what the callback carried; answer with the counts."""
    receipt = receive(batch.events)
    mark_stale(e.meeting_id for e in batch.events if e.kind == RECORDING_READY)  # docs/recordings.md
    refused = batch.refused + receipt.refused
    log_refusals(what, refused)
    _count_events(batch, receipt)
    counts = {"received": len(batch.events) + len(batch.refused), "new": len(receipt.new), "refused": len(refused)}
    log.info("%s: %d event(s), %d new, %d refused", what, counts["received"], counts["new"], counts["refused"])
    return jsonify(counts)
