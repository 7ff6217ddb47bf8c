"""Notices become messages, and people stop or resume a room's e-mails.

The timetable writes a `ScheduleNotice` in the transaction of each change (schedule/service.py
`notify`: scheduled, moved, cancelled), the room service when a teacher starts the class
(live), and the worker shortly before each scheduled class (`write_soon_notices`: soon). Every
notice is written only while mail is set up (SMTP_URL): with mail off nothing queues, and
turning mail on later does not send a backlog of old news.

`expand_notices` (the worker) turns each notice into one `EmailMessage` per recipient in one
transaction with the notice's `expanded_at`; the messages' `dedupe_key` (`<notice>:<address>`)
makes a second expansion add nothing. A notice whose news is stale by then (`stale_reason`:
the class ended, was moved again or cancelled) gets no messages, and a queued message is
checked again before it is sent (delivery.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import EmailMessage, Occasion, ReminderOptOut, Room, ScheduleNotice, utcnow
from ..schedule.service import notify
from . import messages
from .recipients import ROSTER_WAIT_SECONDS, address_of, courses_awaiting_roster, recipients

log = logging.getLogger(__name__)

LIVE_NEWS_HOURS = 3  # an unscheduled class's "live" e-mail is not sent later than this
NOTICES_PER_PASS = 20


def mail_is_on() -> bool:
    return bool((current_app.config.get("SMTP_URL") or "").strip())


# --- soon ---------------------------------------------------------------------------------------
def write_soon_notices(now: datetime | None = None) -> int:
    """A "soon" notice for each scheduled class starting within REMINDER_MINUTES_BEFORE; keyed by
    the occasion's UID and sequence, so a moved class is reminded again, never twice for one time."""
    minutes = float(current_app.config["REMINDER_MINUTES_BEFORE"])
    if not minutes or not mail_is_on():
        return 0
    now = now or utcnow()
    coming = db.session.scalars(
        select(Occasion).where(
            Occasion.status == "scheduled", Occasion.starts_at > now,
            Occasion.starts_at <= now + timedelta(minutes=minutes),
        )
    ).all()
    for occasion in coming:
        notify(occasion.room, "soon", f"soon:{occasion.uid}:{occasion.sequence}", occasion,
               sequence=occasion.sequence)
    db.session.commit()
    return len(coming)


# --- notices to messages --------------------------------------------------------------------------
def occasions_told(notice: ScheduleNotice) -> list[Occasion]:
    ids = notice.details.get("occasions") or ([notice.occasion_id] if notice.occasion_id else [])
    if not ids:
        return []
    rows = db.session.scalars(select(Occasion).where(Occasion.id.in_(ids)).order_by(Occasion.starts_at)).all()
    if notice.kind == "scheduled":
        return [o for o in rows if not o.cancelled]
    return rows


def stale_reason(notice: ScheduleNotice, room: Room, occasions: list[Occasion], now: datetime) -> str | None:
    """Why this notice's news is no longer worth an e-mail, or None."""
    if notice.kind == "live":
        if room.ended_at is not None and room.ended_at >= notice.created_at:
            return "the class has ended"
        if occasions and occasions[0].ends_at <= now:
            return "the class is over"
        if not occasions and now - notice.created_at > timedelta(hours=LIVE_NEWS_HOURS):
            return f"the class started over {LIVE_NEWS_HOURS} hours ago"
        return None
    if not occasions:
        return "the class is no longer in the timetable"
    if notice.kind in ("soon", "moved"):
        occasion = occasions[0]
        if occasion.cancelled:
            return "the class was cancelled since"
        if notice.kind == "soon" and occasion.sequence != notice.details.get("sequence", occasion.sequence):
            return "the class was moved since"
    if all(o.ends_at <= now for o in occasions):
        return "the class is over"
    return None


def _queue(notice: ScheduleNotice, room: Room, occasions: list[Occasion]) -> int:
    subject = messages.subject(notice, room, occasions)
    added = 0
    for person in recipients(room):
        if notice.kind == "live" and person.teacher:
            continue  # they started it
        key = f"{notice.id}:{person.address.lower()}"
        if db.session.scalar(select(EmailMessage.id).where(EmailMessage.dedupe_key == key)):
            continue
        db.session.add(EmailMessage(
            notice_id=notice.id, room_id=room.id, dedupe_key=key, to_address=person.address,
            to_name=messages.one_line(person.name, 200), subject=subject,
            body=messages.body(notice, room, occasions, person), status="pending", next_attempt_at=utcnow(),
        ))
        added += 1
    return added


def expand(notice: ScheduleNotice, now: datetime | None = None) -> int:
    """One notice into its messages, in one transaction with its `expanded_at`."""
    now = now or utcnow()
    room = db.session.get(Room, notice.room_id)
    occasions = occasions_told(notice)
    stale = stale_reason(notice, room, occasions, now)
    added = 0 if stale else _queue(notice, room, occasions)
    notice.expanded_at = now
    try:
        db.session.commit()
    except IntegrityError:  # another worker expanded it at the same moment: its messages stand
        db.session.rollback()
        return 0
    if stale:
        log.info("room %s: %s notice %s not sent: %s", room.id, notice.kind, notice.id, stale)
    else:
        log.info("room %s: %s notice %s: %d e-mail(s) queued", room.id, notice.kind, notice.id, added)
    return 1


def expand_notices(now: datetime | None = None) -> int:
    """Expand waiting notices; those of a course whose roster the tool has never had wait for
    it (the worker fetches it) up to ROSTER_WAIT_SECONDS."""
    now = now or utcnow()
    awaiting = {course.id for course in courses_awaiting_roster()}
    notices = db.session.scalars(
        select(ScheduleNotice).where(ScheduleNotice.expanded_at.is_(None))
        .order_by(ScheduleNotice.id).limit(NOTICES_PER_PASS)
    ).all()
    done = 0
    for notice in notices:
        room = db.session.get(Room, notice.room_id)
        waiting = now - notice.created_at < timedelta(seconds=ROSTER_WAIT_SECONDS)
        if room.resource_link.course_id in awaiting and waiting:
            continue
        done += expand(notice, now)
    return done


# --- stop and resume ------------------------------------------------------------------------------
def is_stopped(room_id: int, issuer: str, sub: str) -> bool:
    return db.session.scalar(select(ReminderOptOut.id).where(
        ReminderOptOut.room_id == room_id, ReminderOptOut.issuer == issuer, ReminderOptOut.sub == sub,
    )) is not None


def stop(room: Room, issuer: str, sub: str) -> None:
    """No more e-mails about this room to this person; what is queued for them is dropped."""
    if not is_stopped(room.id, issuer, sub):
        try:
            with db.session.begin_nested():
                db.session.add(ReminderOptOut(room_id=room.id, issuer=issuer, sub=sub))
        except IntegrityError:
            pass  # stopped by a concurrent request (the e-mail's one-click and the page's button)
    address = address_of(room, sub)
    if address:
        db.session.execute(
            update(EmailMessage)
            .where(EmailMessage.room_id == room.id, EmailMessage.to_address == address,
                   EmailMessage.status == "pending")
            .values(status="skipped", last_error="the person stopped this room's e-mails", locked_until=None)
        )
    db.session.commit()
    log.info("room %s: a person stopped its e-mails", room.id)


def resume(room: Room, issuer: str, sub: str) -> None:
    db.session.query(ReminderOptOut).filter(
        ReminderOptOut.room_id == room.id, ReminderOptOut.issuer == issuer, ReminderOptOut.sub == sub,
    ).delete()
    db.session.commit()
    log.info("room %s: a person asked for its e-mails again", room.id)
