"""The rules of a room's recordings (docs/recordings.md): the tool's copy of what the provider
recorded, who sees which, what teachers change, and how long recordings stay.

Pages read the `recordings` table, never the video server: `refresh` asks the provider at most
once per room every RECORDINGS_CHECK_SECONDS (whatever the number of workers: a conditional
UPDATE decides who asks), and a recording-ready callback (`mark_stale`) makes the next view ask
at once. Teachers' changes go to the provider first, then to the copy. The worker deletes
recordings older than the room's platform's RECORDING_RETENTION_DAYS (`apply_retention`).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..exceptions import InvalidInput
from ..extensions import db
from ..logsafe import quoted
from ..lti.platform_settings import every_platform_settings
from ..models import ClassRecording, RecordingCheck, Room, fits, utcnow
from ..providers.base import ProviderError, Recording
from ..rooms.service import platform_settings_of, provider_of, room_of_meeting

log = logging.getLogger(__name__)

NAME_MAX = 200
RECENT_CLASS = timedelta(hours=6)  # pages look for new recordings this long after a class
RETENTION_SETTING = "RECORDING_RETENTION_DAYS"


@dataclass(frozen=True)
class Listed:
    """One recording as a page shows it."""

    recording: ClassRecording
    removed_on: datetime | None  # when retention will delete it (None: kept)


# --- the copy ---------------------------------------------------------------------------------
def _claim_check(room: Room, now: datetime) -> bool:
    """Take the right to ask the provider for this room's recordings; false when someone asked
    within RECORDINGS_CHECK_SECONDS (a missing row or a NULL time: ask now)."""
    interval = timedelta(seconds=current_app.config["RECORDINGS_CHECK_SECONDS"])
    if db.session.get(RecordingCheck, room.id) is None:
        try:
            db.session.add(RecordingCheck(room_id=room.id, checked_at=now))
            db.session.commit()
            return True
        except IntegrityError:  # another worker made it first
            db.session.rollback()
    result = db.session.execute(
        update(RecordingCheck)
        .where(RecordingCheck.room_id == room.id,
               or_(RecordingCheck.checked_at.is_(None), RecordingCheck.checked_at < now - interval))
        .values(checked_at=now)
    )
    db.session.commit()
    return result.rowcount == 1


def refresh(room: Room, force: bool = False) -> bool:
    """Bring the room's copy up to date with the provider (at most once per interval unless
    `force`). True when the provider answered; a failure keeps the copy as it was."""
    if not force and not _claim_check(room, utcnow()):
        return False
    provider = provider_of(room)
    try:
        found = provider.recordings(room.meeting_id)
    except ProviderError as exc:
        log.warning("room %s: recordings not refreshed: %s", room.id, quoted(exc.detail))
        return False
    _store(room, found, provider.recording_state_on_server)
    db.session.commit()
    return True


def _store(room: Room, found: list[Recording], state_on_server: bool) -> None:
    rows = {row.record_id: row for row in db.session.scalars(
        select(ClassRecording).where(ClassRecording.room_id == room.id))}
    listed = set()
    for recording in found:
        if not recording.record_id or not fits(recording.record_id, ClassRecording.record_id):
            continue
        listed.add(recording.record_id)
        row = rows.get(recording.record_id)
        if row is None:
            row = ClassRecording(room_id=room.id, record_id=recording.record_id,
                                 published=recording.published, name=recording.name[:NAME_MAX])
            db.session.add(row)
        elif row.deleted_at is not None:
            continue  # deleted in the tool: a provider that only lists files still has it
        elif state_on_server:
            row.published, row.name = recording.published, recording.name[:NAME_MAX]
        row.run_id = recording.run_id[:255] or None
        row.started_at, row.ended_at = _moment(recording.started_at_ms), _moment(recording.ended_at_ms)
        row.length_minutes, row.playback_url = recording.length_minutes, recording.playback_url
    if state_on_server:  # gone from the server (deleted there): gone from the pages too
        for record_id, row in rows.items():
            if record_id not in listed and row.deleted_at is None:
                row.deleted_at = utcnow()


def _moment(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def mark_stale(meeting_ids: Iterable[str]) -> int:
    """A provider said a recording is ready: the rooms' next views ask it at once."""
    rooms = [room for room in (room_of_meeting(m) for m in set(meeting_ids)) if room is not None]
    if not rooms:
        return 0
    db.session.execute(update(RecordingCheck).where(RecordingCheck.room_id.in_([r.id for r in rooms]))
                       .values(checked_at=None))
    db.session.commit()
    return len(rooms)


