"""Calendars over real HTTP: the room and personal feeds of the room page, read back with the
`icalendar` library the way a calendar application reads them (no cookie, no ticket), updated by
moves and cancellations, reset, refused when forged, and their join link to the LMS."""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import pytest
import requests
from icalendar import Calendar

from lti_tool.access_log import redact_target
from lti_tool.extensions import db
from lti_tool.models import Course, Occasion
from lti_tool.schedule import service as schedule
from tests.conftest import row_counts

SERIES = {"schedule_start": "2030-03-04T09:00+01:00", "schedule_minutes": "90", "schedule_weeks": "3"}
FIRST = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def link_with_schedule(live, link_id: str, title: str, **custom) -> None:
    live.platform.add_resource_link(link_id, title, custom={**SERIES, **custom})


def href_of(html: str, element_id: str) -> str:
    tag = re.search(rf'<a [^>]*\bid="{element_id}"[^>]*>', html)
    assert tag, f"the page has no <a id={element_id}>"
    return re.search(r'\bhref="([^"]+)"', tag.group(0)).group(1).replace("&amp;", "&")


def events_of(response: requests.Response) -> list:
    assert response.status_code == 200, response.text[:300]
    return Calendar.from_ical(response.content).walk("VEVENT")


def is_utc(moment: datetime) -> bool:
    return moment.utcoffset() == timedelta(0) and str(moment.tzinfo) in ("UTC", "UTC+00:00")


def by_uid(events) -> dict:
    return {str(event["UID"]): event for event in events}


def occasions(live, person) -> list[Occasion]:
    with live.app.app_context():
        rows = schedule.occasions_of(db.session.get(schedule.Room, person.room_id))
        db.session.expunge_all()
        return rows


@pytest.fixture
def teacher(live):
    link_with_schedule(live, "21", "Algebra live")
    return live.launch("teacher", resource_link_id="21")


def test_room_feed_holds_a_weekly_series_of_three_in_utc(live, teacher):
    page = teacher.get()
    feed_url = href_of(page.text, "calendar")
    assert feed_url.startswith(live.url + "/calendar/") and feed_url.endswith(".ics")

    answer = requests.get(feed_url, timeout=10)  # a calendar application: no cookie, no ticket

    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert answer.headers["Cache-Control"] == "private, max-age=300"
    assert "Set-Cookie" not in answer.headers
    calendar = Calendar.from_ical(answer.content)
    header = [str(calendar[name]) for name in ("VERSION", "METHOD", "CALSCALE")]
    assert header == ["2.0", "PUBLISH", "GREGORIAN"]
    assert str(calendar["X-WR-CALNAME"]) == "Algebra live" and calendar["PRODID"]
    events = sorted(calendar.walk("VEVENT"), key=lambda e: e["DTSTART"].dt)
    assert [e["DTSTART"].dt for e in events] == [FIRST, FIRST + WEEK, FIRST + 2 * WEEK]
    assert all(is_utc(e["DTSTART"].dt) and is_utc(e["DTEND"].dt) for e in events)
    assert all(e["DTEND"].dt - e["DTSTART"].dt == timedelta(minutes=90) for e in events)
    assert b"DTSTART:20300304T080000Z" in answer.content  # UTC form, no TZID to resolve
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED"] * 3 and [e["SEQUENCE"] for e in events] == [0, 0, 0]
    assert len({str(e["UID"]) for e in events}) == 3 and all(str(e["SUMMARY"]) == "Algebra live" for e in events)
    assert "RRULE" not in answer.text
    for event in events:
        assert str(event["URL"]).startswith(feed_url.removesuffix(".ics") + "/open/")
        assert str(event["URL"]) in str(event["DESCRIPTION"])
        assert is_utc(event["DTSTAMP"].dt) and is_utc(event["LAST-MODIFIED"].dt)


