"""Engagement: what each person did in a class session (talk time, chat messages, raised hands,
poll votes, reactions), as the provider reports it (docs/attendance-and-grades.md, "Engagement").

A provider reports a run's totals, after the run (BigBlueButton's analytics callback), and may
send the same report again: each report replaces the person's row for that run, never adds to
it. A measure the provider did not report stays NULL, which the pages show as "not available"
and the grading policy never holds against anyone. The scores a report changes (the policy's
`participation_required`) are queued in the same transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..grades.service import queue_room_scores
from ..logsafe import quoted
from ..models import ClassSession, Engagement, Room, fits
from .events import EngagementReport
from .service import session_for

log = logging.getLogger(__name__)


@dataclass
class EngagementReceipt:
    stored: int = 0
    refused: list[str] = field(default_factory=list)


def _session_of(report: EngagementReport) -> tuple[Room | None, ClassSession | None]:
    if not fits(report.meeting_id, Room.meeting_id) or not fits(report.run_id, ClassSession.run_id):
        return None, None
    room = db.session.scalar(select(Room).where(Room.meeting_id == report.meeting_id))
    if room is None:
        return None, None
    session = db.session.scalar(
        select(ClassSession).where(ClassSession.room_id == room.id, ClassSession.run_id == report.run_id))
    return room, session


def _store(session: ClassSession, report: EngagementReport) -> None:
    """The person's row for this run, made or replaced (a repeated report changes nothing)."""
    where = (Engagement.session_id == session.id, Engagement.external_user_id == report.external_user_id)
    row = db.session.scalar(select(Engagement).where(*where))
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.add(Engagement(session_id=session.id, external_user_id=report.external_user_id,
                                          source=f"{report.provider} {report.source}"[:32], **report.measures()))
            return
        except IntegrityError:  # another request stored it meanwhile: replace theirs
            row = db.session.scalar(select(Engagement).where(*where))
    for name, value in report.measures().items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def record_engagement(reports: list[EngagementReport]) -> EngagementReceipt:
    """Store each report on its run's class session (the run's events, applied first, made it);
    a report for a run or meeting the tool does not know is refused with a reason. Commits."""
    receipt = EngagementReceipt()
    rooms: dict[int, Room] = {}
    for report in reports:
        if not fits(report.external_user_id, Engagement.external_user_id):
            receipt.refused.append(f"engagement of {quoted(report.external_user_id, 40)}: user id cannot be stored")
            continue
        room, session = _session_of(report)
        if session is None:
            receipt.refused.append(f"engagement of {quoted(report.external_user_id, 40)}: no class session for "
                                   f"meeting {quoted(report.meeting_id, 40)} run {quoted(report.run_id, 60)}")
            continue
        _store(session, report)
        receipt.stored += 1
        if session.ended_at is not None:
            rooms[room.id] = room
    db.session.flush()
    for room in rooms.values():
        queue_room_scores(room)
    db.session.commit()
    return receipt


# --- counted by the tool itself (LiveKit's relayed classroom messages) --------------------------
RELAYED_MEASURES = ("chat_messages", "raised_hands")


def current_session(room: Room) -> ClassSession | None:
    """The class session of the room's current run (made if its first webhook has not come
    yet), or the room's latest session still open; None when neither is known."""
    if room.run_id and fits(room.run_id, ClassSession.run_id):
        return session_for(room, room.run_id)
    return db.session.scalar(select(ClassSession).where(ClassSession.room_id == room.id,
                                                        ClassSession.ended_at.is_(None))
                             .order_by(ClassSession.id.desc()).limit(1))


def open_relayed_row(session: ClassSession, external_user_id: str, source: str) -> None:
    """The person's row for this run with every relayed measure at 0, made if missing: from the
    moment they open the classroom, each message they send passes through the tool, so 0 is
    what they did, not a guess. Measures the tool does not see stay NULL. Does not commit."""
    where = (Engagement.session_id == session.id, Engagement.external_user_id == external_user_id)
    if db.session.scalar(select(Engagement.id).where(*where)) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(Engagement(session_id=session.id, external_user_id=external_user_id,
                                      source=source[:32], **dict.fromkeys(RELAYED_MEASURES, 0)))
    except IntegrityError:  # another request made it meanwhile
        pass


def count_relayed(session: ClassSession, external_user_id: str, measure: str, source: str) -> None:
    """One more chat message or raised hand for this person in this run, counted in the
    database (UPDATE … = … + 1, so two requests at once both count). Does not commit: the
    caller commits once the message is sent."""
    if measure not in RELAYED_MEASURES:
        raise ValueError(f"not a relayed measure: {measure}")
    open_relayed_row(session, external_user_id, source)
    column = getattr(Engagement, measure)
    db.session.execute(
        update(Engagement)
        .where(Engagement.session_id == session.id, Engagement.external_user_id == external_user_id)
        .values({measure: func.coalesce(column, 0) + 1})
        .execution_options(synchronize_session=False))
