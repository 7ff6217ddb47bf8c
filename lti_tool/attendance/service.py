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
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..extensions import db
from ..logsafe import quoted
from ..models import AttendanceInterval, ClassSession, ProviderEvent, Room, User, utcnow
from . import events as E

log = logging.getLogger(__name__)

# The times an event may report: before 2000, or more than a day ahead of this server's clock
# (skew allowed), is a broken or forged value — and far enough out does not fit a datetime.
EARLIEST_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
FUTURE_SLACK_MS = 24 * 3600 * 1000
# C0 and C1 control characters (NUL included) and lone surrogates: no provider sends them in an
# id or a name, PostgreSQL cannot store NUL, and neither database can store a lone surrogate.
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Refusals logged one by one per callback; beyond, a count (one request cannot flood the log).
REFUSALS_LOGGED = 10

# Sources whose end time is the provider's own outrank those that only noticed the end.
END_SOURCE_RANK = {"webhook": 3, "analytics": 3, "end_callback": 2, "poll": 1}


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def bbb_internal_meeting_id(meeting_id: str, create_time: int) -> str:
    """BBB's internal id of one run of a meeting: sha1(meetingID) + "-" + createTime."""
    return f"{hashlib.sha1(meeting_id.encode()).hexdigest()}-{create_time}"


def _create_time_of(session_key: str) -> int | None:
    tail = session_key.rsplit("-", 1)[-1]
    if not (tail.isascii() and tail.isdigit() and len(tail) <= 15):
        return None
    millis = int(tail)
    return millis if millis >= EARLIEST_EVENT_MS else None


# --- the inbox ----------------------------------------------------------------------------------
@dataclass
class Receipt:
    """What the inbox did with one callback's events."""

    new: list[ProviderEvent] = field(default_factory=list)  # stored now
    retried: list[ProviderEvent] = field(default_factory=list)  # stored before, still waiting to be applied
    refused: list[str] = field(default_factory=list)  # why each refused event was refused


def _length(column) -> int:
    return column.property.columns[0].type.length


def fits(value: str, column) -> bool:
    """Could `value` be stored in (or looked up by) this string column: no longer than it, no
    control characters? (A lookup by NUL fails on PostgreSQL just as storing it does.)"""
    return len(value) <= _length(column) and not _UNSTORABLE.search(value)


