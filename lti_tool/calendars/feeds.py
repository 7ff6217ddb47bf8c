"""A person's secret calendar addresses, and what each one holds.

An address is a room's feed (scope "room:<id>") or the person's own (scope "person": every room
they have an enrolment in). It carries the token `<user id>.<room id, 0 for the personal
feed>.<mac>`, the mac an HMAC-SHA256 of (user id, scope, generation) under a key derived from
SECRET_KEY: nothing secret is stored, and a token is checked with one read and
`hmac.compare_digest`. A `CalendarFeed` row exists only once an address has been reset: it holds
the generation (1 without a row), so a reset (generation + 1) makes every older address stop
working, and showing a room page never writes (a class of students arriving at once costs reads).

Calendar applications fetch the address without a cookie or a ticket, so the address is the
whole credential, and it only ever reads: it shows a timetable and links to the activity in the
LMS (`activity_address`), never acts as the person. docs/calendars.md says what the feeds hold
and why.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import CalendarFeed, Course, Enrolment, Occasion, ResourceLink, Room, User, utcnow
from ..schedule.service import MAX_OCCASIONS_PER_ROOM

log = logging.getLogger(__name__)

PERSON = "person"
# The personal feed's bounds (each room feed holds its room's occasions: at most 400).
MAX_PERSON_ROOMS = 100  # the rooms of the person's most recently launched enrolments
MAX_PERSON_EVENTS = 500  # the earliest occasions from PERSON_FEED_PAST ago on
PERSON_FEED_PAST = timedelta(days=90)

_TOKEN = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})\.([A-Za-z0-9_-]{43})")


class FeedNotFound(LookupError):
    """No feed at this address (malformed, unknown, reset since, or the person left the room);
    the message says which, for the log only: the answer is a plain 404 to everyone."""


@dataclass(frozen=True)
class FeedEntry:
    """One occasion as a feed shows it, with the room and course it belongs to."""

    occasion: Occasion
    room: Room
    course: Course


@dataclass(frozen=True)
class FeedContents:
    name: str  # X-WR-CALNAME
    personal: bool
    entries: list[FeedEntry]


# --- addresses -----------------------------------------------------------------------------------
def room_scope(room_id: int) -> str:
    return f"room:{room_id}"


def _key() -> bytes:
    # Derived, as lti/platform_settings.py derives its sealing key: one SECRET_KEY, one key per use.
    return hashlib.sha256(b"lti-tool calendar feeds:" + current_app.config["SECRET_KEY"].encode()).digest()


def _mac(feed: CalendarFeed) -> str:
    message = f"{feed.user_id}:{feed.scope}:{feed.generation}".encode()
    digest = hmac.new(_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_of(feed: CalendarFeed) -> str:
    return f"{feed.user_id}.{feed.room_id or 0}.{_mac(feed)}"


def shown_token(token: str) -> str:
    """What a log line may show of a token: the person and room ids, never the mac."""
    user_id, _, rest = token.partition(".")
    room_id = rest.partition(".")[0]
    ids = [part if part.isdigit() and len(part) <= 18 else "?" for part in (user_id, room_id)]
    return ".".join(ids) + ".…"


def _scope(room_id: int | None) -> str:
    return room_scope(room_id) if room_id else PERSON


def _feeds(user_id: int, room_ids: list[int | None]) -> list[CalendarFeed]:
    """The person's feeds of these rooms (None: the personal one), in one read: the stored row
    where an address was reset, else an unsaved generation-1 feed (nothing is written)."""
    scopes = {_scope(room_id): room_id for room_id in room_ids}
    stored = {feed.scope: feed for feed in db.session.scalars(
        select(CalendarFeed).where(CalendarFeed.user_id == user_id, CalendarFeed.scope.in_(list(scopes))))}
    return [stored.get(scope) or CalendarFeed(user_id=user_id, room_id=room_id, scope=scope, generation=1)
            for scope, room_id in scopes.items()]


def feed_by_token(token: str) -> CalendarFeed:
    match = _TOKEN.fullmatch(token or "")
    if match is None:
        raise FeedNotFound("malformed calendar token")
    user_id, room_id = int(match.group(1)), int(match.group(2)) or None
    if db.session.get(User, user_id) is None:
        raise FeedNotFound("no such person")
    feed = _feeds(user_id, [room_id])[0]
    if not hmac.compare_digest(_mac(feed).encode(), match.group(3).encode()):
        raise FeedNotFound(f"calendar token of {feed.scope} of user {user_id} does not match (reset, or forged)")
    return feed


def feeds_for(user: User, room: Room) -> tuple[CalendarFeed, CalendarFeed]:
    """The person's feed of this room and their personal feed, for the room page."""
    room_feed, person_feed = _feeds(user.id, [room.id, None])
    return room_feed, person_feed