# --- what a page shows ------------------------------------------------------------------------
def retention_days(room: Room) -> float:
    """The room's platform's RECORDING_RETENTION_DAYS, else the environment's (0: keep)."""
    own = platform_settings_of(room).get(RETENTION_SETTING)
    try:
        return max(0.0, float(own)) if own not in (None, "") else float(current_app.config[RETENTION_SETTING])
    except ValueError:
        return float(current_app.config[RETENTION_SETTING])


def listing(room: Room, moderator: bool) -> list[Listed]:
    """The recordings this person may watch, newest first: published ones, and for moderators
    the unpublished ones too, each with the day retention removes it."""
    refresh(room)
    query = select(ClassRecording).where(ClassRecording.room_id == room.id, ClassRecording.deleted_at.is_(None))
    if not moderator:
        query = query.where(ClassRecording.published.is_(True))
    rows = db.session.scalars(query.order_by(ClassRecording.started_at.desc(), ClassRecording.id.desc())).all()
    days = retention_days(room)
    return [Listed(row, _removal(row, days)) for row in rows]


def _removal(row: ClassRecording, days: float) -> datetime | None:
    start = row.started_at or row.first_seen_at
    return start + timedelta(days=days) if days > 0 and start else None


def version(listed: list[Listed]) -> str:
    """Changes whenever what the list shows changes (the page's script replaces it only then)."""
    text = "|".join(f"{i.recording.record_id}:{i.recording.published}:{i.recording.name}:"
                    f"{i.recording.playback_url}:{i.removed_on}" for i in listed)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def class_ran_recently(room: Room) -> bool:
    """Running, or ended within RECENT_CLASS: a new recording may appear any minute."""
    return bool(room.running or room.started_since_last_end
                or (room.ended_at and room.ended_at > utcnow() - RECENT_CLASS))


# --- teachers' changes ------------------------------------------------------------------------
def _recording_of(room: Room, record_id: str) -> ClassRecording:
    refresh(room)  # throttled: only when the copy is stale (a ready callback since the last look)
    row = None
    if isinstance(record_id, str) and fits(record_id, ClassRecording.record_id):
        row = db.session.scalar(select(ClassRecording).where(
            ClassRecording.room_id == room.id, ClassRecording.record_id == record_id,
            ClassRecording.deleted_at.is_(None)))
    if row is None:
        raise InvalidInput(f"room {room.id}: no recording {quoted(record_id)}",
                           "This recording does not exist (any more).", 404)
    return row


def publish(room: Room, record_id: str, published: bool) -> None:
    row = _recording_of(room, record_id)
    provider_of(room).publish_recording(row.record_id, published)
    row.published = published
    db.session.commit()
    log.info("room %s: recording %s %s", room.id, quoted(record_id), "published" if published else "unpublished")


def rename(room: Room, record_id: str, name: str) -> None:
    row = _recording_of(room, record_id)
    name = " ".join((name or "").split())
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(f"recording name of {len(name)} characters",
                           f"A recording's name has 1 to {NAME_MAX} characters.")
    provider_of(room).rename_recording(row.record_id, name)
    row.name = name
    db.session.commit()
    log.info("room %s: recording %s renamed", room.id, quoted(record_id))


def delete(room: Room, record_id: str, why: str = "by a teacher") -> None:
    row = _recording_of(room, record_id)
    provider_of(room).delete_recording(row.record_id)
    row.deleted_at = utcnow()
    db.session.commit()
    log.info("room %s: recording %s deleted %s", room.id, quoted(record_id), why)


# --- retention --------------------------------------------------------------------------------
def _shortest_retention() -> float:
    values = [current_app.config[RETENTION_SETTING]]
    values += [s.get(RETENTION_SETTING) for s in every_platform_settings()]
    days = []
    for value in values:
        try:
            days.append(float(value))
        except (TypeError, ValueError):
            continue
    positive = [d for d in days if d > 0]
    return min(positive) if positive else 0.0


def apply_retention(now: datetime | None = None) -> int:
    """Delete (at the provider, then in the copy) every recording older than its room's
    retention; returns how many. A provider that fails keeps the recording for the next pass."""
    shortest = _shortest_retention()
    if not shortest:
        return 0
    now = now or utcnow()
    rows = db.session.scalars(select(ClassRecording).where(
        ClassRecording.deleted_at.is_(None), ClassRecording.started_at < now - timedelta(days=shortest))).all()
    deleted = 0
    for row in rows:
        room = db.session.get(Room, row.room_id)
        removal = _removal(row, retention_days(room))
        if removal is None or removal > now:
            continue
        try:
            delete(room, row.record_id, why=f"(older than {retention_days(room):g} days)")
            deleted += 1
        except ProviderError as exc:
            db.session.rollback()
            log.warning("room %s: recording %s not deleted yet: %s", room.id, quoted(row.record_id), quoted(exc.detail))
    return deleted
