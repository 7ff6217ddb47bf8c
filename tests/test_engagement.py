"""Engagement: BigBlueButton's analytics callback reports what each person did in a class (talk
time, chat messages, raised hands, poll answers, reactions); the tool keeps it per person and run,
shows it to the teacher beside the minutes, and the grading policy may ask for it
(`participation_required`). What the provider did not report is "not available", never 0, and
never costs a grade. Over real HTTP: the fake BBB server, the tool, the fake platform."""
from __future__ import annotations

import html
import logging
import re

from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.models import AttendanceInterval, Engagement
from tests.support import analytics_body, hour_long_class, post_analytics, scores_for

SAM, SALLY = "Sam Student", "Sally Student"  # student (sub 4, the whole hour), student5 (sub 5, 45 minutes)


def engagement(chats=0, talk_time=0, raisehand=0, emojis=0, poll_votes=0, talks=0) -> dict:
    """An attendee's `engagement` as bbbevents writes it."""
    return {"chats": chats, "talks": talks, "raisehand": raisehand, "emojis": emojis, "poll_votes": poll_votes,
            "talk_time": talk_time}


def report(live, run, sam: dict | None, sally: dict | None):
    """The analytics callback after the hour-long class, with these `engagement` fields (None:
    the attendee has none). Sally's join and leave lie inside her real presence, so the
    attendance it repeats changes nothing."""
    attendees = [{"ext_user_id": live.public_id("student"), "from": 0, "to": 60},
                 {"ext_user_id": live.public_id("student5"), "from": 5, "to": 20}]
    for attendee, fields in zip(attendees, (sam, sally), strict=True):
        if fields is not None:
            attendee["engagement"] = fields
    answer = post_analytics(live, analytics_body(run, attendees))
    assert answer.status_code == 200, answer.text
    return answer


def participation_cell(page_html: str, name: str) -> str:
    """The participation line of `name`'s row in the (only) occasion's table (under the status)."""
    table = page_html.split('class="attendance-table"', 1)[1]
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        if f">{name}" in row:
            cell = re.search(r'<span class="participation[^"]*">(.*?)</span>', row, re.S)
            assert cell, row
            return html.unescape(cell.group(1)).strip()
    raise AssertionError(f"no row for {name}")


def stored(live) -> dict[str, dict]:
    with live.app.app_context():
        return {row.external_user_id: {"talk": row.talk_seconds, "chat": row.chat_messages,
                                       "hands": row.raised_hands, "polls": row.poll_votes,
                                       "reactions": row.reactions}
                for row in db.session.scalars(select(Engagement))}


def test_analytics_callback_stores_each_persons_engagement(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(chats=4, talk_time=811, raisehand=1, emojis=2, poll_votes=3), engagement())
    rows = stored(live)
    assert rows[live.public_id("student")] == {"talk": 811, "chat": 4, "hands": 1, "polls": 3, "reactions": 2}
    assert rows[live.public_id("student5")] == {"talk": 0, "chat": 0, "hands": 0, "polls": 0, "reactions": 0}


def test_a_resent_analytics_callback_replaces_and_never_adds(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(chats=4, talk_time=811), engagement(chats=1))
    report(live, run, engagement(chats=4, talk_time=811), engagement(chats=1))
    with live.app.app_context():
        assert db.session.scalar(select(func.count(Engagement.id))) == 2
    assert stored(live)[live.public_id("student")]["chat"] == 4
    report(live, run, engagement(chats=5, talk_time=811), engagement(chats=1))  # a corrected report wins
    assert stored(live)[live.public_id("student")]["chat"] == 5


def test_teacher_sees_engagement_beside_the_minutes(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(chats=4, talk_time=190, raisehand=1, poll_votes=1), engagement(talk_time=45))
    page = teacher.get("/attendance")
    assert page.status_code == 200
    assert participation_cell(page.text, SAM) == ("spoke 3 min · 4 messages · 1 hand · 1 poll answer · "
                                                  "0 reactions")
    assert participation_cell(page.text, SALLY) == ("spoke 45 s · 0 messages · 0 hands · 0 poll answers · "
                                                    "0 reactions")


def test_what_the_provider_did_not_report_is_not_available_never_zero(live):
    teacher, run = hour_long_class(live)
    page = teacher.get("/attendance")  # the class ended; no analytics callback (yet)
    assert participation_cell(page.text, SAM) == "not available"
    report(live, run, {"chats": 2}, None)  # an older server: only the chat count; Sally: no engagement
    page = teacher.get("/attendance")
    assert participation_cell(page.text, SAM) == ("talk time not available · 2 messages · hands not available · "
                                                  "poll answers not available · reactions not available")
    assert participation_cell(page.text, SALLY) == "not available"
    assert stored(live)[live.public_id("student")] == {"talk": None, "chat": 2, "hands": None, "polls": None,
                                                       "reactions": None}


