"""The inbox and what it feeds: class sessions and merged attendance intervals.

Every authenticated provider event is checked and stored first (`store_events`, each on its
own, deduplicated by its key), then applied (`apply_rows`). Applying never accumulates: a
person's intervals in a session are recomputed from all of that session's stored events, so the
result is the same whatever the order or the number of times events arrive. Events for meetings
the tool does not know are kept (status `unknown_meeting`) and applied by
`flask --app wsgi webhooks replay` later.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..extensions import db
from ..logsafe import quoted
from ..models import UNSTORABLE, AttendanceInterval, ClassSession, ProviderEvent, Room, User, column_length, utcnow
from . import events as E

log = logging.getLogger(__name__)

# The times an event may report: before 2000, or more than a day ahead of this server's clock
# (skew allowed), is a broken or forged value — and far enough out does not fit a datetime.
EARLIEST_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
FUTURE_SLACK_MS = 24 * 3600 * 1000
# Refusals logged one by one per callback; beyond, a count (one request cannot flood the log).
REFUSALS_LOGGED = 10

# Sources whose end time is the provider's own outrank those that only noticed the end.
END_SOURCE_RANK = {"webhook": 3, "analytics": 3, "end_callback": 2, "poll": 1}


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the inbox ----------------------------------------------------------------------------------
@dataclass
class Receipt:
    """What the inbox did with one callback's events."""

    new: list[ProviderEvent] = field(default_factory=list)  # stored now
    retried: list[ProviderEvent] = field(default_factory=list)  # stored before, still waiting to be applied
    refused: list[str] = field(default_factory=list)  # why each refused event was refused


def refusal_reason(event: E.IncomingEvent, now_ms: int) -> str | None:
    """Why this event cannot go into the inbox as it is, or None. Ids and kinds must fit their
    columns and hold no control characters; a name only needs the latter (it is cut to fit)."""
    fields = (
        ("provider", event.provider, ProviderEvent.provider),
        ("source", event.source, ProviderEvent.source),
        ("kind", event.kind, ProviderEvent.kind),
        ("meeting id", event.meeting_id, ProviderEvent.meeting_id),
        ("run id", event.run_id, ProviderEvent.run_id),
        ("connection", event.connection or "", ProviderEvent.external_user_id),
        ("user id", event.external_user_id or "", ProviderEvent.external_user_id),
        ("role", event.role or "", ProviderEvent.role),
        ("name", event.user_name or "", None),
    )
    for what, value, column in fields:
        problem = _text_problem(what, value, column)
        if problem:
            return problem
    if not event.meeting_id:
        return "no meeting id"
    if not isinstance(event.payload, dict):
        return "payload is not an object"
    if event.run_started_at_ms is not None and _time_problem(event.run_started_at_ms, now_ms):
        return "run start " + _time_problem(event.run_started_at_ms, now_ms)
    return _time_problem(event.occurred_at_ms, now_ms)


def _text_problem(what: str, value, column) -> str | None:
    if not isinstance(value, str):
        return f"{what} is not text: {quoted(value, 40)}"
    if UNSTORABLE.search(value):
        return f"{what} {quoted(value, 40)} holds control characters"
    if column is not None and len(value) > column_length(column):
        return f"{what} {quoted(value, 40)} is longer than {column_length(column)} characters"
    return None


def _time_problem(moment, now_ms: int) -> str | None:
    if isinstance(moment, bool) or not isinstance(moment, int):
        return f"time {quoted(moment, 40)} is not a whole number of milliseconds"
    if not EARLIEST_EVENT_MS <= moment <= now_ms + FUTURE_SLACK_MS:
        return f"time {quoted(moment, 40)} ms is before 2000 or more than a day ahead"
    return None


