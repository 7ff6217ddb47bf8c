"""The room: moderators start and end the class, attendees wait and join, BBB over real HTTP."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Room
from tests.conftest import row_counts


def join_query(response) -> dict:
    assert response.status_code == 302, response.get_data(as_text=True)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def follow_to_bbb(response) -> requests.Response:
    """Be the browser: open the join URL at the fake BBB (which checks the checksum)."""
    return requests.get(response.headers["Location"], allow_redirects=False, timeout=5)


def html(response) -> str:
    return response.get_data(as_text=True)


# --- joining ----------------------------------------------------------------------------------
def test_teacher_join_redirects_to_bbb_as_moderator_with_accepted_checksum(lms, bbb):
    teacher = lms.launch("teacher")
    response = teacher.join()
    query = join_query(response)
    assert response.headers["Location"].startswith(bbb.api_url + "join?")
    assert query["role"] == "MODERATOR" and query["fullName"] == "Terry Teacher"
    assert query["createTime"] and query["redirect"] == "true"
    assert len(query["checksum"]) == 64  # sha256 by default
    at_bbb = follow_to_bbb(response)
    assert at_bbb.status_code == 302 and "/html5client/join?sessionToken=" in at_bbb.headers["Location"]
    assert [j.role for j in bbb.joins] == ["MODERATOR"]


def test_student_before_start_sees_waiting_page_and_cannot_join(lms, bbb):
    student = lms.launch("student")
    assert 'id="join"' not in html(student.page())
    response = student.join()
    assert response.status_code == 303 and response.headers["Location"].startswith(f"/rooms/{student.room_id}?")
    assert bbb.count("create") == 0, "a waiting attendee must never create the meeting"


def test_student_after_teacher_started_joins_as_viewer(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    follow_to_bbb(teacher.join())
    assert student.status().get_json()["open"] is True
    page = html(student.page())
    assert 'id="join"' in page and "Join class" in page
    response = student.join()
    query = join_query(response)
    assert query["role"] == "VIEWER" and query["fullName"] == "Sam Student"
    assert follow_to_bbb(response).status_code == 302
    assert [j.role for j in bbb.joins] == ["MODERATOR", "VIEWER"]


def test_join_user_id_is_stable_and_not_the_lms_id(lms):
    teacher = lms.launch("teacher")
    first = join_query(teacher.join())["userID"]
    again = join_query(lms.launch("teacher").join())["userID"]
    assert first == again and first != "3"


def test_student_joins_while_meeting_runs_even_without_tool_start(app, lms, bbb):
    """The server reports the meeting running (e.g. state lost): attendees may join."""
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    with app.app_context():
        room = db.session.get(Room, teacher.room_id)
        room.started_at = None
        db.session.commit()
        meeting_id = room.meeting_id
    bbb.enter(meeting_id, "someone", role="MODERATOR")
    assert student.status().get_json()["open"] is True
    assert join_query(student.join())["role"] == "VIEWER"


def test_second_launch_of_same_link_reuses_room(app, lms):
    first, second = lms.launch("teacher"), lms.launch("student")
    assert first.room_id == second.room_id
    assert row_counts(app)["rooms"] == 1


def test_each_resource_link_gets_its_own_room_with_unguessable_meeting_id(app, lms, platform):
    platform.add_resource_link("7", "Second activity")
    first, second = lms.launch("teacher"), lms.launch("teacher", resource_link_id="7")
    assert first.room_id != second.room_id
    with app.app_context():
        meeting_ids = db.session.scalars(select(Room.meeting_id)).all()
    assert len(set(meeting_ids)) == 2
    for meeting_id in meeting_ids:
        assert len(meeting_id) == 32 and int(meeting_id, 16) >= 0  # 128 random bits, hex
        assert "LIVE101" not in meeting_id and meeting_id not in ("1", "7")


def test_custom_provider_parameter_picks_the_provider(app, lms, platform):
    platform.add_resource_link("8", "LiveKit class", custom={"provider": "livekit"})
    teacher = lms.launch("teacher", resource_link_id="8")
    with app.app_context():
        assert db.session.get(Room, teacher.room_id).provider == "livekit"
    page = teacher.page()
    assert page.status_code == 200 and "not set up yet" in html(page)


def test_unknown_custom_provider_falls_back_to_default(app, lms, platform):
    platform.add_resource_link("9", "Odd", custom={"provider": "zoom"})
    teacher = lms.launch("teacher", resource_link_id="9")
    with app.app_context():
        assert db.session.get(Room, teacher.room_id).provider == "bbb"


# --- ending -----------------------------------------------------------------------------------
def test_teacher_ends_class_and_students_wait_again(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    assert 'id="end"' in html(teacher.page())
    response = teacher.end()
    assert response.status_code == 303
    assert bbb.count("end") == 1
    assert student.status().get_json()["open"] is False
    assert 'id="join"' not in html(student.page())
    assert "Start a new class" in html(teacher.page())  # the end is told, not a plain Start class


def test_student_cannot_end_the_class(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    response = student.end()
    assert response.status_code == 403 and "Only the teachers" in html(response)
    assert bbb.count("end") == 0


def test_meeting_gone_from_server_closes_the_room(app, lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    with app.app_context():
        meeting_id = db.session.get(Room, teacher.room_id).meeting_id
    bbb.expire(meeting_id)
    assert student.status().get_json()["open"] is False


# --- the waiting crowd costs the server nothing -----------------------------------------------
def test_many_waiting_students_make_at_most_one_server_call_per_interval(lms, bbb):
    students = [lms.launch("student") for _ in range(3)]
    for _ in range(50):
        for student in students:
            assert student.status().status_code == 200
    assert bbb.count("getMeetingInfo") + bbb.count("isMeetingRunning") <= 1


@pytest.mark.parametrize("app_overrides", [{"ROOM_STATE_CHECK_SECONDS": "0"}])
def test_state_is_checked_again_after_the_interval(lms, bbb):
    student = lms.launch("student")
    _ = student.ticket  # read from the room page, which asks the server too
    before = bbb.count("getMeetingInfo")
    student.status()
    student.status()
    assert bbb.count("getMeetingInfo") - before == 2


# --- authorisation ----------------------------------------------------------------------------
def test_room_without_ticket_is_refused(app, lms):
    teacher = lms.launch("teacher")
    client = app.test_client()
    for response in (client.get(f"/rooms/{teacher.room_id}"), client.post(f"/rooms/{teacher.room_id}/join")):
        assert response.status_code == 401 and "from your course" in html(response)


def test_forged_ticket_is_refused(lms):
    teacher = lms.launch("teacher")
    teacher.ticket = teacher.ticket[:-4] + ("AAAA" if not teacher.ticket.endswith("AAAA") else "BBBB")
    assert teacher.join().status_code == 401


def test_ticket_of_one_course_opens_nothing_in_another(app, lms, platform):
    platform.add_course("3", "OTHER", "Another course")
    platform.add_resource_link("20", "Other class", course_id="3")
    mine = lms.launch("student")
    theirs = lms.launch("teacher", resource_link_id="20", context_id="3")
    theirs.join()
    # The student's valid ticket, used on the other course's room.
    for response in (
        mine.client.get(f"/rooms/{theirs.room_id}", query_string={"t": mine.page_ticket}),
        mine.client.post(f"/rooms/{theirs.room_id}/join", data={"t": mine.ticket}),
        mine.client.post(f"/rooms/{theirs.room_id}/end", data={"t": mine.ticket}),
    ):
        assert response.status_code == 403


def test_expired_page_ticket_asks_to_relaunch(lms, app):
    teacher = lms.launch("teacher")
    app.config["PAGE_TICKET_SECONDS"] = -1
    response = teacher.page()
    assert response.status_code == 401 and "expired" in html(response)


def test_expired_room_ticket_asks_to_relaunch(lms, app):
    teacher = lms.launch("teacher")
    _ = teacher.ticket  # the page's forms, read while it was valid
    app.config["ROOM_TICKET_SECONDS"] = -1
    response = teacher.join()
    assert response.status_code == 401 and "expired" in html(response)


def test_cross_site_form_post_is_refused(lms, bbb):
    teacher = lms.launch("teacher")
    response = teacher.join(Origin="https://evil.example.com")
    assert response.status_code == 403
    assert bbb.count("create") == 0


def test_same_site_form_post_is_accepted(lms):
    teacher = lms.launch("teacher")
    assert teacher.join(Origin="http://localhost").status_code == 302


def test_moderator_role_follows_the_latest_launch(app, lms, platform):
    """A teacher demoted in the LMS loses moderator rights with their next launch."""
    teacher = lms.launch("teacher")
    platform.user("teacher").roles[:] = ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
    lms.launch("teacher")
    assert teacher.end().status_code == 403


# --- settings ---------------------------------------------------------------------------------
def test_teacher_changes_settings_and_they_reach_bbb(lms, bbb):
    teacher = lms.launch("teacher")
    response = teacher.save_settings(
        wait_for_moderator="on", mute_on_start="on", max_participants="25", welcome="Hello class"
    )
    assert response.status_code == 303
    assert "Settings saved" in html(teacher.client.get(response.headers["Location"]))
    teacher.join()
    create = dict(next(params for call, params in bbb.calls if call == "create"))
    assert create["muteOnStart"] == "true" and create["record"] == "false"
    assert create["maxParticipants"] == "25" and create["welcome"] == "Hello class"
    assert "attendeePW" not in create and "moderatorPW" not in create


def test_default_settings_reach_bbb(lms, bbb):
    teacher = lms.launch("teacher")
    teacher.join()
    create = dict(next(params for call, params in bbb.calls if call == "create"))
    assert create["record"] == "true" and create["autoStartRecording"] == "false"
    assert create["allowStartStopRecording"] == "true"
    # One page of the tool for everyone, which sends each person back to their own LMS page.
    assert create["logoutURL"] == f"http://localhost/rooms/{teacher.room_id}/left"


def test_student_cannot_change_settings(lms):
    student = lms.launch("student")
    assert student.save_settings(everyone_moderator="on").status_code == 403


def test_bad_settings_value_is_a_readable_400(lms):
    teacher = lms.launch("teacher")
    response = teacher.save_settings(max_participants="lots")
    assert response.status_code == 400 and "whole number" in html(response)


def test_everyone_moderator_makes_students_moderators_in_the_meeting_only(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.save_settings(everyone_moderator="on", wait_for_moderator="on")
    # Starting the class stays a teacher's action: the student waits, and creates nothing.
    assert student.join().status_code == 303 and bbb.count("create") == 0
    follow_to_bbb(teacher.join())
    assert join_query(student.join())["role"] == "MODERATOR"


def test_without_wait_for_moderator_students_join_directly(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.save_settings(mute_on_start="on")  # wait_for_moderator unchecked
    assert 'id="join"' in html(student.page())
    assert join_query(student.join())["role"] == "VIEWER"
    assert bbb.count("create") == 1


# --- BigBlueButton failures -------------------------------------------------------------------
def test_bbb_down_gives_a_readable_503(lms, bbb):
    teacher = lms.launch("teacher")
    bbb.stop()
    response = teacher.join()
    assert response.status_code == 503 and "not answering" in html(response)


def test_bbb_slow_gives_a_readable_503(lms, bbb, app):
    app.extensions["providers"]["bbb"].client.timeout = 0.2
    app.extensions["providers"]["bbb"].client.backoff_base = 0.01
    bbb.delay_seconds = 0.5
    response = lms.launch("teacher").join()
    assert response.status_code == 503


def test_bbb_recovers_after_transient_errors(lms, bbb, app):
    app.extensions["providers"]["bbb"].client.backoff_base = 0.01
    teacher = lms.launch("teacher")
    bbb.fail_next(2, status=502)
    assert teacher.join().status_code == 302


@pytest.mark.parametrize("app_overrides", [{"BBB_SHARED_SECRET": "wrong-secret"}])
def test_wrong_bbb_secret_tells_the_admin(lms, caplog):
    response = lms.launch("teacher").join()
    # The person reads plain words and a reference; the log line under that reference tells the admin.
    assert response.status_code == 503 and "support" in html(response) and "secret" not in html(response)
    assert "wrong-secret" not in caplog.text
    reference = re.search(r'id="error-reference">([A-Z0-9-]+)<', html(response)).group(1)
    assert any("secret" in r.getMessage() and "algorithm" in r.getMessage() and f"ref={reference}" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("app_overrides", [{"BBB_SERVER_URL": "", "BBB_SHARED_SECRET": ""}])
def test_unconfigured_bbb_shows_teacher_a_clear_message(lms):
    page = lms.launch("teacher").page()
    assert page.status_code == 200 and "not set up yet" in html(page)
    assert 'id="join"' not in html(page)


def test_state_check_failure_keeps_last_known_state(lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    bbb.stop()
    assert student.status().get_json()["open"] is True


# --- the end-of-meeting callback --------------------------------------------------------------
def end_callback_url(bbb) -> str:
    create = dict(next(params for call, params in bbb.calls if call == "create"))
    return create["meta_endCallbackUrl"]


def test_create_registers_a_signed_end_callback_under_webhooks(lms, bbb):
    lms.launch("teacher").join()
    url = end_callback_url(bbb)
    assert url.startswith("http://localhost/webhooks/bbb/end?") and "sig=" in url


def test_end_callback_confirmed_by_server_closes_room(app, lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    url = end_callback_url(bbb)
    with app.app_context():
        meeting_id = db.session.get(Room, teacher.room_id).meeting_id
    bbb.expire(meeting_id)
    response = app.test_client().get(url + "&recordingmarks=false")
    assert response.status_code == 200 and response.get_json() == {"ended": True}
    assert student.status().get_json()["open"] is False


def test_end_callback_is_only_a_hint_while_server_says_running(app, lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    response = app.test_client().get(end_callback_url(bbb) + "&recordingmarks=false")
    assert response.get_json() == {"ended": False}
    assert student.status().get_json()["open"] is True


def test_end_callback_with_bad_signature_is_refused_and_changes_nothing(app, lms, bbb):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.join()
    url = end_callback_url(bbb).replace("sig=", "sig=0")
    calls_before = len(bbb.calls)
    response = app.test_client().get(url)
    assert response.status_code == 401 and response.is_json
    assert len(bbb.calls) == calls_before
    assert student.status().get_json()["open"] is True
