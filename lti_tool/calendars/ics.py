"""A feed as iCalendar text (RFC 5545), written with the `icalendar` library (escaping, line
folding and dates as the standard wants them).

One VEVENT per occasion, never an RRULE: a series whose third week moved or was cancelled stays
three plain events with their own UIDs, and a calendar reading the feed again updates each one by
its UID and SEQUENCE instead of reconciling exceptions to a rule. Times are in UTC. The output
depends only on the data (DTSTAMP is the occasion's last change), so the same timetable gives the
same bytes and the same ETag.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .feeds import FeedContents, FeedEntry

PRODID = "-//LTI live classes//calendar feed//EN"
# How often calendars are asked to read the feed again (a hint; most applications decide themselves).
REFRESH = timedelta(hours=1)
REFRESH_TEXT = "PT1H"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def summary(entry: FeedEntry, personal: bool) -> str:
    course_title = entry.course.title or entry.course.label
    text = entry.room.name
    if personal and course_title and course_title != entry.room.name:
        text = f"{entry.room.name} · {course_title}"
    # Some calendar applications show a cancelled event like any other: the title says it too.
    return f"Cancelled: {text}" if entry.occasion.cancelled else text


def description(entry: FeedEntry, join_url: str) -> str:
    occasion, lines = entry.occasion, []
    if occasion.cancelled:
        lines.append(f"This class is cancelled. Reason: {occasion.reason}" if occasion.reason
                     else "This class is cancelled.")
    elif occasion.reason:
        lines.append(f"Note from the teacher: {occasion.reason}")
    course_title = entry.course.title or entry.course.label
    if course_title:
        lines.append(f"Course: {course_title}")
    lines.append(f"Join the class: {join_url}")
    return "\n".join(lines)


def event(entry: FeedEntry, join_url: str, personal: bool):
    from icalendar import Event  # here: only feeds need it (3 MB in every worker otherwise)

    occasion = entry.occasion
    changed = _utc(occasion.updated_at or occasion.created_at)
    item = Event()
    item.add("uid", occasion.uid)
    item.add("dtstamp", changed)
    item.add("last-modified", changed)
    item.add("dtstart", _utc(occasion.starts_at))
    item.add("dtend", _utc(occasion.ends_at))
    item.add("sequence", occasion.sequence)
    item.add("status", "CANCELLED" if occasion.cancelled else "CONFIRMED")
    item.add("summary", summary(entry, personal))
    item.add("description", description(entry, join_url))
    item.add("url", join_url)
    item.add("transp", "TRANSPARENT" if occasion.cancelled else "OPAQUE")
    return item


def calendar_text(contents: FeedContents, join_url: Callable[[FeedEntry], str]) -> bytes:
    from icalendar import Calendar  # here: only feeds need it (3 MB in every worker otherwise)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", contents.name)
    calendar.add("x-published-ttl", REFRESH_TEXT)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    for entry in contents.entries:
        calendar.add_component(event(entry, join_url(entry), contents.personal))
    return calendar.to_ical()
