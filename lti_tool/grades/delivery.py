"""Delivering the outbox: pending `ScoreDelivery` rows to the platform's AGS score service.

Any number of workers may run (`flask --app wsgi worker`, or the thread inside the embedded
server). A worker claims a row with a conditional UPDATE that sets a lease (`locked_until`);
only one worker wins a row, on PostgreSQL as on SQLite, and a worker killed mid-delivery loses
nothing: the lease runs out and the row is sent again. Sending twice is harmless: a score is a
whole value with a timestamp that only moves forward.

Outcomes: delivered; 409 (the platform holds a score as new as ours at one-second resolution)
→ a later timestamp, sent again at once; timeouts, 5xx and 429 → retry with exponential backoff
from RETRY_BASE_SECONDS (Retry-After honoured) until MAX_ATTEMPTS, then failed; other 4xx →
failed with the platform's message, no retry storm. Failed rows show on the teacher's page.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from ..extensions import db
from ..logsafe import quoted
from ..lti.platform_services import PlatformServiceError
from ..metrics import GRADE_DELIVERIES
from ..models import ResourceLink, ScoreDelivery, utcnow
from .gradebook import Gradebook

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 24  # with the 10-minute cap: a platform may be down for about three hours
BACKOFF_CAP_SECONDS = 600
ONE_SECOND = timedelta(seconds=1)


def _services():
    return current_app.extensions["platform_services"]


def due_deliveries(limit: int = 50) -> list[int]:
    now = utcnow()
    return db.session.scalars(
        select(ScoreDelivery.id)
        .where(
            ScoreDelivery.status == "pending",
            ScoreDelivery.next_attempt_at <= now,
            or_(ScoreDelivery.locked_until.is_(None), ScoreDelivery.locked_until < now),
        )
        .order_by(ScoreDelivery.next_attempt_at, ScoreDelivery.id)
        .limit(limit)
    ).all()


def claim(delivery_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(ScoreDelivery)
        .where(
            ScoreDelivery.id == delivery_id,
            ScoreDelivery.status == "pending",
            or_(ScoreDelivery.locked_until.is_(None), ScoreDelivery.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=float(current_app.config["DELIVERY_LEASE_SECONDS"])))
    )
    db.session.commit()
    return result.rowcount == 1


def deliver_due(limit: int = 50) -> int:
    """Send what is due; returns how many rows this call handled."""
    handled = 0
    for delivery_id in due_deliveries(limit):
        if claim(delivery_id):
            deliver(db.session.get(ScoreDelivery, delivery_id))
            handled += 1
    return handled


def _next_timestamp(delivery: ScoreDelivery):
    """Now, but strictly after the last timestamp sent for this person and line item at the
    platform's one-second resolution (Moodle answers 409 otherwise)."""
    last = db.session.scalar(
        select(ScoreDelivery.sent_timestamp)
        .where(
            ScoreDelivery.resource_link_id == delivery.resource_link_id,
            ScoreDelivery.user_id == delivery.user_id,
            ScoreDelivery.sent_timestamp.is_not(None),
        )
        .order_by(ScoreDelivery.sent_timestamp.desc())
        .limit(1)
    )
    now = utcnow()
    if last is not None and now.replace(microsecond=0) <= last.replace(microsecond=0):
        return last.replace(microsecond=0) + ONE_SECOND + timedelta(microseconds=now.microsecond)
    return now


def _score_body(delivery: ScoreDelivery, timestamp) -> dict:
    return {
        "userId": delivery.sub,
        "scoreGiven": delivery.score_given,
        "scoreMaximum": delivery.score_maximum,
        "activityProgress": delivery.activity_progress,
        "gradingProgress": delivery.grading_progress,
        "timestamp": timestamp.isoformat(timespec="microseconds"),
        "comment": delivery.comment,
    }


def lineitem_for(link: ResourceLink, registration) -> str | None:
    """The launch's line item, or one the tool found or made for this resource link earlier,
    or else one it finds or makes now — only where the platform grants the line-item scope
    (never under "grade sync only"). None when there is nowhere to grade."""
    gradebook = Gradebook.of(link)
    if gradebook.column:
        return gradebook.column
    if not gradebook.may_create_columns:
        return None
    url = _services().find_or_create_lineitem(
        registration,
        link.lineitems_url,
        resource_link_id=link.resource_link_id,
        resource_id=f"live-class-{link.id}",
        tag="attendance",
        label=f"{link.title or 'Live class'} — attendance",
        score_maximum=link.room.score_maximum if link.room else 100,
    )
    link.tool_lineitem_url = url
    db.session.commit()
    return url


