"""Delivering the outbox: pending `ScoreDelivery` rows to the platform's AGS score service.

Any number of workers may run, in any number of processes on any number of machines (`flask
--app wsgi worker`, or the thread inside the embedded server). A worker claims a batch of due
rows in one statement that sets a lease (`locked_until`): `UPDATE … WHERE id IN (SELECT … FOR
UPDATE SKIP LOCKED)` on PostgreSQL, so concurrent claims never wait for each other nor take the
same row; on SQLite the same statement runs under the database's one write lock. The batch is
sent by a few threads of the worker (DELIVERY_THREADS), each with its own database session and
kept-alive HTTP session. Each row is marked delivered as soon as the platform has taken it, so a
worker killed mid-batch leaves only its unsent rows (and at most one in flight per thread): the
lease runs out and any worker sends them. A worker whose lease is about to run out stops and
gives its unsent rows back rather than race the next one (docs/queues.md).

Outcomes: delivered; 409 (the platform holds a score as new as ours at one-second resolution)
→ a later timestamp, sent again at once; timeouts, 5xx and 429 → retry with exponential backoff
from RETRY_BASE_SECONDS (Retry-After honoured) until MAX_ATTEMPTS, then failed; other 4xx →
failed with the platform's message, no retry storm. Failed rows show on the teacher's page.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import aliased, joinedload

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


def _lease_seconds() -> float:
    return float(current_app.config["DELIVERY_LEASE_SECONDS"])


def _due(now, limit: int):
    return (
        select(ScoreDelivery.id)
        .where(
            ScoreDelivery.status == "pending",
            ScoreDelivery.next_attempt_at <= now,
            or_(ScoreDelivery.locked_until.is_(None), ScoreDelivery.locked_until < now),
        )
        .order_by(ScoreDelivery.next_attempt_at, ScoreDelivery.id)
        .limit(limit)
    )


def due_deliveries(limit: int = 50) -> list[int]:
    return db.session.scalars(_due(utcnow(), limit)).all()


def claim_batch(limit: int | None = None) -> tuple[list[int], datetime]:
    """Lease up to `limit` due rows (DELIVERY_BATCH_SIZE) to this worker in one statement;
    returns their ids and the lease's end, which also marks them as this claim's own."""
    now = utcnow()
    lease_end = now + timedelta(seconds=_lease_seconds())
    limit = limit or int(current_app.config["DELIVERY_BATCH_SIZE"])
    # SKIP LOCKED: rows another worker is claiming right now are left to it (PostgreSQL; SQLite
    # has no row locks and ignores it: its write lock makes the statement atomic).
    due = _due(now, limit).with_for_update(skip_locked=True).scalar_subquery()
    ids = db.session.scalars(
        update(ScoreDelivery).where(ScoreDelivery.id.in_(due))
        .values(locked_until=lease_end).returning(ScoreDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted(ids), lease_end


def claim(delivery_id: int) -> bool:
    """Lease one row (tests; the worker claims batches)."""
    now = utcnow()
    result = db.session.execute(
        update(ScoreDelivery)
        .where(
            ScoreDelivery.id == delivery_id,
            ScoreDelivery.status == "pending",
            or_(ScoreDelivery.locked_until.is_(None), ScoreDelivery.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=_lease_seconds()))
    )
    db.session.commit()
    return result.rowcount == 1


def deliver_due(limit: int | None = None, pool: ThreadPoolExecutor | None = None) -> int:
    """Claim one batch and send it (in `pool`'s threads when given); returns how many rows
    this call handled."""
    ids, lease_end = claim_batch(limit)
    threads = int(current_app.config["DELIVERY_THREADS"]) if pool is not None else 1
    if threads <= 1 or len(ids) <= 1:
        deliver_claimed(ids, lease_end)
        return len(ids)
    app = current_app._get_current_object()
    futures = [pool.submit(_deliver_in_context, app, ids[n::threads], lease_end)
               for n in range(min(threads, len(ids)))]
    wait(futures)
    for future in futures:
        future.result()  # a thread's error is this pass's error (its rows wait for the lease)
    return len(ids)


def _deliver_in_context(app, ids: list[int], lease_end: datetime) -> None:
    with app.app_context():
        try:
            deliver_claimed(ids, lease_end)
        finally:
            db.session.remove()


def deliver_claimed(ids: list[int], lease_end: datetime) -> None:
    """Send claimed rows one after the other while the lease lasts; give back the rest."""
    # Stop early enough that the last row sent is done before another worker may claim it.
    stop_at = lease_end - timedelta(seconds=_lease_seconds() / 4)
    session = db.session()
    # The rows, their links and rooms in one query, kept across the commits after each row (they
    # are this claim's own; a grading switched off meanwhile is seen by the next batch).
    claimed = {d.id: d for d in session.scalars(
        select(ScoreDelivery).where(ScoreDelivery.id.in_(ids))
        .options(joinedload(ScoreDelivery.resource_link).joinedload(ResourceLink.room)))}
    prefetched = Prefetched.of(list(claimed.values())) if claimed else None
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        for n, delivery_id in enumerate(ids):
            if utcnow() >= stop_at:
                release(ids[n:], lease_end)
                return
            delivery = claimed.get(delivery_id)
            if delivery is not None and delivery.status == "pending":
                deliver(delivery, prefetched)
    finally:
        session.expire_on_commit = expire_on_commit


@dataclass
class Prefetched:
    """What deliveries of one claimed batch would each ask the database for, asked once:
    which rows a newer score supersedes, each person's last timestamp sent, the registrations."""

    superseded: set[int]
    last_sent: dict[tuple[int, int], datetime]
    registrations: dict[tuple[str, str], object] = field(default_factory=dict)

    @classmethod
    def of(cls, deliveries: list[ScoreDelivery]) -> Prefetched:
        ids = [d.id for d in deliveries]
        newer = aliased(ScoreDelivery)
        superseded = set(db.session.scalars(select(ScoreDelivery.id).where(
            ScoreDelivery.id.in_(ids),
            exists().where(newer.resource_link_id == ScoreDelivery.resource_link_id,
                           newer.user_id == ScoreDelivery.user_id, newer.id > ScoreDelivery.id,
                           newer.status.in_(("pending", "delivered"))))))
        last_sent = {(link, user): at for link, user, at in db.session.execute(
            select(ScoreDelivery.resource_link_id, ScoreDelivery.user_id, func.max(ScoreDelivery.sent_timestamp))
            .where(ScoreDelivery.user_id.in_({d.user_id for d in deliveries}),
                   ScoreDelivery.resource_link_id.in_({d.resource_link_id for d in deliveries}),
                   ScoreDelivery.sent_timestamp.is_not(None))
            .group_by(ScoreDelivery.resource_link_id, ScoreDelivery.user_id))}
        return cls(superseded, last_sent)

    def registration(self, delivery: ScoreDelivery):
        key = (delivery.issuer, delivery.client_id)
        if key not in self.registrations:
            self.registrations[key] = current_app.extensions["registrations"].find(*key)
        return self.registrations[key]


def release(ids: list[int], lease_end: datetime) -> None:
    """Give rows back to every worker at once — those still under this claim's lease only."""
    db.session.execute(
        update(ScoreDelivery)
        .where(ScoreDelivery.id.in_(ids), ScoreDelivery.status == "pending",
               ScoreDelivery.locked_until == lease_end)
        .values(locked_until=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _next_timestamp(delivery: ScoreDelivery, prefetched: Prefetched | None = None):
    """Now, but strictly after the last timestamp sent for this person and line item at the
    platform's one-second resolution (Moodle answers 409 otherwise)."""
    if prefetched is not None:
        last = prefetched.last_sent.get((delivery.resource_link_id, delivery.user_id))
        return _after(last)
    return _after(db.session.scalar(
        select(ScoreDelivery.sent_timestamp)
        .where(
            ScoreDelivery.resource_link_id == delivery.resource_link_id,
            ScoreDelivery.user_id == delivery.user_id,
            ScoreDelivery.sent_timestamp.is_not(None),
        )
        .order_by(ScoreDelivery.sent_timestamp.desc())
        .limit(1)
    ))


def _after(last):
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


def _superseded(delivery: ScoreDelivery, prefetched: Prefetched | None = None) -> bool:
    if prefetched is not None:
        return delivery.id in prefetched.superseded
    newer = db.session.scalar(
        select(ScoreDelivery.id).where(
            ScoreDelivery.resource_link_id == delivery.resource_link_id,
            ScoreDelivery.user_id == delivery.user_id,
            ScoreDelivery.id > delivery.id,
            ScoreDelivery.status.in_(("pending", "delivered")),
        ).limit(1)
    )
    return newer is not None


def deliver(delivery: ScoreDelivery, prefetched: Prefetched | None = None) -> None:
    if _superseded(delivery, prefetched):
        _finish(delivery, "superseded")
        return
    link = delivery.resource_link
    if link.room is not None and not link.room.graded:
        _finish(delivery, "superseded")  # grading was turned off after it was queued
        return
    registration = (prefetched.registration(delivery) if prefetched is not None
                    else current_app.extensions["registrations"].find(delivery.issuer, delivery.client_id))
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
        timestamp = _next_timestamp(delivery, prefetched)
        outcome = _services().post_score(registration, lineitem, _score_body(delivery, timestamp))
        if outcome.kind != "conflict":
            break
        delivery.sent_timestamp = timestamp  # the platform has at least this one
        if prefetched is not None:
            prefetched.last_sent[(delivery.resource_link_id, delivery.user_id)] = timestamp
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
    delivery_id = delivery.id  # read before the commit, which may expire it
    db.session.commit()
    GRADE_DELIVERIES.labels(status).inc()
    log.info("score delivery %s: %s", delivery_id, status)


def _fail(delivery: ScoreDelivery, message: str, outcome: str = "failed", attempt_counted: bool = False) -> None:
    delivery.status, delivery.locked_until, delivery.last_error = "failed", None, message[:2000]
    if not attempt_counted:  # _retry has counted the attempt that made it give up
        delivery.attempts += 1
    db.session.commit()
    GRADE_DELIVERIES.labels(outcome).inc()
    log.warning("score delivery %s failed: %s", delivery.id, quoted(message, 500))


def _retry(delivery: ScoreDelivery, message: str, retry_after: float | None = None) -> None:
    delivery.attempts += 1
    if delivery.attempts >= MAX_ATTEMPTS:
        _fail(delivery, f"gave up after {delivery.attempts} attempts: {message}", "given_up", attempt_counted=True)
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