def reset_feed(user: User, room: Room | None = None) -> CalendarFeed:
    """A new address for this feed: every earlier one stops working at once. The row is made on
    the first reset (in a savepoint: a concurrent first reset is found by the unique key)."""
    scope = _scope(room.id if room is not None else None)
    feed = db.session.scalar(select(CalendarFeed).filter_by(user_id=user.id, scope=scope))
    if feed is None:
        try:
            with db.session.begin_nested():
                feed = CalendarFeed(user_id=user.id, scope=scope, room_id=room.id if room else None, generation=1)
                db.session.add(feed)
        except IntegrityError:
            feed = db.session.scalar(select(CalendarFeed).filter_by(user_id=user.id, scope=scope))
    feed.generation += 1
    feed.reset_at = utcnow()
    db.session.commit()
    log.info("calendar feed %s of user %s reset to generation %s", feed.scope, user.id, feed.generation)
    return feed


# --- contents ------------------------------------------------------------------------------------
def _enrolled(feed: CalendarFeed, room: Room) -> bool:
    return db.session.scalar(select(Enrolment.id).where(
        Enrolment.user_id == feed.user_id, Enrolment.resource_link_id == room.resource_link_id,
    ).limit(1)) is not None


def _room_of(feed: CalendarFeed) -> Room:
    room = db.session.get(Room, feed.room_id) if feed.room_id is not None else None
    if room is None or not _enrolled(feed, room):
        raise FeedNotFound(f"calendar feed {feed.scope} of user {feed.user_id}: its person is no longer in its room")
    return room


def _person_rooms(feed: CalendarFeed) -> list[Room]:
    return db.session.scalars(
        select(Room)
        .options(selectinload(Room.resource_link).selectinload(ResourceLink.course))
        .join(Enrolment, Enrolment.resource_link_id == Room.resource_link_id)
        .where(Enrolment.user_id == feed.user_id)
        .order_by(Enrolment.last_launch_at.desc(), Room.id)
        .limit(MAX_PERSON_ROOMS)
    ).all()


def _entries(rooms: list[Room], since: datetime | None, limit: int) -> list[FeedEntry]:
    by_id = {room.id: room for room in rooms}
    query = select(Occasion).where(Occasion.room_id.in_(by_id))
    if since is not None:
        query = query.where(Occasion.starts_at >= since)
    occasions = db.session.scalars(query.order_by(Occasion.starts_at, Occasion.id).limit(limit)).all()
    return [FeedEntry(o, by_id[o.room_id], by_id[o.room_id].resource_link.course) for o in occasions]


def feed_contents(feed: CalendarFeed, now: datetime | None = None) -> FeedContents:
    """What the feed shows: every occasion of its room, cancelled ones included; or, for the
    personal feed, the occasions of the person's rooms from PERSON_FEED_PAST ago on (bounded)."""
    if feed.scope == PERSON:
        rooms = _person_rooms(feed)
        since = (now or utcnow()) - PERSON_FEED_PAST
        return FeedContents("My live classes", True, _entries(rooms, since, MAX_PERSON_EVENTS))
    room = _room_of(feed)
    return FeedContents(room.name, False, _entries([room], None, MAX_OCCASIONS_PER_ROOM))


def entry_in_feed(feed: CalendarFeed, occasion_id: int) -> FeedEntry:
    """One occasion of this feed (the join link of its event), or FeedNotFound."""
    occasion = db.session.get(Occasion, occasion_id)
    if occasion is None:
        raise FeedNotFound(f"calendar feed {feed.scope} of user {feed.user_id}: no occasion {occasion_id}")
    room = occasion.room
    in_scope = room.id == feed.room_id if feed.scope != PERSON else True
    if not in_scope or not _enrolled(feed, room):
        raise FeedNotFound(
            f"calendar feed {feed.scope} of user {feed.user_id}: occasion {occasion_id} is not one of its rooms'")
    return FeedEntry(occasion, room, room.resource_link.course)


# --- where the join link leads -------------------------------------------------------------------
def platform_home(course: Course) -> str | None:
    """The platform's own address (its issuer), when it is a web address."""
    parts = urlsplit(course.issuer)
    return course.issuer if parts.scheme in ("http", "https") and parts.netloc else None


def activity_address(course: Course, link: ResourceLink) -> str | None:
    """The activity's page in the LMS, where the tool can know it: in Moodle (the platform said
    so at launch) the issuer is the site and the resource link id is the mod_lti instance id,
    so `<site>/mod/lti/view.php?l=<id>` opens the activity (and launches the tool as the person
    who clicked, after Moodle's own sign-in). Elsewhere: None (the tool's page says what to do)."""
    home = platform_home(course)
    if course.product_family != "moodle" or home is None or not link.resource_link_id.isdigit():
        return None
    return f"{home.rstrip('/')}/mod/lti/view.php?l={quote(link.resource_link_id)}"