def _superseded(delivery: ScoreDelivery) -> bool:
    newer = db.session.scalar(
        select(ScoreDelivery.id).where(
            ScoreDelivery.resource_link_id == delivery.resource_link_id,
            ScoreDelivery.user_id == delivery.user_id,
            ScoreDelivery.id > delivery.id,
            ScoreDelivery.status.in_(("pending", "delivered")),
        ).limit(1)
    )
    return newer is not None


def deliver(delivery: ScoreDelivery) -> None:
    if _superseded(delivery):
        _finish(delivery, "superseded")
        return
    link = delivery.resource_link
    if link.room is not None and not link.room.graded:
        _finish(delivery, "superseded")  # grading was turned off after it was queued
        return
    registration = current_app.extensions["registrations"].find(delivery.issuer, delivery.client_id)
    if registration is None:
        _fail(delivery, "the platform is no longer registered with the tool")
        return
    problem = Gradebook.of(link).problem()
    if problem:  # no token is asked for what the platform does not grant
        _fail(delivery, problem)
        return
    try:
        lineitem = lineitem_for(link, registration)
    except PlatformServiceError as exc:
        (_retry if exc.retryable else _fail)(delivery, f"line item: {exc}")
        return
    for _ in range(2):  # a 409 gets one immediate second try with a later timestamp
        timestamp = _next_timestamp(delivery)
        outcome = _services().post_score(registration, lineitem, _score_body(delivery, timestamp))
        if outcome.kind != "conflict":
            break
        delivery.sent_timestamp = timestamp  # the platform has at least this one
        db.session.commit()  # never hold a write open across a call to the platform
    if outcome.kind == "delivered":
        delivery.sent_timestamp = timestamp
        delivery.delivered_at = utcnow()
        _finish(delivery, "delivered")
    elif outcome.kind == "rejected":
        _fail(delivery, f"the platform refused the score ({outcome.status}): {outcome.message}")
    else:
        _retry(delivery, f"{outcome.kind} ({outcome.status}): {outcome.message}", outcome.retry_after)


def _finish(delivery: ScoreDelivery, status: str) -> None:
    delivery.status, delivery.locked_until, delivery.last_error = status, None, None
    delivery.attempts += 1
    db.session.commit()
    GRADE_DELIVERIES.labels(status).inc()
    log.info("score delivery %s: %s", delivery.id, status)


def _fail(delivery: ScoreDelivery, message: str, outcome: str = "failed") -> None:
    delivery.status, delivery.locked_until, delivery.last_error = "failed", None, message[:2000]
    delivery.attempts += 1
    db.session.commit()
    GRADE_DELIVERIES.labels(outcome).inc()
    log.warning("score delivery %s failed: %s", delivery.id, quoted(message, 500))


def _retry(delivery: ScoreDelivery, message: str, retry_after: float | None = None) -> None:
    delivery.attempts += 1
    if delivery.attempts >= MAX_ATTEMPTS:
        _fail(delivery, f"gave up after {delivery.attempts} attempts: {message}", "given_up")
        return
    base = float(current_app.config["RETRY_BASE_SECONDS"])
    delay = min(BACKOFF_CAP_SECONDS, base * 2 ** (delivery.attempts - 1))
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), 3600.0))
    delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    delivery.locked_until, delivery.last_error = None, message[:2000]
    db.session.commit()
    GRADE_DELIVERIES.labels("retry").inc()
    log.info("score delivery %s: retry in %.1fs after %s", delivery.id, delay, quoted(message, 500))


def retry_failed(link_id: int) -> int:
    """The teacher's retry button: failed rows of this resource link go back to pending."""
    result = db.session.execute(
        update(ScoreDelivery)
        .where(ScoreDelivery.resource_link_id == link_id, ScoreDelivery.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), locked_until=None)
    )
    db.session.commit()
    return result.rowcount