def refusal_reason(event: E.IncomingEvent, now_ms: int) -> str | None:
    """Why this event cannot go into the inbox as it is, or None. Ids and kinds must fit their
    columns and hold no control characters; a name only needs the latter (it is cut to fit)."""
    fields = (
        ("provider", event.provider, ProviderEvent.provider),
        ("source", event.source, ProviderEvent.source),
        ("kind", event.kind, ProviderEvent.kind),
        ("meeting id", event.meeting_id, ProviderEvent.meeting_id),
        ("internal meeting id", event.session_key, ProviderEvent.internal_meeting_id),
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
    return _time_problem(event.occurred_at_ms, now_ms)


def _text_problem(what: str, value, column) -> str | None:
    if not isinstance(value, str):
        return f"{what} is not text: {quoted(value, 40)}"
    if _UNSTORABLE.search(value):
        return f"{what} {quoted(value, 40)} holds control characters"
    if column is not None and len(value) > _length(column):
        return f"{what} {quoted(value, 40)} is longer than {_length(column)} characters"
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
    if len(key) <= _length(ProviderEvent.dedupe_key):
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _row_of(event: E.IncomingEvent) -> ProviderEvent:
    return ProviderEvent(
        provider=event.provider,
        source=event.source,
        kind=event.kind,
        dedupe_key=_storable_key(event),
        meeting_id=event.meeting_id,
        internal_meeting_id=event.session_key,
        external_user_id=event.external_user_id,
        user_name=(event.user_name or "")[: _length(ProviderEvent.user_name)],
        role=event.role or "",
        occurred_at=from_ms(event.occurred_at_ms),
        payload=event.payload or {},
    )


def store_events(events: list[E.IncomingEvent], status: str = "pending") -> Receipt:
    """Check and insert each event on its own (a savepoint each: one the database refuses costs
    only itself), skip duplicates, and commit. A duplicate still waiting (pending: stored by a
    request that failed before applying it; or an unconfirmed end) is handed back in `retried`."""
    receipt, now_ms = Receipt(), to_ms(utcnow())
    for event in events:
        reason = refusal_reason(event, now_ms)
        if reason is not None:
            receipt.refused.append(f"{event.kind} for meeting {quoted(event.meeting_id, 40)}: {reason}")
            continue
        row = _row_of(event)
        row.status = status
        try:
            with db.session.begin_nested():
                db.session.add(row)
            receipt.new.append(row)
        except IntegrityError as exc:
            _note_duplicate(row, exc, receipt)
        except SQLAlchemyError as exc:
            receipt.refused.append(f"{event.kind} for meeting {quoted(event.meeting_id, 40)}: "
                                   f"the database refused it ({_error_name(exc)})")
    db.session.commit()
    return receipt


def _note_duplicate(row: ProviderEvent, exc: IntegrityError, receipt: Receipt) -> None:
    stored = db.session.scalar(select(ProviderEvent).where(ProviderEvent.dedupe_key == row.dedupe_key))
    if stored is None:  # not a duplicate: another constraint of the database refused it
        receipt.refused.append(f"{row.kind} for meeting {quoted(row.meeting_id, 40)}: "
                               f"the database refused it ({_error_name(exc)})")
    elif stored.status in ("pending", "unconfirmed"):
        receipt.retried.append(stored)
    else:
        log.info("duplicate event ignored: %s", quoted(row.dedupe_key))


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
    same BBB server, with people's names in them) received before `older_than` ago. Returns how
    many, and the cut-off. Ignored events stay: they belong to the tool's own rooms (a recording's
    report, kept for the recordings feature)."""
    cutoff = utcnow() - older_than
    result = db.session.execute(
        delete(ProviderEvent).where(ProviderEvent.status == "unknown_meeting", ProviderEvent.received_at < cutoff)
    )
    db.session.commit()
    return result.rowcount, cutoff


def replay(statuses=("pending", "unknown_meeting", "failed")) -> dict[str, int]:
    """Apply again every stored event in these states, oldest first; returns the new states."""
    ids = db.session.scalars(
        select(ProviderEvent.id).where(ProviderEvent.status.in_(statuses)).order_by(ProviderEvent.occurred_at, ProviderEvent.id)
    ).all()
    outcome: dict[str, int] = defaultdict(int)
    for event_id in ids:
        row = db.session.get(ProviderEvent, event_id)
        row.status, row.error = "pending", None
        apply_event(row)
        outcome[db.session.get(ProviderEvent, event_id).status] += 1
    return dict(outcome)


def apply_event(row: ProviderEvent) -> None:
    apply_rows([row])


def apply_rows(rows: list[ProviderEvent]) -> None:
    """Apply stored events in one transaction, each in a savepoint: a failing event is marked
    failed (and replayable) without undoing the others. The scores the new attendance changes
    are queued in the same transaction (the outbox), once per room however many events."""
    rooms_to_grade: dict[int, Room] = {}
    # Sessions are locked in one order by every applier, so two batches never deadlock.
    for row in sorted(rows, key=lambda r: (r.meeting_id, r.internal_meeting_id or "", r.occurred_at, r.id or 0)):
        try:
            with db.session.begin_nested():
                room, session = _apply(row)
        except Exception as exc:  # recorded on the row and replayable
            log.exception("applying event %s failed", row.id)
            row.status, row.error = "failed", f"{exc.__class__.__name__}: {exc}"[:2000]
            continue
        if session is not None and session.ended_at is not None:
            rooms_to_grade[room.id] = room
    if rooms_to_grade:
        from ..grades.service import queue_room_scores

        for room in rooms_to_grade.values():
            queue_room_scores(room)
    db.session.commit()


def _apply(row: ProviderEvent):
    """Apply one event; returns (room, session), either None when the event does not apply."""
    room = db.session.scalar(select(Room).where(Room.meeting_id == row.meeting_id))
    if room is None:
        log.warning("event %s for unknown meeting %s kept for replay", quoted(row.kind), quoted(row.meeting_id))
        row.status = "unknown_meeting"
        return None, None
    if row.kind not in E.KINDS or row.kind == E.RECORDING_READY or not row.internal_meeting_id:
        row.status, row.applied_at = "ignored", utcnow()
        return room, None
    session = session_for(room, row.internal_meeting_id)
    # One applier per session at a time (PostgreSQL; SQLite's write lock does the same): each then
    # recomputes from every event the others committed, not from a snapshot that misses them.
    db.session.refresh(session, with_for_update=True)
    row.session_id = session.id
    # The start is the earliest moment any event of the session reports besides its end: the
    # provider's start event, or (LiveKit room ids carry no time, webhooks come in any order, a
    # start event may be missed) the first join. An end that arrives first stays the end.
    if row.kind == E.MEETING_ENDED:
        _record_end(session, room, row)
    elif session.started_at is None or row.occurred_at < session.started_at:
        session.started_at = row.occurred_at
    row.status, row.applied_at = "applied", utcnow()
    db.session.flush()
    users = None if row.kind in (E.MEETING_ENDED, E.MEETING_STARTED) else [row.external_user_id]
    recompute_session(session, users)
    return room, session


def session_for(room: Room, internal_meeting_id: str) -> ClassSession:
    session = db.session.scalar(
        select(ClassSession).where(
            ClassSession.room_id == room.id, ClassSession.internal_meeting_id == internal_meeting_id
        )
    )
    if session is not None:
        return session
    create_time = _create_time_of(internal_meeting_id)
    session = ClassSession(
        room_id=room.id,
        internal_meeting_id=internal_meeting_id,
        create_time=create_time,
        started_at=from_ms(create_time) if create_time else None,
    )
    try:
        with db.session.begin_nested():
            db.session.add(session)
    except IntegrityError:  # created by a concurrent event
        session = db.session.scalar(
            select(ClassSession).where(
                ClassSession.room_id == room.id, ClassSession.internal_meeting_id == internal_meeting_id
            )
        )
    return session


def _record_end(session: ClassSession, room: Room, row: ProviderEvent) -> None:
    if session.ended_at is None:
        # Absentees are graded from the roster: have the worker fetch it again for this course.
        room.resource_link.course.roster_fetched_at = None
    rank = END_SOURCE_RANK.get(row.source, 0)
    current = END_SOURCE_RANK.get(session.ended_by or "", 0)
    if session.ended_at is None or rank > current or (rank == current and row.occurred_at < session.ended_at):
        session.ended_at, session.ended_by = row.occurred_at, row.source
    # The provider says this run is over: so is the room, unless a newer run has started.
    if room.create_time is None or session.create_time is None or session.create_time >= room.create_time:
        room.running = False
        if room.started_since_last_end:
            room.ended_at = utcnow()


# --- intervals ----------------------------------------------------------------------------------
def connection_of(row: ProviderEvent) -> str:
    """One person may be connected several times at once (two tabs, a reconnect): join and
    leave are paired per connection before the person's intervals are merged."""
    payload = row.payload or {}
    return str(payload.get("connection") or _bbb_internal_user(payload) or f"{row.source}")


