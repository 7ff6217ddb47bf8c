"""What a reminder says: subject and plain-text body of one notice for one person, the stop
link it carries, and the message as it goes out (headers included).

Times are given in the room's time zone (the IANA zone the teacher last scheduled in) and in
UTC; a room without a zone gets UTC only. The stop link is `/reminders/stop/<token>`, the token
an HMAC-signed (room, issuer, sub) with a key derived from SECRET_KEY (itsdangerous, as the room
tickets; its own salt): nothing is stored, it never expires, and a new SECRET_KEY voids it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from email.utils import formataddr, formatdate
from urllib.parse import urlsplit

from flask import current_app, render_template
from itsdangerous import BadSignature, URLSafeSerializer

from ..calendars.feeds import activity_address
from ..models import EmailMessage, Occasion, Room, ScheduleNotice
from ..schedule import timetable
from .recipients import Recipient

STOP_SALT = "reminder-stop-v1"
STOP_PATH = "/reminders/stop/"
HEADLINES = {"scheduled": "Scheduled", "moved": "Moved", "cancelled": "Cancelled", "soon": "Soon", "live": "Live now"}


@dataclass(frozen=True)
class StopToken:
    room_id: int
    issuer: str
    sub: str


def _stop_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=STOP_SALT)


def stop_token(room_id: int, issuer: str, sub: str) -> str:
    return _stop_serializer().dumps([room_id, issuer, sub])


def read_stop_token(token: str) -> StopToken | None:
    try:
        room_id, issuer, sub = _stop_serializer().loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if not isinstance(room_id, int) or not isinstance(issuer, str) or not isinstance(sub, str):
        return None
    return StopToken(room_id, issuer, sub)


def stop_url(room_id: int, issuer: str, sub: str) -> str:
    return current_app.config["TOOL_BASE_URL"] + STOP_PATH + stop_token(room_id, issuer, sub)


def stop_url_in(body: str) -> str | None:
    """The stop link of a stored message: its last line's (the body is the tool's own text;
    a teacher's reason quoted above cannot stand in for it)."""
    found = re.findall(re.escape(current_app.config["TOOL_BASE_URL"] + STOP_PATH) + r"[A-Za-z0-9_.\-]+", body)
    return found[-1] if found else None


# --- times ------------------------------------------------------------------------------------
def _zone(room: Room):
    return timetable.zone_or_none(room.time_zone) if room.time_zone else None


def short_time(room: Room, moment: datetime) -> str:
    """"Mon 1 Mar 09:00" in the room's zone, or with "UTC" when the room has none."""
    zone = _zone(room)
    local = moment.astimezone(zone or UTC)
    return f"{local:%a} {local.day} {local:%b %H:%M}" + ("" if zone else " UTC")


def _span(start: datetime, end: datetime, zone) -> str:
    a, b = start.astimezone(zone), end.astimezone(zone)
    day = f"{a:%A} {a.day} {a:%B %Y}"
    until = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%a} {b.day} {b:%b %H:%M}"
    return f"{day}, {a:%H:%M}–{until}"


def when(room: Room, start: datetime, minutes: int) -> str:
    """"Monday 1 March 2027, 09:00–10:00 (Europe/Paris; 08:00–09:00 UTC)"."""
    from datetime import timedelta

    end = start + timedelta(minutes=minutes)
    zone = _zone(room)
    if zone is None:
        return f"{_span(start, end, UTC)} UTC"
    utc = f"{start.astimezone(UTC):%H:%M}–{end.astimezone(UTC):%H:%M} UTC"
    return f"{_span(start, end, zone)} ({room.time_zone}; {utc})"


# --- the text ---------------------------------------------------------------------------------
def one_line(text: str, limit: int = 200) -> str:
    """Untrusted text (names, titles) made safe for a header: one line, bounded."""
    return " ".join(str(text or "").split())[:limit]


def activity_link(room: Room) -> str | None:
    """The activity's own page in the LMS where the tool can know it (Moodle: the calendars'
    join links lead there too); None for other platforms."""
    return activity_address(room.resource_link.course, room.resource_link)


def subject(notice: ScheduleNotice, room: Room, occasions: list[Occasion]) -> str:
    name = one_line(room.name, 120) or "Live class"
    headline = HEADLINES.get(notice.kind, "Live class")
    if not occasions:
        return one_line(f"{headline}: {name}", 250)
    first = short_time(room, occasions[0].starts_at)
    more = f"{len(occasions)} classes from {first}" if len(occasions) > 1 else first
    return one_line(f"{headline}: {name}, {more}", 250)


def body(notice: ScheduleNotice, room: Room, occasions: list[Occasion], person: Recipient) -> str:
    course = room.resource_link.course
    previous = notice.details.get("previous_start")
    return render_template(
        "reminders/message.txt",
        kind=notice.kind, person=person, room_name=one_line(room.name, 200) or "Live class",
        course_title=one_line(course.title or course.label, 200),
        times=[when(room, o.starts_at, o.minutes) for o in occasions],
        previous=when(room, datetime.fromisoformat(previous), occasions[0].minutes) if previous and occasions else None,
        reason=one_line(notice.details.get("reason") or "", 500),
        activity_link=activity_link(room), minutes_before=notice.details.get("minutes"),
        stop_url=stop_url(room.id, person.issuer, person.sub),
    )


def mime(message: EmailMessage) -> MimeMessage:
    """The message as it goes out: From, To, Subject, Date, Message-ID (the same on every try),
    and the one-click stop of RFC 8058."""
    config = current_app.config
    host = urlsplit(config["TOOL_BASE_URL"]).hostname or "localhost"
    out = MimeMessage()
    out["From"] = config["MAIL_FROM"]
    out["To"] = formataddr((one_line(message.to_name, 100), message.to_address))
    out["Subject"] = one_line(message.subject, 250)
    out["Date"] = formatdate(usegmt=True)
    out["Message-ID"] = f"<reminder-{message.id}-{message.created_at:%Y%m%d%H%M%S}@{host}>"
    out["Auto-Submitted"] = "auto-generated"
    link = stop_url_in(message.body)
    if link:
        out["List-Unsubscribe"] = f"<{link}>"
        out["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    out.set_content(message.body)
    return out
