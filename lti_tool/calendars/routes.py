"""Calendar views: the feeds calendar applications fetch, the join link of their events, and the
reset of an address from the room page.

`GET /calendar/<token>.ics` and `GET /calendar/<token>/open/<occasion>` need no cookie and no
ticket (calendar applications and their users' browsers fetch them): the token is checked by
calendars/feeds.py, and a bad one answers 404 with a short text and a log line naming the person and room ids
only. `POST /rooms/<id>/calendar/reset` goes through the room pages' one access rule
(`@room_view`). The room page's partial (templates/rooms/_calendar.html) asks `calendar_links`.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from ..exceptions import InvalidInput
from ..logsafe import quoted
from ..models import Room, User
from ..rooms.access import RoomAccess, page_url, room_view
from . import feeds, ics

log = logging.getLogger(__name__)

bp = Blueprint("calendars", __name__)

NOT_FOUND = (
    "No calendar at this address. It may have been reset: copy the new address from the class page "
    "in your course.\n"
)
LINK_NOT_FOUND = "This calendar link no longer works. Open the class from your course."
FEED_CACHE = "private, max-age=300"


def _absolute(path: str) -> str:
    """Calendar applications fetch from outside the browser: addresses on TOOL_BASE_URL."""
    return current_app.config["TOOL_BASE_URL"] + path


def _refused(token: str, error: feeds.FeedNotFound) -> None:
    log.warning("%s /calendar/%s refused: %s", request.method, feeds.shown_token(token), error)


@bp.get("/calendar/<token>.ics")
def feed(token: str):
    try:
        found = feeds.feed_by_token(token)
        contents = feeds.feed_contents(found)
    except feeds.FeedNotFound as exc:
        _refused(token, exc)
        return Response(NOT_FOUND, 404, mimetype="text/plain")
    body = ics.calendar_text(
        contents, lambda entry: _absolute(url_for(".open_occasion", token=token, occasion_id=entry.occasion.id))
    )
    response = Response(body, mimetype="text/calendar")  # charset=utf-8 added by Flask for text/*
    response.headers["Cache-Control"] = FEED_CACHE
    response.headers["Content-Disposition"] = 'inline; filename="calendar.ics"'
    response.headers["X-Robots-Tag"] = "noindex"
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    log.info("calendar feed %s of user %s served: %d event(s)", found.scope, found.user_id, len(contents.entries))
    return response.make_conditional(request)


@bp.get("/calendar/<token>/open/<int:occasion_id>")
def open_occasion(token: str, occasion_id: int):
    """An event's link: to the activity in the LMS where the tool knows its address (Moodle),
    else a page of the tool saying where to open the class. Never a way in by itself."""
    try:
        entry = feeds.entry_in_feed(feeds.feed_by_token(token), occasion_id)
    except feeds.FeedNotFound as exc:
        _refused(token, exc)
        return render_template("errors/error.html", message=LINK_NOT_FOUND, status=404), 404
    target = feeds.activity_address(entry.course, entry.room.resource_link)
    if target is not None:
        return redirect(target, code=303)
    return render_template("calendars/open.html", entry=entry, home=feeds.platform_home(entry.course))


@bp.post("/rooms/<int:room_id>/calendar/reset")
@room_view()
def reset(access: RoomAccess):
    which = request.form.get("feed", "room")
    if which not in ("room", "person"):
        raise InvalidInput(f"unknown calendar feed {quoted(which, 40)}", "There is no such calendar.")
    feeds.reset_feed(access.user, access.room if which == "room" else None)
    return redirect(page_url("rooms.show", calendar_reset=which, _anchor="calendar-title"), code=303)


@dataclass(frozen=True)
class CalendarLinks:
    room: str  # this room's feed
    person: str  # the person's own feed (all their rooms)


def calendar_links(room: Room, user: User) -> CalendarLinks:
    """The person's two calendar addresses, for the room page (one read, no write)."""
    room_feed, person_feed = feeds.feeds_for(user, room)
    return CalendarLinks(
        room=_absolute(url_for("calendars.feed", token=feeds.token_of(room_feed))),
        person=_absolute(url_for("calendars.feed", token=feeds.token_of(person_feed))),
    )


bp.add_app_template_global(calendar_links, "calendar_links")