def _bbb_internal_user(payload: dict) -> str | None:
    user = ((payload.get("attributes") or {}).get("user") or {}) if isinstance(payload, dict) else {}
    return user.get("internal-user-id")


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
    far = datetime.max.replace(tzinfo=timezone.utc)
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
    for external_id in users:
        intervals = [i for rows in by_user.get(external_id, {}).values() for i in _pair(rows, session)]
        _replace_intervals(session, external_id, _clip(merge_intervals(intervals), session))


def _replace_intervals(session: ClassSession, external_id: str, intervals) -> None:
    db.session.execute(
        delete(AttendanceInterval).where(
            AttendanceInterval.session_id == session.id, AttendanceInterval.external_user_id == external_id
        )
    )
    user_id = db.session.scalar(select(User.id).where(User.public_id == external_id))
    for start, end in intervals:
        db.session.add(
            AttendanceInterval(
                session_id=session.id, external_user_id=external_id, user_id=user_id, joined_at=start, left_at=end
            )
        )


def receive(events: list[E.IncomingEvent]) -> Receipt:
    """Store (committed: nothing is lost from here on), then apply what was new — and what an
    earlier, failed request stored without applying. When applying fails here, the events wait
    as pending for the worker (`Worker._apply_stuck_events`): the answer is still a success."""
    receipt = store_events(events)
    if receipt.new or receipt.retried:
        try:
            apply_rows(receipt.new + receipt.retried)
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("applying %d stored event(s) failed: the worker applies them later",
                          len(receipt.new) + len(receipt.retried))
    return receipt
