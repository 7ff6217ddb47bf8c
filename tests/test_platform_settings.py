"""One tool serving several institutions: each platform registration may have its own video
service, server and secret, falling back to the environment for what it does not set.

Two fake BigBlueButton servers over real HTTP: the environment's, and a second institution's,
whose platform is registered in the database with `platform set`. Its rooms are made on its own
server; its server's webhooks speak for its rooms only.
"""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select, text

from lti_tool.extensions import db
from lti_tool.models import Platform, Room, User
from tests.conftest import TOOL_BASE_URL, launch_at, run_cli
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.lti_platform import DEEP_LINKING_REQUEST
from tests.support import MINUTE, page_form, post_bbb_events, scores_for

OTHER_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def other_bbb():
    with FakeBigBlueButton(OTHER_SECRET) as server:
        yield server


def public_id_of(live, school, user: str) -> str:
    with live.app.app_context():
        return db.session.scalar(select(User.public_id).where(User.issuer == school.issuer,
                                                              User.sub == school.user(user).sub))


# --- the command line ---------------------------------------------------------------------------
def test_set_and_unset_a_platforms_own_video_settings(live, second_school, other_bbb):
    school = second_school
    code, output = run_cli(live.app, "platform", "set", "--issuer", school.issuer, "--client-id", school.client_id,
                       f"BBB_SERVER_URL={other_bbb.url}", f"BBB_SHARED_SECRET={OTHER_SECRET}")
    assert code == 0, output
    assert f"BBB_SERVER_URL = {other_bbb.url}" in output and "BBB_SHARED_SECRET = (set)" in output
    assert OTHER_SECRET not in output
    code, output = run_cli(live.app, "platform", "show", "--issuer", school.issuer, "--client-id", school.client_id)
    assert code == 0 and f"BBB_SERVER_URL={other_bbb.url}" in output and "BBB_SHARED_SECRET=(set)" in output
    assert OTHER_SECRET not in output
    code, output = run_cli(live.app, "platform", "unset", "--issuer", school.issuer, "--client-id", school.client_id,
                       "BBB_SHARED_SECRET")
    assert code == 0 and "BBB_SHARED_SECRET" not in output and "BBB_SERVER_URL" in output


def test_the_secrets_are_sealed_in_the_database(live, second_school):
    school = second_school
    assert run_cli(live.app, "platform", "set", "--issuer", school.issuer, "--client-id", school.client_id,
               f"BBB_SHARED_SECRET={OTHER_SECRET}")[0] == 0
    with live.app.app_context():
        stored = db.session.scalar(text("SELECT video_settings FROM platforms WHERE client_id = 'school-two'"))
    assert stored and OTHER_SECRET not in stored


@pytest.mark.parametrize("assignment, message", [
    ("NOT_A_SETTING=1", "not a video setting"),
    ("BBB_CHECKSUM_ALGORITHM=md5", "BBB_CHECKSUM_ALGORITHM must be"),
    ("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM=perhaps", "must be true or false"),
    ("LIVEKIT_URL=ftp://x", "LIVEKIT_URL must look like"),
    ("nonsense", "expected NAME=VALUE"),
])
def test_settings_the_tool_could_not_run_with_are_refused(live, second_school, assignment, message):
    code, output = run_cli(live.app, "platform", "set", "--issuer", second_school.issuer, "--client-id",
                       second_school.client_id, assignment)
    assert code != 0 and message in output
    with live.app.app_context():
        assert db.session.scalar(select(Platform.video_settings).where(Platform.client_id == "school-two")) is None


def test_a_file_registration_keeps_its_settings_in_tool_config(live):
    code, output = run_cli(live.app, "platform", "set", "--issuer", live.platform.issuer, "--client-id",
                       live.platform.client_id, "VIDEO_PROVIDER=livekit")
    assert code != 0 and "TOOL_CONFIG" in output and '"settings"' in output


# --- at run time ----------------------------------------------------------------------------------
def test_a_platforms_rooms_run_on_its_own_server_and_its_webhooks_grade_them(live, second_school, other_bbb):
    school = second_school
    run_cli(live.app, "platform", "set", "--issuer", school.issuer, "--client-id", school.client_id,
        f"BBB_SERVER_URL={other_bbb.url}", f"BBB_SHARED_SECRET={OTHER_SECRET}")
    teacher, student = launch_at(live, school, "teacher"), launch_at(live, school, "student")
    joined = teacher.join()
    assert joined.status_code == 302 and joined.headers["Location"].startswith(other_bbb.url)
    assert other_bbb.count("create") == 1 and live.bbb.count("create") == 0
    assert student.join().headers["Location"].startswith(other_bbb.url)
    with live.app.app_context():
        meeting_id = db.session.get(Room, teacher.room_id).meeting_id
    meeting = other_bbb.meetings[meeting_id]
    t0, internal = meeting.create_time, meeting.internal_id
    sam = public_id_of(live, school, "student")
    events = [other_bbb.event_meeting_created(meeting_id, t0, internal),
              other_bbb.event_user_joined(meeting_id, sam, "Sam", "VIEWER", t0, internal),
              other_bbb.event_user_left(meeting_id, sam, t0 + 30 * MINUTE, internal),
              other_bbb.event_meeting_ended(meeting_id, t0 + 60 * MINUTE, internal)]
    # The environment's server cannot speak for this institution's class…
    forged = post_bbb_events(live, events)
    assert forged.status_code == 200 and forged.json()["new"] == 0, forged.text
    # …its own can.
    assert other_bbb.send_webhook(live.url + "/webhooks/bbb", events).json()["new"] == 4
    live.run_worker()
    assert [s["scoreGiven"] for s in scores_for(school, "4")] == [50.0]


def test_a_platform_may_choose_its_own_video_service_for_new_rooms(live, second_school):
    school = second_school
    run_cli(live.app, "platform", "set", "--issuer", school.issuer, "--client-id", school.client_id,
        "VIDEO_PROVIDER=livekit")
    teacher = launch_at(live, school, "teacher")
    with live.app.app_context():
        assert db.session.get(Room, teacher.room_id).provider == "livekit"
    other = live.launch("teacher")  # the environment's platform keeps the environment's choice
    with live.app.app_context():
        assert db.session.get(Room, other.room_id).provider == "bbb"


def test_the_classroom_page_may_connect_to_a_platforms_own_livekit_server(live, second_school):
    school = second_school
    run_cli(live.app, "platform", "set", "--issuer", school.issuer, "--client-id", school.client_id,
        "VIDEO_PROVIDER=livekit", "LIVEKIT_URL=wss://livekit.school-two.example")
    page = live.launch("teacher").get()
    policy = page.headers["Content-Security-Policy"]
    assert "wss://livekit.school-two.example" in policy and "https://livekit.school-two.example" in policy


def test_tool_base_url_fixture_is_plain_http():
    assert TOOL_BASE_URL.startswith("http://")


def test_the_set_up_form_offers_the_platforms_own_video_service_first(live, second_school):
    run_cli(live.app, "platform", "set", "--issuer", second_school.issuer, "--client-id", second_school.client_id,
            "VIDEO_PROVIDER=livekit")
    theirs = second_school.launch(requests.Session(), user="teacher", message_type=DEEP_LINKING_REQUEST)
    ours = live.platform.launch(requests.Session(), user="teacher", message_type=DEEP_LINKING_REQUEST)
    assert page_form(theirs.text, "deep-link-form")[1]["provider"] == "livekit"
    assert page_form(ours.text, "deep-link-form")[1]["provider"] == "bbb"