def _storable_key(event: E.IncomingEvent) -> str:
    # A key longer than its column is hashed whole: cutting it could make two events one.
    key = event.dedupe_key
    if len(key) <= column_length(ProviderEvent.dedupe_key):
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _values_of(event: E.IncomingEvent, status: str) -> dict:
    return {
        "provider": event.provider,
        "source": event.source,
        "kind": event.kind,
        "dedupe_key": _storable_key(event),
        "meeting_id": event.meeting_id,
        "run_id": event.run_id,
        "run_started_at": from_ms(event.run_started_at_ms) if event.run_started_at_ms is not None else None,
        "external_user_id": event.external_user_id,
        "user_name": (event.user_name or "")[: column_length(ProviderEvent.user_name)],
        "role": event.role or "",
        "occurred_at": from_ms(event.occurred_at_ms),
        "payload": {**(event.payload or {}), **({"connection": event.connection} if event.connection else {})},
        "status": status,
        "received_at": utcnow(),
    }


def store_events(events: list[E.IncomingEvent], status: str = "pending") -> Receipt:
    """Check each event, insert the storable ones in one statement (duplicates skipped by the
    database: ON CONFLICT DO NOTHING), and commit. If the database refuses the statement (one
    value it cannot hold), each event is inserted on its own instead, so that one costs only
    itself. A duplicate still waiting (pending: stored by a request that failed before applying
    it; or an unconfirmed end) is handed back in `retried`."""
    receipt = _store(events, status)
    db.session.commit()
    return receipt


def _store(events: list[E.IncomingEvent], status: str, savepoint: bool = True) -> Receipt:
    """`store_events` without the commit. `savepoint=False` when nothing else was written in this
    transaction (a request's first write): a refused statement then rolls back the transaction."""
    receipt, now_ms, values = Receipt(), to_ms(utcnow()), {}
    for event in events:
        reason = refusal_reason(event, now_ms)
        if reason is not None:
            receipt.refused.append(f"{event.kind} for meeting {quoted(event.meeting_id, 40)}: {reason}")
            continue
        row = _values_of(event, status)
        values.setdefault(row["dedupe_key"], row)  # the same event twice in one delivery: once
    if values:
        try:
            with db.session.begin_nested() if savepoint else nullcontext():
                _insert_new(list(values.values()), receipt)
        except (SQLAlchemyError, ValueError):  # ValueError: text the driver cannot encode
            if not savepoint:
                db.session.rollback()
            receipt.new, receipt.retried = [], []
            _insert_one_by_one(list(values.values()), receipt)
    return receipt


def _insert_new(values: list[dict], receipt: Receipt) -> None:
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    # Core, not the ORM's bulk insert: its statement is compiled once and cached.
    table = ProviderEvent.__table__
    statement = insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)
    ids = list(db.session.scalars(statement, values))
    receipt.new = list(db.session.scalars(select(ProviderEvent).where(ProviderEvent.id.in_(ids)))) if ids else []
    stored_now = {row.dedupe_key for row in receipt.new}
    seen_before = [row["dedupe_key"] for row in values if row["dedupe_key"] not in stored_now]
    if seen_before:
        for stored in db.session.scalars(select(ProviderEvent).where(ProviderEvent.dedupe_key.in_(seen_before))):
            _note_stored_before(stored, receipt)


def _insert_one_by_one(values: list[dict], receipt: Receipt) -> None:
    for value in values:
        row = ProviderEvent(**value)
        try:
            with db.session.begin_nested():
                db.session.add(row)
            receipt.new.append(row)
        except IntegrityError as exc:
            _note_duplicate(row, exc, receipt)
        except SQLAlchemyError as exc:
            receipt.refused.append(f"{row.kind} for meeting {quoted(row.meeting_id, 40)}: "
                                   f"the database refused it ({_error_name(exc)})")


def _note_duplicate(row: ProviderEvent, exc: IntegrityError, receipt: Receipt) -> None:
    stored = db.session.scalar(select(ProviderEvent).where(ProviderEvent.dedupe_key == row.dedupe_key))
    if stored is None:  # not a duplicate: another constraint of the database refused it
        receipt.refused.append(f"{row.kind} for meeting {quoted(row.meeting_id, 40)}: "
                               f"the database refused it ({_error_name(exc)})")
    else:
        _note_stored_before(stored, receipt)


