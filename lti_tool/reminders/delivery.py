"""Sending the mail outbox: pending `EmailMessage` rows through SMTP_URL, the way grades are
delivered (grades/delivery.py): a worker claims a row with a conditional UPDATE that sets a
lease (`locked_until`), so one worker wins each row and a worker killed mid-send loses nothing
(the lease runs out and the row is sent again).

Outcomes: sent; a mail server that cannot be reached, drops the line or answers 4xx → retried
with exponential backoff from RETRY_BASE_SECONDS (capped at 10 minutes) until MAX_ATTEMPTS,
then failed; a 5xx for the message or its recipient → failed at once (no retry storm); news
that is stale by now (the class ended, moved or was cancelled since) → skipped. One
connection serves a whole pass. Error texts are the server's answers, never the password.
"""
from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from ..extensions import db
from ..logsafe import quoted
from ..models import EmailMessage, Room, ScheduleNotice, utcnow
from . import messages
from .service import occasions_told, stale_reason
from .smtp import mail_server

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 24  # with the 10-minute cap: a mail server may be down for about three hours
BACKOFF_CAP_SECONDS = 600
MESSAGES_PER_PASS = 50


def due_messages(limit: int = MESSAGES_PER_PASS) -> list[int]:
    now = utcnow()
    return db.session.scalars(
        select(EmailMessage.id)
        .where(
            EmailMessage.status == "pending", EmailMessage.next_attempt_at <= now,
            or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now),
        )
        .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
        .limit(limit)
    ).all()


def claim(message_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id, EmailMessage.status == "pending",
            or_(EmailMessage.locked_until.is_(None), EmailMessage.locked_until < now),
        )
        .values(locked_until=now + timedelta(seconds=float(current_app.config["DELIVERY_LEASE_SECONDS"])))
    )
    db.session.commit()
    return result.rowcount == 1


def _stale(message: EmailMessage) -> str | None:
    notice = db.session.get(ScheduleNotice, message.notice_id) if message.notice_id else None
    room = db.session.get(Room, message.room_id) if message.room_id else None
    if notice is None or room is None:
        return None
    return stale_reason(notice, room, occasions_told(notice), utcnow())


def send_due(limit: int = MESSAGES_PER_PASS) -> int:
    """Send what is due over one connection; returns how many rows this call handled."""
    claimed = [db.session.get(EmailMessage, i) for i in due_messages(limit) if claim(i)]
    to_send = []
    for message in claimed:
        stale = _stale(message)
        if stale:
            _finish(message, "skipped", stale)
        else:
            to_send.append(message)
    if not to_send:
        return len(claimed)
    server = mail_server(current_app.config)
    try:
        connection = server.connect()
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail server %s: %s", server.shown, quoted(describe(exc), 300))
        for message in to_send:
            _retry(message, f"mail server {server.shown}: {describe(exc)}")
        return len(claimed)
    try:
        _send_all(connection, to_send)
    finally:
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()
    return len(claimed)


def _send_all(connection: smtplib.SMTP, to_send: list[EmailMessage]) -> None:
    for index, message in enumerate(to_send):
        try:
            connection.send_message(messages.mime(message), to_addrs=[message.to_address])
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            _refused(message, code, answer)
        except smtplib.SMTPResponseException as exc:
            _refused(message, exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:  # the line dropped: this and the rest later
            for left in to_send[index:]:
                _retry(left, describe(exc))
            return
        else:
            message.sent_at = utcnow()
            _finish(message, "sent")


def describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(answer) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _refused(message: EmailMessage, code: int, answer) -> None:
    text = f"the mail server answered {code} {_text(answer)}"
    (_fail if 500 <= code < 600 else _retry)(message, text)


def _finish(message: EmailMessage, status: str, note: str | None = None) -> None:
    message.status, message.locked_until, message.last_error = status, None, note
    message.attempts += 1 if status == "sent" else 0
    db.session.commit()
    log.info("e-mail %s: %s%s", message.id, status, f" ({note})" if note else "")


def _fail(message: EmailMessage, text: str) -> None:
    message.status, message.locked_until, message.last_error = "failed", None, text[:2000]
    message.attempts += 1
    db.session.commit()
    log.warning("e-mail %s failed: %s", message.id, quoted(text, 500))


def _retry(message: EmailMessage, text: str) -> None:
    message.attempts += 1
    if message.attempts >= MAX_ATTEMPTS:
        _fail(message, f"gave up after {message.attempts} attempts: {text}")
        return
    base = float(current_app.config["RETRY_BASE_SECONDS"])
    delay = min(BACKOFF_CAP_SECONDS, base * 2 ** (message.attempts - 1))
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    message.locked_until, message.last_error = None, text[:2000]
    db.session.commit()
    log.info("e-mail %s: retry in %.1fs after %s", message.id, delay, quoted(text, 500))
