"""What a person may do in a room follows their own launch, and nobody's secrets reach anyone else.

Observed in an attack on the tool and a real Moodle run: with "everyone joins as moderator" on,
students read classmates' grades, changed the grading (one raised their own grade) and ended
the class; the first launcher's return URL (with their Moodle session key) was everyone's
logout URL; `javascript:` return URLs ran in the tool's origin; the room ticket (12 hours)
stood in every URL; forms with `Origin: null` were accepted; mute/remove on a BBB room was a
500; names starting with `=` went into the CSV as formulas; the page said 100 % where the
gradebook received 99.81.
"""
from __future__ import annotations

import csv
import io
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Enrolment, Room, User
from tests.conftest import LivePerson, room_ticket_in

MINUTE = 60_000
LAUNCH_PRESENTATION = "https://purl.imsglobal.org/spec/lti/claim/launch_presentation"


def meeting_of(live, person) -> str:
    with live.app.app_context():
        return db.session.get(Room, person.room_id).meeting_id


def send_class(live, teacher, attendance: dict[str, tuple[float, float]], length: float = 60):
    """One run of the room's meeting at the fake BBB: who was there from when to when (minutes)."""
    assert teacher.join().status_code == 302
    meeting_id = meeting_of(live, teacher)
    meeting = live.bbb.meetings[meeting_id]
    t0, internal = meeting.create_time, meeting.internal_id
    bbb, hook = live.bbb, live.url + "/webhooks/bbb"
    events = [bbb.event_meeting_created(meeting_id, t0, internal)]
    for user, (joined, left) in attendance.items():
        uid = live.public_id(user)
        events.append(bbb.event_user_joined(meeting_id, uid, user, "VIEWER", t0 + int(joined * MINUTE), internal))
        events.append(bbb.event_user_left(meeting_id, uid, t0 + int(left * MINUTE), internal))
    events.append(bbb.event_meeting_ended(meeting_id, t0 + int(length * MINUTE), internal))
    assert bbb.send_webhook(hook, events).status_code == 200
    live.run_worker()


def launch_with_claims(live, user: str, resource_link_id: str = "1", **changes) -> LivePerson:
    """A real login and launch whose id_token the platform signs with some claims changed."""
    session = requests.Session()
    fields = live.platform.login_initiation(user=user, resource_link_id=resource_link_id)
    answer = session.post(live.url + "/lti/login", data=fields, allow_redirects=False)
    form = live.platform.authorize(urljoin(live.url, answer.headers["Location"]))
    claims = jwt.decode(form["id_token"], options={"verify_signature": False})
    claims.update(changes)
    token = live.platform.sign_jwt(claims)
    response = session.post(form["action"], data={"id_token": token, "state": form["state"]}, allow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    return LivePerson(live, session, response)


# --- 1. "everyone joins as moderator" is about the meeting only -----------------------------------
def test_everyone_moderator_gives_students_no_teacher_rights_in_the_tool(live):
    teacher, sam, sally = live.launch("teacher"), live.launch("student"), live.launch("student5")
    assert teacher.post("/settings", everyone_moderator="on", wait_for_moderator="on").status_code == 303
    send_class(live, teacher, {"student": (0, 60), "student5": (0, 20)})
    with live.app.app_context():
        before = db.session.get(Room, teacher.room_id)
        settings_before, grading_before = dict(before.settings), dict(before.grading or {})
    scores_before = list(live.platform.scores)

    page = sally.get()
    assert page.status_code == 200 and 'id="s-everyone_moderator"' not in page.text  # no settings form
    attendance = sally.get("/attendance")
    assert attendance.status_code == 200
    assert 'id="grades"' not in attendance.text and "Sam Student" not in attendance.text
    refused = {
        "csv": sally.post("/attendance.csv"),
        "settings": sally.post("/settings", wait_for_moderator="", record="on"),
        "grading": sally.post("/grading", present_threshold_percent="1", late_grace_minutes="0"),
        "send": sally.post("/grades/send"),
        "end": sally.post("/end"),
    }
    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 403)
    with live.app.app_context():
        after = db.session.get(Room, teacher.room_id)
        assert after.settings == settings_before and (after.grading or {}) == grading_before
    live.run_worker()
    assert live.platform.scores == scores_before, "nothing was re-graded"

    # In the meeting itself the setting does what it says.
    assert teacher.join().status_code == 302
    joined = sally.join()
    assert joined.status_code == 302
    assert parse_qs(urlsplit(joined.headers["Location"]).query)["role"] == ["MODERATOR"]
    assert sam.post("/end").status_code == 403