def _note_stored_before(stored: ProviderEvent, receipt: Receipt) -> None:
    if stored.status in ("pending", "unconfirmed"):
        receipt.retried.append(stored)
    else:
        log.info("duplicate event ignored: %s", quoted(stored.dedupe_key))


def _error_name(exc: SQLAlchemyError) -> str:
    # The class names the failure; the message may quote the refused value.
    return type(getattr(exc, "orig", None) or exc).__name__


def log_refusals(what: str, refusals: list[str]) -> None:
    """One warning per refused event (the reasons quote untrusted values), at most
    REFUSALS_LOGGED per callback, then how many more."""
    for reason in refusals[:REFUSALS_LOGGED]:
        log.warning("%s: event refused: %s", what, reason)
    if len(refusals) > REFUSALS_LOGGED:
        log.warning("%s: %d more event(s) refused", what, len(refusals) - REFUSALS_LOGGED)


def prune_unknown_events(older_than: timedelta) -> tuple[int, datetime]:
    """Delete the events of meetings the tool does not know (other applications' meetings on the
    same video server, with people's names in them) received before `older_than` ago. Returns how
    many, and the cut-off. Ignored events stay: they belong to the tool's own rooms (a recording's
    report, kept for the recordings feature)."""
    cutoff = utcnow() - older_than
    result = db.session.execute(
        delete(ProviderEvent).where(ProviderEvent.status == "unknown_meeting", ProviderEvent.received_at < cutoff)
    )
    db.session.commit()
    return result.rowcount, cutoff


# Events applied per transaction: a person's intervals are rebuilt once per batch, not per event.
APPLY_BATCH = 500


def claim_pending(limit: int = APPLY_BATCH, ids: list[int] | None = None) -> list[ProviderEvent]:
    """Pending events for this transaction to apply (these ids only, when given), oldest first.
    On PostgreSQL they are locked FOR UPDATE SKIP LOCKED: any number of workers on any number of
    machines claim at once, each gets other events, and an event is applied by one of them only
    (it is no longer pending once that transaction commits; a claim made meanwhile re-reads it)."""
    query = select(ProviderEvent).where(ProviderEvent.status == "pending")
    if ids is not None:
        query = query.where(ProviderEvent.id.in_(ids))
    query = query.order_by(ProviderEvent.id).limit(limit).with_for_update(skip_locked=True)
    return list(db.session.scalars(query))


def apply_pending(limit: int = APPLY_BATCH) -> int:
    """The worker's part: apply a batch of the inbox's pending events, in one transaction. They
    were stored by requests that found others waiting (under load: applied here in large
    batches), or by a process that died before applying them. Returns how many."""
    rows = claim_pending(limit)
    if rows:
        apply_rows(rows)
    else:
        db.session.rollback()
    return len(rows)


# Held (for one transaction) by a web request applying events: a request that cannot take it
# only stores its events (PostgreSQL advisory lock; SQLite has one writer at a time anyway).
APPLIER_LOCK = 0x1AB0_E7E5