def test_a_student_sees_their_own_engagement_only(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(chats=4, talk_time=190), engagement(chats=7))
    page = live.launch("student5").get("/attendance")
    assert participation_cell(page.text, SALLY).startswith("did not speak · 7 messages")
    assert SAM not in page.text


def test_participation_required_changes_the_grade_sent_to_the_platform(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(talk_time=30), engagement(raisehand=2, emojis=1, poll_votes=1))  # Sally: silent
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0]
    assert teacher.post("/grading", participation_required="on", absent_gets_zero="on").status_code == 303
    live.run_worker()
    sally = scores_for(live.platform, "5")
    assert [s["scoreGiven"] for s in sally] == [75.0, 0.0]
    assert sally[-1]["comment"] == "Attended 45 of 60 minutes; not counted: did not speak or write"
    assert [s["scoreGiven"] for s in scores_for(live.platform, "4")] == [100.0]  # Sam spoke: unchanged
    page = teacher.get("/attendance")
    assert "<td>late, did not speak or write<br>" in page.text  # Sally joined at minute 5
    assert "spoke or wrote in the chat at least once" in page.text  # the policy in words
    assert 'id="g-participation" name="participation_required" checked' in page.text


def test_an_analytics_report_after_the_grades_corrects_them_under_the_rule(live):
    teacher, run = hour_long_class(live)
    assert teacher.post("/grading", participation_required="on", absent_gets_zero="on").status_code == 303
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0]  # nothing reported: rule off
    report(live, run, engagement(talk_time=30), engagement(chats=0, talk_time=0))
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0, 0.0]


def test_participation_rule_never_penalises_missing_data(live):
    teacher, run = hour_long_class(live)
    report(live, run, engagement(talk_time=30), {"raisehand": 1})  # Sally: neither talk nor chat reported
    assert teacher.post("/grading", participation_required="on", absent_gets_zero="on").status_code == 303
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0]
    assert [s["comment"] for s in scores_for(live.platform, "5")] == ["Attended 45 of 60 minutes"]


def test_malformed_engagement_is_refused_and_logged_without_breaking_attendance(live, caplog):
    caplog.set_level(logging.INFO, logger="lti_tool")
    teacher, run = hour_long_class(live)
    with live.app.app_context():
        intervals_before = db.session.scalar(select(func.count(AttendanceInterval.id)))
    for bad in ({"chats": "many"}, {"talk_time": -5}, {"raisehand": True}, {"chats": 10**12}, "lots"):
        answer = report(live, run, engagement(chats=4, talk_time=811), bad)
        assert answer.json()["refused"] == 0  # the joins and leaves were all fine
    rows = stored(live)
    assert live.public_id("student5") not in rows and rows[live.public_id("student")]["chat"] == 4
    lines = [r.getMessage() for r in caplog.records if "engagement" in r.getMessage() and "refused" in r.getMessage()]
    assert any("attendees[1].engagement.chats" in line and "'many'" in line for line in lines), lines
    with live.app.app_context():
        assert db.session.scalar(select(func.count(AttendanceInterval.id))) == intervals_before
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [75.0]
    assert participation_cell(teacher.get("/attendance").text, SALLY) == "not available"


def test_engagement_for_a_run_the_tool_does_not_know_is_refused(live, caplog):
    caplog.set_level(logging.INFO, logger="lti_tool")
    teacher, run = hour_long_class(live)
    body = analytics_body(run, [{"ext_user_id": live.public_id("student"), "from": 0, "to": 60,
                                 "engagement": engagement(chats=1)}])
    body["meeting_id"] = "not-a-room-of-this-tool"
    assert post_analytics(live, body).status_code == 200
    assert stored(live) == {}
    assert any("no class session" in r.getMessage() for r in caplog.records)


def test_a_livekit_class_reports_no_engagement_so_the_rule_does_not_apply(live):
    """LiveKit's webhooks carry no chat or hands, and Sally never opened the classroom page (so
    nothing she did passed through the tool, docs: "Engagement"): the page says "not available"
    and participation_required grades by minutes alone."""
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    live.launch("student5", resource_link_id="40")
    assert teacher.join().status_code == 302
    assert teacher.post("/grading", participation_required="on", absent_gets_zero="on").status_code == 303
    livekit, room = live.livekit, next(iter(live.livekit.rooms))
    t0 = int(livekit.rooms[room].room.creation_time)
    sally = live.public_id("student5")
    for event in (livekit.room_started(room, t0), livekit.participant_joined(room, sally, t0 + 600, SALLY),
                  livekit.participant_left(room, sally, t0 + 1800, SALLY, joined_at=t0 + 600),
                  livekit.room_finished(room, t0 + 3600)):
        assert livekit.send_webhook(live.url + "/webhooks/livekit", event).status_code == 200
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(live.platform, "5")] == [round(100 * 1200 / 3600, 2)]
    assert participation_cell(teacher.get("/attendance").text, SALLY) == "not available"
