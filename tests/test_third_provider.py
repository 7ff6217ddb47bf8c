"""A third video provider plugs in without a line of the core changing.

tests/toy_provider is a provider package like providers/bbb and providers/livekit — its own
settings, provider, webhook route and event parsing — registered the same way (named in
PROVIDER_PACKAGES). A class on it runs end to end over real HTTP: launch → join (the core sends
people to the toy service's own join URL with their role) → the toy service's signed webhooks →
attendance → grades in the fake Moodle's gradebook.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import ClassSession, Room
from tests.fakes.toy_server import FakeToyVideo

TOY_SECRET = "toy-secret-0123456789"
MINUTE = 60_000
LINK = "50"


@pytest.fixture
def toy():
    with FakeToyVideo(TOY_SECRET) as server:
        yield server


@pytest.fixture
def live_overrides(toy) -> dict:
    return {"PROVIDER_PACKAGES": "lti_tool.providers.bbb lti_tool.providers.livekit tests.toy_provider",
            "TOY_SERVER_URL": toy.url, "TOY_SECRET": TOY_SECRET}


@pytest.fixture
def toy_link(live) -> str:
    live.platform.add_resource_link(LINK, "Toy class", custom={"provider": "toy"})
    return LINK


def meeting_of(live) -> str:
    with live.app.app_context():
        return db.session.scalar(select(Room.meeting_id).where(Room.provider == "toy"))


def test_the_toy_provider_is_loaded_with_its_settings_and_routes(live):
    assert sorted(live.app.extensions["providers"]) == ["bbb", "livekit", "toy"]
    assert live.app.config["TOY_SECRET"] == TOY_SECRET
    assert "/webhooks/toy" in {rule.rule for rule in live.app.url_map.iter_rules()}
    unsigned = requests.post(live.url + "/webhooks/toy", data="[]", timeout=5)
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "bad signature"}


def test_a_class_on_the_toy_provider_runs_from_launch_to_grades(live, toy, toy_link):
    teacher = live.launch("teacher", resource_link_id=toy_link)
    sam, sally = live.launch("student", resource_link_id=toy_link), live.launch("student5", resource_link_id=toy_link)
    assert sam.join().status_code == 303, "students wait until the teacher starts"

    started = teacher.join()
    assert started.status_code == 302 and started.headers["Location"].startswith(toy.url + "/join?")
    assert requests.get(started.headers["Location"], timeout=5).text == "In the toy class"
    for student in (sam, sally):
        joined = student.join()
        assert joined.status_code == 302 and requests.get(joined.headers["Location"], timeout=5).status_code == 200
    roles = {join["name"]: join["role"] for join in toy.joins}
    assert roles == {"Terry Teacher": "MODERATOR", "Sam Student": "VIEWER", "Sally Student": "VIEWER"}
    leave = parse_qs(urlsplit(started.headers["Location"]).query)["leave"][0]
    assert leave == f"{live.url}/rooms/{teacher.room_id}/left"  # the core's logout page, as for every provider

    room = meeting_of(live)
    t0 = toy.rooms[room]["started_ms"]
    ids = {user: live.public_id(user) for user in ("student", "student5")}
    events = [
        toy.event("started", room, t0),
        toy.event("joined", room, t0, user=ids["student"], name="Sam Student", tab="a"),
        toy.event("joined", room, t0 + 15 * MINUTE, user=ids["student5"], name="Sally Student", tab="b"),
        toy.event("left", room, t0 + 45 * MINUTE, user=ids["student5"], tab="b"),
        toy.event("left", room, t0 + 60 * MINUTE, user=ids["student"], tab="a"),
        toy.event("ended", room, t0 + 60 * MINUTE),
    ]
    answer = toy.send_webhook(live.url + "/webhooks/toy", events)
    assert answer.json() == {"received": 6, "new": 6, "refused": 0}
    live.run_worker()

    scores = {s["userId"]: s["scoreGiven"] for s in live.platform.scores}
    assert scores == {"4": 100.0, "5": 50.0, "6": 0.0}  # student6 never came: graded from the roster
    with live.app.app_context():
        session = db.session.scalar(select(ClassSession))
        assert session.run_id == toy.run_of(room)  # the provider's own id of the run


def test_the_toy_provider_s_status_feeds_the_waiting_page_and_the_polling_safety_net(live, toy, toy_link):
    teacher = live.launch("teacher", resource_link_id=toy_link)
    student = live.launch("student", resource_link_id=toy_link)
    teacher.join()
    room = meeting_of(live)
    toy.rooms[room]["participants"][live.public_id("student")] = {
        "user": live.public_id("student"), "name": "Sam Student", "role": "VIEWER"}
    from lti_tool.attendance.polling import poll_running_rooms

    with live.app.app_context():
        assert poll_running_rooms() == 1  # Sam is there; no event said so: the poll adds a join
    status = student.session.get(student.url("/status"), headers={"X-Room-Ticket": student.ticket}, timeout=5)
    assert status.json()["open"] is True  # the teacher started: the waiting page lets Sam in
    assert teacher.post("/end").status_code == 303
    assert f"DELETE {room}" in toy.calls