def _apply_here(mine: list[ProviderEvent]) -> bool:
    """Should this request apply its events itself? Only when the inbox is quiet: no other event
    pending and (PostgreSQL) no other request applying. Otherwise the worker is, or soon will be,
    applying a batch: these join it, and under load the requests are cheap inserts."""
    others = select(ProviderEvent.id).where(ProviderEvent.status == "pending",
                                            ProviderEvent.id.not_in([row.id for row in mine]))
    quiet = ~others.exists()
    if _postgres():
        quiet = func.pg_try_advisory_xact_lock(APPLIER_LOCK) & quiet
    return bool(db.session.scalar(select(quiet)))


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def replay(statuses=("pending", "unknown_meeting", "failed"), batch: int = APPLY_BATCH) -> dict[str, int]:
    """Apply again every stored event in these states, oldest first, `batch` per transaction;
    returns the new states. Events being applied elsewhere at the time are skipped (PostgreSQL)."""
    outcome: dict[str, int] = defaultdict(int)
    after = (from_ms(0), 0)  # where the last batch stopped: an event replayed again unknown is not redone
    while True:
        rows = list(db.session.scalars(
            select(ProviderEvent)
            .where(ProviderEvent.status.in_(statuses),
                   (ProviderEvent.occurred_at > after[0])
                   | ((ProviderEvent.occurred_at == after[0]) & (ProviderEvent.id > after[1])))
            .order_by(ProviderEvent.occurred_at, ProviderEvent.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ))
        if not rows:
            db.session.rollback()
            return dict(outcome)
        after = (rows[-1].occurred_at, rows[-1].id)
        for row in rows:
            row.status, row.error = "pending", None
        apply_rows(rows)
        for row in rows:
            outcome[row.status] += 1


def apply_event(row: ProviderEvent) -> None:
    apply_rows([row])


def apply_rows(rows: list[ProviderEvent], commit: bool = True) -> None:
    """Apply stored events in one transaction, the events of one meeting run together (their
    session locked once, each person's intervals rebuilt once). If a run's events fail together,
    they are applied one by one, each in a savepoint: a failing event is marked failed (and
    replayable) without undoing the others. The scores the new attendance changes are queued in
    the same transaction (the outbox), once per room however many events."""
    rooms_to_grade: dict[int, Room] = {}
    # Sessions are locked in one order by every applier, so two batches never deadlock.
    ordered = sorted(rows, key=lambda r: (r.meeting_id, r.run_id or "", r.occurred_at, r.id or 0))
    for _, group in groupby(ordered, key=lambda r: (r.meeting_id, r.run_id or "")):
        for room, session in _apply_run(list(group)):
            if session is not None and session.ended_at is not None:
                rooms_to_grade[room.id] = room
    if rooms_to_grade:
        from ..grades.service import queue_room_scores

        for room in rooms_to_grade.values():
            queue_room_scores(room)
    if commit:
        db.session.commit()


def _apply_run(rows: list[ProviderEvent]) -> list[tuple]:
    """The events of one meeting run, together; one by one if that fails."""
    try:
        with db.session.begin_nested():
            return [_apply_together(rows)]
    except Exception:  # one of them is bad: find it, applying each on its own
        log.warning("applying %d event(s) of meeting %s together failed: one by one", len(rows),
                    quoted(rows[0].meeting_id))
    applied = []
    for row in rows:
        try:
            with db.session.begin_nested():
                applied.append(_apply(row))
        except Exception as exc:  # recorded on the row and replayable
            log.exception("applying event %s failed", row.id)
            row.status, row.error = "failed", f"{exc.__class__.__name__}: {exc}"[:2000]
    return applied


def _apply_together(rows: list[ProviderEvent]):
    """Apply events of one meeting run (in time order); returns (room, session) as `_apply`."""
    room = db.session.scalar(select(Room).where(Room.meeting_id == rows[0].meeting_id))
    if room is None:
        log.warning("%d event(s) for unknown meeting %s kept for replay", len(rows), quoted(rows[0].meeting_id))
        for row in rows:
            row.status = "unknown_meeting"
        return None, None
    applicable = [row for row in rows if _applicable(row)]
    for row in rows:
        if not _applicable(row):
            row.status, row.applied_at = "ignored", utcnow()
    if not applicable:
        return room, None
    session = _locked_session(room, applicable[0])
    everyone, people = False, set()
    for row in applicable:
        _take(session, room, row)
        everyone = everyone or row.kind in (E.MEETING_ENDED, E.MEETING_STARTED)
        people.add(row.external_user_id)
    db.session.flush()
    recompute_session(session, None if everyone else sorted(p for p in people if p is not None))
    return room, session


def _applicable(row: ProviderEvent) -> bool:
    return row.kind in E.KINDS and row.kind != E.RECORDING_READY and bool(row.run_id)


def _locked_session(room: Room, row: ProviderEvent) -> ClassSession:
    session = session_for(room, row.run_id, row.run_started_at)
    # One applier per session at a time (PostgreSQL; SQLite's write lock does the same): each then
    # recomputes from every event the others committed, not from a snapshot that misses them.
    db.session.refresh(session, with_for_update=True)
    return session


def _take(session: ClassSession, room: Room, row: ProviderEvent) -> None:
    """What one event changes of its session: its start or end; the event is then applied."""
    row.session_id = session.id
    # The start is the earliest moment any event of the session reports besides its end: the
    # provider's start event, or (a run id need not carry a time, webhooks come in any order, a
    # start event may be missed) the first join. An end that arrives first stays the end.
    if row.kind == E.MEETING_ENDED:
        _record_end(session, room, row)
    elif session.started_at is None or row.occurred_at < session.started_at:
        session.started_at = row.occurred_at
    row.status, row.applied_at = "applied", utcnow()


def _apply(row: ProviderEvent):
    """Apply one event; returns (room, session), either None when the event does not apply."""
    room = db.session.scalar(select(Room).where(Room.meeting_id == row.meeting_id))
    if room is None:
        log.warning("event %s for unknown meeting %s kept for replay", quoted(row.kind), quoted(row.meeting_id))
        row.status = "unknown_meeting"
        return None, None
    if not _applicable(row):
        row.status, row.applied_at = "ignored", utcnow()
        return room, None
    session = _locked_session(room, row)
    _take(session, room, row)
    db.session.flush()
    users = None if row.kind in (E.MEETING_ENDED, E.MEETING_STARTED) else [row.external_user_id]
    recompute_session(session, users)
    return room, session


def session_for(room: Room, run_id: str, started_at: datetime | None = None) -> ClassSession:
    """The class session of this run of the room's meeting, made on its first event."""
    session = _session_of(room, run_id)
    if session is not None:
        return session
    session = ClassSession(room_id=room.id, run_id=run_id, started_at=started_at)
    try:
        with db.session.begin_nested():
            db.session.add(session)
    except IntegrityError:  # created by a concurrent event
        session = _session_of(room, run_id)
    return session


def _session_of(room: Room, run_id: str) -> ClassSession | None:
    return db.session.scalar(select(ClassSession).where(ClassSession.room_id == room.id, ClassSession.run_id == run_id))


def _record_end(session: ClassSession, room: Room, row: ProviderEvent) -> None:
    if session.ended_at is None:
        # Absentees are graded from the roster: have the worker fetch it again for this course.
        room.resource_link.course.roster_fetched_at = None
    rank = END_SOURCE_RANK.get(row.source, 0)
    current = END_SOURCE_RANK.get(session.ended_by or "", 0)
    if session.ended_at is None or rank > current or (rank == current and row.occurred_at < session.ended_at):
        session.ended_at, session.ended_by = row.occurred_at, row.source
    # The provider says this run is over: so is the room, unless a newer run has started.
    if room.run_id in (None, session.run_id):
        room.running = False
        if room.started_since_last_end:
            room.ended_at = utcnow()


# --- intervals ----------------------------------------------------------------------------------
def connection_of(row: ProviderEvent) -> str:
    """One person may be connected several times at once (two tabs, a reconnect): join and
    leave are paired per connection before the person's intervals are merged. The provider
    names the connection (`IncomingEvent.connection`); without one, one per source."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    return str(payload.get("connection") or row.source)


def _pair(rows: list[ProviderEvent], session: ClassSession) -> list[tuple[datetime, datetime | None]]:
    # At the same instant a leave comes before a join, so a reconnect stays one interval.
    ordered = sorted(rows, key=lambda r: (r.occurred_at, 0 if r.kind == E.USER_LEFT else 1))
    intervals, opened = [], None
    for row in ordered:
        if row.kind == E.USER_JOINED and opened is None:
            opened = row.occurred_at
        elif row.kind == E.USER_LEFT and opened is not None:
            intervals.append((opened, row.occurred_at))
            opened = None
    if opened is not None:
        intervals.append((opened, session.ended_at))  # still in the room, or closed at the end
    return intervals


def merge_intervals(intervals):
    """Union of intervals; an open one (end None) absorbs everything after its start."""
    far = datetime.max.replace(tzinfo=UTC)
    merged = []
    for start, end in sorted(intervals, key=lambda i: i[0]):
        end_key = end or far
        if merged and start <= (merged[-1][1] or far):
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, None if end is None or last_end is None else max(last_end, end_key))
        else:
            merged.append((start, end))
    return merged


def _clip(intervals, session: ClassSession):
    clipped = []
    for start, end in intervals:
        if session.started_at is not None and start < session.started_at:
            start = session.started_at
        if session.ended_at is not None and (end is None or end > session.ended_at):
            end = session.ended_at
        if end is None or end > start:
            clipped.append((start, end))
    return clipped


def recompute_session(session: ClassSession, external_user_ids: list[str] | None = None) -> None:
    """Rebuild the merged intervals of these people (everyone when None) from the events."""
    query = select(ProviderEvent).where(
        ProviderEvent.session_id == session.id,
        ProviderEvent.status == "applied",
        ProviderEvent.kind.in_((E.USER_JOINED, E.USER_LEFT)),
        ProviderEvent.external_user_id.is_not(None),
    )
    if external_user_ids is not None:
        query = query.where(ProviderEvent.external_user_id.in_(external_user_ids))
    by_user: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in db.session.scalars(query):
        by_user[row.external_user_id][connection_of(row)].append(row)
    users = external_user_ids if external_user_ids is not None else list(by_user)
    merged = {}
    for external_id in users:
        intervals = [i for rows in by_user.get(external_id, {}).values() for i in _pair(rows, session)]
        merged[external_id] = _clip(merge_intervals(intervals), session)
    _replace_intervals(session, merged)


def _replace_intervals(session: ClassSession, merged: dict[str, list]) -> None:
    """These people's intervals in the session, instead of theirs before (three statements)."""
    people = [p for p in merged if p is not None]
    if not people:
        return
    db.session.execute(
        delete(AttendanceInterval).where(
            AttendanceInterval.session_id == session.id, AttendanceInterval.external_user_id.in_(people)
        )
    )
    user_ids = dict(db.session.execute(select(User.public_id, User.id).where(User.public_id.in_(people))).all())
    db.session.add_all(
        AttendanceInterval(session_id=session.id, external_user_id=external_id, user_id=user_ids.get(external_id),
                           joined_at=start, left_at=end)
        for external_id in people
        for start, end in merged[external_id]
    )


def receive(events: list[E.IncomingEvent]) -> Receipt:
    """Store the events and, in the same transaction, apply them — unless other events are
    waiting in the inbox: then the worker applies these too, in its next batch (under load, a
    request only stores: one INSERT). Committed before the answer: nothing is lost from here on.
    When applying fails, the events are stored again on their own and wait as pending for the
    worker: the answer is still a success."""
    receipt = _store(events, "pending", savepoint=False)
    try:
        if receipt.new or receipt.retried:
            _apply_or_queue(receipt)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("applying %d event(s) failed: stored for the worker to apply",
                      len(receipt.new) + len(receipt.retried))
        return store_events(events)
    return receipt


def _apply_or_queue(receipt: Receipt) -> None:
    # An end waiting for confirmation is not pending: the worker would not apply it.
    ready = [row for row in receipt.retried if row.status != "pending"]
    if _apply_here(receipt.new + receipt.retried):
        # The new rows are this transaction's alone; pending ones stored before may be a worker's.
        earlier = [row.id for row in receipt.retried if row.status == "pending"]
        ready += receipt.new + (claim_pending(len(earlier), ids=earlier) if earlier else [])
    if ready:
        apply_rows(ready, commit=False)