def test_everyone_moderator_checkbox_says_it_is_about_the_meeting(live):
    page = live.launch("teacher").get().text
    label = re.search(r'<label for="s-everyone_moderator">(.*?)</label>', page, re.S).group(1)
    assert "video meeting" in label and "only teachers" in label


def test_teacher_actions_on_a_livekit_room_follow_the_launch_role(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    student = live.launch("student", resource_link_id="40")
    assert teacher.post("/settings", everyone_moderator="on").status_code == 303
    assert teacher.join().status_code == 302
    assert student.post("/live/action", action="remove", identity="x").status_code == 403
    assert student.post("/live/recording", action="start").status_code == 403


# --- 2. each person goes back to their own return URL ---------------------------------------------
def own_return_url(live, user: str) -> str:
    account = live.platform.user(user)
    return f"{live.platform.issuer}/mod/lti/return.php?course=2&launch_container=3&instanceid=1" \
           f"&sesskey={live.platform.sesskey_of(account)}"


def test_meeting_logout_url_is_the_tools_page_and_carries_nobodys_session_key(live):
    teacher = live.launch("teacher")
    assert teacher.join().status_code == 302
    create = dict(next(params for call, params in live.bbb.calls if call == "create"))
    assert create["logoutURL"] == f"{live.url}/rooms/{teacher.room_id}/left"
    every_call = " ".join(f"{name}?{params}" for name, params in live.bbb.calls)
    assert "sesskey" not in every_call and "return.php" not in every_call


def test_each_person_leaving_the_meeting_goes_back_to_their_own_lms_page(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    assert teacher.join().status_code == 302
    assert student.join().status_code == 302
    for person, user in ((teacher, "teacher"), (student, "student")):
        left = person.session.get(live.url + f"/rooms/{person.room_id}/left", allow_redirects=False)
        assert left.status_code == 303
        assert left.headers["Location"] == own_return_url(live, user)
    assert own_return_url(live, "teacher") != own_return_url(live, "student")


def test_leaving_without_the_tools_cookie_shows_a_page_with_nobodys_url(live):
    teacher = live.launch("teacher")
    assert teacher.join().status_code == 302
    stranger = requests.get(live.url + f"/rooms/{teacher.room_id}/left", allow_redirects=False)
    assert stranger.status_code == 200 and "You left the class" in stranger.text
    assert "sesskey" not in stranger.text and "return.php" not in stranger.text
    # A leave cookie of one room says nothing about another.
    other = teacher.session.get(live.url + f"/rooms/{teacher.room_id + 1}/left", allow_redirects=False)
    assert other.status_code == 200


@pytest.mark.parametrize("return_url", ["javascript:alert(document.domain)", "data:text/html,<script>1</script>",
                                        "//evil.example/x", "http://exa mple.com/\nSet-Cookie: x"])
def test_only_http_return_urls_are_kept(live, return_url):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    assert teacher.join().status_code == 302
    student = launch_with_claims(live, "student", "40", **{LAUNCH_PRESENTATION: {"return_url": return_url}})
    with live.app.app_context():
        sub = live.platform.user("student").sub
        stored = db.session.scalar(select(Enrolment.return_url).join(User, User.id == Enrolment.user_id)
                                   .where(User.sub == sub))
    assert stored is None
    joined = student.join()
    assert joined.status_code == 302
    classroom = student.session.get(urljoin(live.url, joined.headers["Location"]))
    leave = re.search(r'<a id="leave"[^>]*href="([^"]*)"', classroom.text).group(1)
    assert leave == f"/rooms/{student.room_id}/left"


# --- 9. the long-lived ticket never stands in a URL -----------------------------------------------
def test_room_ticket_lives_in_forms_and_urls_carry_only_a_short_page_ticket(live):
    teacher = live.launch("teacher")
    page = teacher.get().text
    ticket = room_ticket_in(page)
    assert ticket != teacher.page_ticket
    addresses = re.findall(r'(?:href|action|src|content)="([^"]*)"', page)
    assert not [a for a in addresses if ticket in a], "the room ticket is in a URL of the page"
    # A room ticket in a URL opens nothing; a page ticket in a form does nothing.
    assert teacher.session.get(teacher.url(), params={"t": ticket}).status_code == 401
    assert teacher.session.post(teacher.url("/join"), data={"t": teacher.page_ticket},
                                allow_redirects=False).status_code == 401
    # Links between pages trade the room ticket for a fresh page ticket.
    opened = teacher.session.post(teacher.url("/open"), data={"t": ticket, "page": "attendance"},
                                  allow_redirects=False)
    assert opened.status_code == 303
    target = urlsplit(opened.headers["Location"])
    assert target.path == f"/rooms/{teacher.room_id}/attendance" and ticket not in opened.headers["Location"]
    assert teacher.session.get(urljoin(live.url, opened.headers["Location"])).status_code == 200


def test_page_tickets_expire_quickly_while_the_forms_keep_working(live):
    teacher = live.launch("teacher")
    ticket = teacher.ticket
    live.app.config["PAGE_TICKET_SECONDS"] = -1  # as if the page ticket's ten minutes had passed
    assert teacher.get().status_code == 401
    opened = teacher.session.post(teacher.url("/open"), data={"t": ticket, "page": "room"}, allow_redirects=False)
    assert opened.status_code == 303
    status = teacher.session.get(teacher.url("/status"), headers={"X-Room-Ticket": ticket})
    assert status.status_code == 200 and "url" in status.json()


def test_livekit_token_travels_in_the_fragment_only(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    location = urlsplit(teacher.join().headers["Location"])
    assert "lk" in parse_qs(location.fragment) and "lk" not in parse_qs(location.query)


# --- 14. forms come from the tool's own pages -----------------------------------------------------
@pytest.mark.parametrize("origin", ["null", "http://evil.example"])
def test_forms_with_a_foreign_or_opaque_origin_are_refused(live, origin):
    teacher = live.launch("teacher")
    answer = teacher.session.post(teacher.url("/join"), data={"t": teacher.ticket}, headers={"Origin": origin},
                                  allow_redirects=False)
    assert answer.status_code == 403 and live.bbb.count("create") == 0


def test_pages_send_a_referrer_policy_that_keeps_their_address_on_the_tool(live):
    """Under `no-referrer` browsers send `Origin: null` with the tool's own forms; `same-origin`
    keeps page addresses from other sites and lets the forms say where they come from."""
    teacher = live.launch("teacher")
    assert teacher.get().headers["Referrer-Policy"] == "same-origin"
    answer = teacher.session.post(teacher.url("/join"), data={"t": teacher.ticket}, headers={"Origin": live.url},
                                  allow_redirects=False)
    assert answer.status_code == 302


# --- 7. teacher actions the room's provider does not offer are refused, not a 500 -----------------
@pytest.mark.parametrize("action", ["mute", "remove"])
def test_mute_or_remove_on_a_bbb_room_is_a_clear_refusal(live, action):
    teacher = live.launch("teacher")
    assert teacher.join().status_code == 302
    answer = teacher.post("/live/action", action=action, identity="someone", track="TR_1")
    assert answer.status_code == 409 and answer.json()["error"]


# --- 8. the CSV never carries a formula -----------------------------------------------------------
def test_names_that_look_like_formulas_are_neutralised_in_the_csv(live):
    live.platform.add_user("mallory", "66", ["Learner"], "=HYPERLINK(\"http://evil.example\",\"x\")", "",
                           "m@example.com")
    teacher, _ = live.launch("teacher"), live.launch("mallory")
    send_class(live, teacher, {"mallory": (0, 30)})
    answer = teacher.post("/attendance.csv")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(answer.text)))
    names = [row[2] for row in rows[1:]]
    assert names and all(not name.startswith(("=", "+", "-", "@", "\t", "\r")) for name in names)
    assert any(name.startswith("'=HYPERLINK") for name in names)


# --- 17. the page shows what the gradebook receives -----------------------------------------------
def test_pages_show_the_grade_and_minutes_the_gradebook_receives(live):
    teacher, student = live.launch("teacher"), live.launch("student")
    send_class(live, teacher, {"student": (0.1, 60)})  # 59.9 of 60 minutes
    sent = [s for s in live.platform.scores if s["userId"] == "4"][-1]
    assert sent["scoreGiven"] == 99.83 and sent["comment"] == "Attended 59.9 of 60 minutes"
    mine = student.get("/attendance").text
    assert re.search(r'id="my-grade">99\.83%<', mine) and "Attended 59.9 of 60 minutes" in mine
    report = teacher.get("/attendance").text
    assert "99.83%" in report and "100%" not in report
