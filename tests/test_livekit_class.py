"""A LiveKit class end to end: launch with provider=livekit, join through the tool's page,
attendance from LiveKit's signed webhooks, scores at the platform — like BigBlueButton."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from livekit import api
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ClassSession, ProviderEvent, Room
from tests.conftest import LIVEKIT_KEY, LIVEKIT_SECRET
from tests.support import scores_for


@pytest.fixture
def livekit_link(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    return "40"


def join_token(person) -> str:
    response = person.join()
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/rooms/{person.room_id}/live"
    # The token travels in the fragment, which no server sees; the query has the page ticket.
    assert "lk" not in parse_qs(location.query) and "t" in parse_qs(location.query)
    return parse_qs(location.fragment)["lk"][0]


def test_teacher_join_creates_the_room_and_gets_a_moderator_token(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    token = join_token(teacher)
    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(token)
    assert claims.video.room_admin and claims.video.room_join and claims.video.can_publish
    with live.app.app_context():
        meeting_id = db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))
    assert claims.video.room == meeting_id and meeting_id in live.livekit.rooms
    page = teacher.get("/live")
    assert page.status_code == 200 and "/static/vendor/livekit-client.umd.js" in page.text


def test_student_waits_then_gets_an_attendee_token(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    student = live.launch("student", resource_link_id=livekit_link)
    assert student.join().status_code == 303  # not started yet: back to the waiting page
    assert live.livekit.count("CreateRoom") == 0
    join_token(teacher)
    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(join_token(student))
    assert claims.video.room_join and not claims.video.room_admin
    assert "screen_share" not in (claims.video.can_publish_sources or [])


def test_livekit_class_through_webhooks_ends_with_correct_scores(live, livekit_link):
    platform, livekit = live.platform, live.livekit
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    live.launch("student", resource_link_id=livekit_link)
    live.launch("student5", resource_link_id=livekit_link)
    join_token(teacher)
    with live.app.app_context():
        room = db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))
    hook = live.url + "/webhooks/livekit"
    t0 = int(livekit.rooms[room].room.creation_time)
    sam, sally = live.public_id("student"), live.public_id("student5")
    events = [
        livekit.room_started(room, t0),
        livekit.participant_joined(room, sam, t0, "Sam Student"),
        livekit.participant_joined(room, sally, t0 + 600, "Sally Student"),
        livekit.participant_left(room, sally, t0 + 1800, "Sally Student", joined_at=t0 + 600),
        livekit.participant_left(room, sam, t0 + 3600, "Sam Student", joined_at=t0),
        livekit.room_finished(room, t0 + 3600),
    ]
    for event in events:
        answer = livekit.send_webhook(hook, event)
        assert answer.status_code == 200, answer.text
    livekit.send_webhook(hook, events[1])  # LiveKit retries deliveries: stored once
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(platform, "4")] == [100.0]
    assert [s["scoreGiven"] for s in scores_for(platform, "5")] == [round(100 * 1200 / 3600, 2)]
    assert scores_for(platform, "5")[0]["comment"] == "Attended 20 of 60 minutes"
    assert [s["scoreGiven"] for s in scores_for(platform, "6")] == [0.0]  # roster, never came


def test_webhooks_arriving_end_first_still_give_the_class_its_start_and_end(live, livekit_link):
    """LiveKit delivers webhooks in no guaranteed order: an end that arrives first must stay the
    end (it once became the session's start, and the session never ended)."""
    platform, livekit = live.platform, live.livekit
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    live.launch("student", resource_link_id=livekit_link)
    join_token(teacher)
    with live.app.app_context():
        room = db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))
    hook = live.url + "/webhooks/livekit"
    t0 = int(livekit.rooms[room].room.creation_time)
    sam = live.public_id("student")
    for event in (livekit.room_finished(room, t0 + 3600),
                  livekit.participant_left(room, sam, t0 + 1800, "Sam Student", joined_at=t0),
                  livekit.participant_joined(room, sam, t0, "Sam Student"),
                  livekit.room_started(room, t0)):
        assert livekit.send_webhook(hook, event).status_code == 200
    live.run_worker()
    with live.app.app_context():
        session = db.session.scalar(select(ClassSession))
        assert (session.started_at.timestamp(), session.ended_at.timestamp()) == (t0, t0 + 3600)
    assert [s["scoreGiven"] for s in scores_for(platform, "4")] == [50.0]


def test_forged_or_altered_livekit_webhooks_are_refused_and_change_nothing(live, livekit_link):
    livekit = live.livekit
    hook = live.url + "/webhooks/livekit"
    event = livekit.room_started("some-room", 1_700_000_000)
    assert livekit.send_webhook(hook, event, api_secret="not-the-secret").status_code == 401
    body = livekit.webhook_body(event)
    token = livekit.sign_webhook(body)
    altered = body.replace(b"some-room", b"some-roon")
    headers = {"Authorization": token, "Content-Type": "application/webhook+json"}
    answer = requests.post(hook, data=altered, headers=headers, timeout=5)
    assert answer.status_code == 401
    assert requests.post(hook, data=body, timeout=5).status_code == 401  # unsigned
    with live.app.app_context():
        assert db.session.scalar(select(db.func.count(ProviderEvent.id))) == 0


@pytest.mark.parametrize("live_overrides", [{"LIVEKIT_URL": "", "LIVEKIT_API_KEY": "", "LIVEKIT_API_SECRET": ""}])
def test_livekit_room_without_configuration_shows_the_teacher_a_clear_message(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    page = teacher.get()
    assert page.status_code == 200 and "not set up yet" in page.text and 'id="join"' not in page.text


def test_moderator_removes_a_participant_through_the_tool(live, livekit_link):
    teacher = live.launch("teacher", resource_link_id=livekit_link)
    student = live.launch("student", resource_link_id=livekit_link)
    join_token(teacher)
    with live.app.app_context():
        room = db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))
    live.livekit.join(room, live.public_id("student"), "Sam Student")
    assert student.post("/live/action", action="remove", identity=live.public_id("student")).status_code == 403
    answer = teacher.post("/live/action", action="remove", identity=live.public_id("student"))
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    again = teacher.post("/live/action", action="remove", identity=live.public_id("student"))
    assert again.status_code == 409


def test_polling_list_participants_is_the_safety_net(live, livekit_link):
    from lti_tool.attendance.polling import poll_running_rooms
    from lti_tool.models import AttendanceInterval

    teacher = live.launch("teacher", resource_link_id=livekit_link)
    live.launch("student", resource_link_id=livekit_link)
    join_token(teacher)
    with live.app.app_context():
        room = db.session.scalar(select(Room.meeting_id).where(Room.provider == "livekit"))
    live.livekit.join(room, live.public_id("student"), "Sam Student", '{"role":"attendee"}')
    with live.app.app_context():
        poll_running_rooms()
        open_ids = db.session.scalars(
            select(AttendanceInterval.external_user_id).where(AttendanceInterval.left_at.is_(None))
        ).all()
    assert open_ids == [live.public_id("student")]
    live.livekit.leave(room, live.public_id("student"))
    with live.app.app_context():
        poll_running_rooms()
        assert db.session.scalars(select(AttendanceInterval).where(AttendanceInterval.left_at.is_(None))).all() == []