def test_moves_and_cancellations_update_the_same_events(live, teacher):
    feed_url = href_of(teacher.get().text, "calendar")
    before = by_uid(events_of(requests.get(feed_url, timeout=10)))
    etag = requests.get(feed_url, timeout=10).headers["ETag"]
    assert requests.get(feed_url, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    second, third = occasions(live, teacher)[1:]

    with live.app.app_context():
        room = db.session.get(schedule.Room, teacher.room_id)
        schedule.move_occasion(room, second.id, FIRST + WEEK + timedelta(days=1), 60, "Room booked that day")
        schedule.cancel_occasion(room, third.id, "Teacher at a conference")

    answer = requests.get(feed_url, headers={"If-None-Match": etag}, timeout=10)
    after = by_uid(events_of(answer))
    assert answer.headers["ETag"] != etag
    assert set(after) == set(before) and len(answer.text.split("BEGIN:VEVENT")) == 4  # no duplicates
    moved, cancelled = after[second.uid], after[third.uid]
    assert moved["DTSTART"].dt == FIRST + WEEK + timedelta(days=1)
    assert moved["DTEND"].dt - moved["DTSTART"].dt == timedelta(minutes=60)
    assert moved["SEQUENCE"] == 1 and str(moved["STATUS"]) == "CONFIRMED"
    assert "Room booked that day" in str(moved["DESCRIPTION"])
    assert cancelled["SEQUENCE"] == 1 and str(cancelled["STATUS"]) == "CANCELLED"
    assert "Teacher at a conference" in str(cancelled["DESCRIPTION"])
    assert cancelled["DTSTART"].dt == FIRST + 2 * WEEK  # still where it was, marked cancelled
    untouched = next(uid for uid in after if uid not in (second.uid, third.uid))
    assert after[untouched]["SEQUENCE"] == 0 and after[untouched]["DTSTART"].dt == FIRST


def test_personal_feed_holds_the_occasions_of_the_persons_rooms_only(live):
    link_with_schedule(live, "21", "Algebra live")
    link_with_schedule(live, "22", "Geometry live", schedule_start="2030-03-05T14:00Z", schedule_weeks="2")
    link_with_schedule(live, "23", "Teachers only", schedule_weeks="1")
    live.launch("teacher", resource_link_id="23")  # a room the student never opened
    live.launch("student", resource_link_id="22")
    student = live.launch("student", resource_link_id="21")

    personal_url = href_of(student.get().text, "calendar-person")
    calendar = Calendar.from_ical(requests.get(personal_url, timeout=10).content)

    assert str(calendar["X-WR-CALNAME"]) == "My live classes"
    summaries = sorted(str(e["SUMMARY"]) for e in calendar.walk("VEVENT"))
    assert summaries == ["Algebra live · LTI Live 101"] * 3 + ["Geometry live · LTI Live 101"] * 2
    starts = sorted(e["DTSTART"].dt for e in calendar.walk("VEVENT"))
    assert datetime(2030, 3, 5, 14, 0, tzinfo=UTC) in starts and starts[0] == FIRST


def test_reset_makes_the_old_address_stop_working(live, teacher):
    page = teacher.get().text
    assert row_counts(live.app)["calendar_feeds"] == 0  # showing the addresses writes nothing
    old_room, old_person = href_of(page, "calendar"), href_of(page, "calendar-person")
    old_open = str(events_of(requests.get(old_room, timeout=10))[0]["URL"])

    answer = teacher.post("/calendar/reset", feed="room")

    assert answer.status_code == 303
    new_page = teacher.session.get(urljoin(live.url, answer.headers["Location"]), timeout=10).text
    new_room = href_of(new_page, "calendar")
    assert new_room != old_room and "New address made" in new_page
    gone = requests.get(old_room, timeout=10)
    assert gone.status_code == 404 and gone.headers["Content-Type"].startswith("text/plain")
    assert "reset" in gone.text and len(gone.text) < 200
    assert requests.get(old_open, allow_redirects=False, timeout=10).status_code == 404
    assert len(events_of(requests.get(new_room, timeout=10))) == 3
    assert href_of(new_page, "calendar-person") == old_person  # the other address is untouched
    assert requests.get(old_person, timeout=10).status_code == 200

    teacher.post("/calendar/reset", feed="person")
    assert requests.get(old_person, timeout=10).status_code == 404
    assert row_counts(live.app)["calendar_feeds"] == 2  # one row per address that was reset


def test_reset_needs_the_room_ticket(live, teacher):
    feed_url = href_of(teacher.get().text, "calendar")
    forged = requests.post(teacher.url("/calendar/reset"), data={"t": "forged", "feed": "room"},
                           allow_redirects=False, timeout=10)
    assert forged.status_code in (401, 403)
    assert teacher.post("/calendar/reset", feed="everything").status_code == 400
    assert requests.get(feed_url, timeout=10).status_code == 200


def test_students_feed_works_and_forged_addresses_are_not_found(live, teacher, caplog):
    caplog.set_level(logging.INFO)
    student = live.launch("student", resource_link_id="21")
    page = student.get().text
    assert 'id="waiting"' in page  # the waiting page carries the calendar too
    student_feed = href_of(page, "calendar")
    teacher_feed = href_of(teacher.get().text, "calendar")
    assert student_feed != teacher_feed
    assert len(events_of(requests.get(student_feed, timeout=10))) == 3

    token = student_feed.rsplit("/", 1)[1].removesuffix(".ics")
    user_id, room_id, mac = token.split(".")
    teacher_id = teacher_feed.rsplit("/", 1)[1].split(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    mine = f"{user_id}.{room_id}"
    for bad in (f"{mine}.{flipped}", f"{teacher_id}.{room_id}.{mac}", f"{user_id}.0.{mac}", f"99999.{room_id}.{mac}",
                "abc", f"{mine}.{mac}x", f"{mine}.{mac[:20]}", f"{user_id}.{mac}"):
        answer = requests.get(f"{live.url}/calendar/{bad}.ics", timeout=10)
        assert answer.status_code == 404, bad
        assert answer.headers["Content-Type"].startswith("text/plain") and "BEGIN:VCALENDAR" not in answer.text
    tool_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("lti_tool"))
    assert "refused" in tool_log and f"room:{room_id} of user {user_id} does not match" in tool_log
    assert mac not in tool_log and mac[:20] not in tool_log and flipped not in tool_log


def test_open_link_sends_a_moodle_user_to_the_activity(live, teacher):
    feed_url = href_of(teacher.get().text, "calendar")
    event = events_of(requests.get(feed_url, timeout=10))[0]

    answer = requests.get(str(event["URL"]), allow_redirects=False, timeout=10)

    assert answer.status_code == 303
    assert answer.headers["Location"] == live.platform.activity_url(l="21")


def test_open_link_elsewhere_says_where_to_open_the_class(live, teacher):
    feed_url = href_of(teacher.get().text, "calendar")
    event = events_of(requests.get(feed_url, timeout=10))[0]
    with live.app.app_context():  # a course whose platform never said what it is (not Moodle)
        for course in db.session.scalars(db.select(Course)):
            course.product_family = None
        db.session.commit()

    answer = requests.get(str(event["URL"]), allow_redirects=False, timeout=10)

    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert "Algebra live" in answer.text and "LTI Live 101" in answer.text
    assert href_of(answer.text, "platform-home") == live.platform.issuer
    wrong = requests.get(str(event["URL"]).rsplit("/", 1)[0] + "/999999", allow_redirects=False, timeout=10)
    assert wrong.status_code == 404


def test_the_room_feed_of_a_room_without_a_timetable_is_an_empty_calendar(live):
    person = live.launch("teacher")  # link 1: no schedule parameters
    answer = requests.get(href_of(person.get().text, "calendar"), timeout=10)
    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert events_of(answer) == [] and b"BEGIN:VCALENDAR" in answer.content


@pytest.mark.parametrize("target, expected", [
    ("/calendar/12.4.AbC-_x9.ics", "/calendar/12.4.….ics"),
    ("/calendar/12.0.AbC-_x9/open/7", "/calendar/12.0.…/open/7"),
    ("/calendar/12.4.999.ics", "/calendar/12.4.….ics"),
    ("/calendar/12.AbC-_x9.ics", "/calendar/12.….ics"),  # malformed: still nothing of it logged
    ("http://tool.example/calendar/3.1.zz.ics?x=1", "http://tool.example/calendar/3.1.….ics?x=…"),
])
def test_access_logs_hide_a_calendar_addresss_mac(target, expected):
    assert redact_target(target) == expected
