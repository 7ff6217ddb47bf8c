"""The finish (issue 11): error pages with a way on, the room settings form, static files.

Error pages: a reference code on the page is the one in the error's log line; "Back to the
course" is the person's own return URL and only when their ticket identified them; "Try again"
where trying again can help; students never read administrator words. Settings: grouped,
positive labels, contradictions refused with nothing stored, only what the room's provider
honours. Static files: gzip, versioned URLs cached for a year, others revalidated, the security
headers kept.
"""
from __future__ import annotations

import gzip
import html
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Room
from tests.conftest import LIVEKIT_KEY, LIVEKIT_SECRET

STATIC = Path(__file__).resolve().parent.parent / "static"
NOBODY_LISTENS = "http://127.0.0.1:9"  # the discard port: connection refused at once


def page_text(response) -> str:
    return response.get_data(as_text=True)


def reference_on(page: str) -> str:
    match = re.search(r'id="error-reference">([2-9A-Z]{4}-[2-9A-Z]{4})<', page)
    assert match, "the error page shows no reference code"
    return match.group(1)


def link(page: str, element_id: str) -> str | None:
    match = re.search(rf'<a id="{element_id}"[^>]*href="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def logged_with(caplog, reference: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"ref={reference}" in r.getMessage()]


# --- error pages ------------------------------------------------------------------------------
def test_an_unknown_person_gets_a_reference_and_is_told_to_open_the_activity_again(lms, caplog):
    client = lms.app.test_client()
    answer = client.get("/rooms/1?t=forged")
    page = page_text(answer)
    assert answer.status_code == 401
    reference = reference_on(page)
    assert logged_with(caplog, reference), "support cannot find the error from its reference"
    assert "open the activity again from your course page" in page
    assert link(page, "back-to-course") is None, "nobody identified: no one's return URL"
    assert link(page, "try-again") is None, "trying again cannot help a refused ticket"


def test_each_error_gets_its_own_reference(lms, caplog):
    client = lms.app.test_client()
    first, second = (reference_on(page_text(client.get("/no-such-page"))) for _ in range(2))
    assert first != second
    assert any("404" in line for line in logged_with(caplog, first))


def test_video_server_down_offers_try_again_and_the_person_s_own_way_back(lms, bbb, platform, caplog):
    lms.launch("student5")  # someone else in the same room, with their own return URL
    teacher = lms.launch("teacher")
    bbb.stop()
    answer = teacher.join()
    page = page_text(answer)
    assert answer.status_code == 503 and "not answering" in page
    # Back to the course: this teacher's own Moodle return URL, with their own session key.
    back = link(page, "back-to-course")
    assert back is not None and "mod/lti/return.php" in back
    assert f"sesskey={platform.sesskey_of(platform.user('teacher'))}" in back
    assert platform.sesskey_of(platform.user("student5")) not in page
    # Try again: the room page with a fresh page ticket of the same person, which opens.
    again = link(page, "try-again")
    assert again is not None and again.startswith(f"/rooms/{teacher.room_id}?t=")
    assert teacher.client.get(again).status_code == 200
    reference = reference_on(page)
    assert any("ProviderUnavailable" in line for line in logged_with(caplog, reference))


@pytest.mark.parametrize("app_overrides", [{"BBB_SHARED_SECRET": "wrong-secret"}])
def test_a_student_never_reads_administrator_words_when_the_set_up_is_wrong(lms, caplog):
    teacher, student = lms.launch("teacher"), lms.launch("student")
    teacher.save_settings(mute_on_start="on", record="on", allow_start_stop_recording="on")  # no waiting
    answer = student.join()
    page = page_text(answer)
    assert answer.status_code == 503
    for word in ("administrator", "credential", "secret", "checksum", "BBB_", "settings need"):
        assert word.lower() not in page.lower(), word
    assert "support" in page
    assert any("checksum" in line for line in logged_with(caplog, reference_on(page)))


def test_launch_refusal_page_has_a_reference_in_the_log(lms, caplog):
    client = lms.app.test_client()
    answer = client.post("/lti/launch", data={"id_token": "not-a-jwt", "state": "nope"})
    page = page_text(answer)
    assert 400 <= answer.status_code < 500
    assert logged_with(caplog, reference_on(page))


# --- room settings ----------------------------------------------------------------------------
def test_settings_are_grouped_with_positive_labels(lms):
    page = page_text(lms.launch("teacher").page())
    legends = re.findall(r"<legend>([^<]+)</legend>", page)
    assert legends == ["Who may do what", "Audio and video", "Chat and notes", "Recording", "Welcome"]
    assert "Students may use their camera" in page and "Students may write in the class chat" in page
    assert not re.search(r">[^<]*(cannot|No public chat|do not see)[^<]*</label>", page), "a negative label"
    assert '<details id="settings-panel">' in page, "closed until the teacher opens it"


def test_a_positive_label_unticked_locks_the_feature_at_bbb(lms, bbb):
    teacher = lms.launch("teacher")
    saved = teacher.save_settings(wait_for_moderator="on", students_microphone="on", students_public_chat="on",
                                  record="on", allow_start_stop_recording="on")
    assert saved.status_code == 303 and "saved=1" in saved.headers["Location"]
    reopened = page_text(teacher.client.get(saved.headers["Location"]))
    assert '<details id="settings-panel" open>' in reopened and "Settings saved" in reopened
    assert re.search(r'id="s-students_microphone" name="students_microphone" checked', reopened)
    assert not re.search(r'id="s-students_camera" name="students_camera" checked', reopened)
    teacher.join()
    create = dict(next(params for call, params in bbb.calls if call == "create"))
    assert create["lockSettingsDisableCam"] == "true" and create["lockSettingsDisableMic"] == "false"
    assert create["lockSettingsDisablePublicChat"] == "false" and create["lockSettingsDisablePrivateChat"] == "true"


def test_recording_off_with_automatic_recording_on_is_refused_and_nothing_is_stored(lms, app):
    teacher = lms.launch("teacher")
    with app.app_context():
        before = db.session.scalar(select(Room.settings).where(Room.id == teacher.room_id))
    answer = teacher.save_settings(auto_start_recording="on", students_camera="on", welcome="Hi")
    page = page_text(answer)
    assert answer.status_code == 400
    assert '<details id="settings-panel" open>' in page and 'id="settings-problems"' in page
    assert "needs “The class may be recorded”" in html.unescape(page)
    # The form comes back as the teacher left it, not as stored.
    assert re.search(r'id="s-auto_start_recording" name="auto_start_recording" checked', page)
    assert ">Hi</textarea>" in page
    with app.app_context():
        assert db.session.scalar(select(Room.settings).where(Room.id == teacher.room_id)) == before


def test_recording_allowed_that_nothing_could_start_is_refused(lms):
    answer = lms.launch("teacher").save_settings(record="on")
    assert answer.status_code == 400 and "nothing would start the recording" in page_text(answer)


def test_a_class_size_that_is_not_a_number_is_refused_readably(lms):
    answer = lms.launch("teacher").save_settings(max_participants="-3")
    assert answer.status_code == 400 and "whole number from 0" in page_text(answer)


@pytest.mark.parametrize("app_overrides", [{"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": LIVEKIT_KEY,
                                            "LIVEKIT_API_SECRET": LIVEKIT_SECRET}])
def test_a_livekit_room_offers_only_what_livekit_honours_and_keeps_the_rest(lms, app):
    # Options LiveKit does not honour, set when the room was made (the link's custom parameters).
    lms.platform.add_resource_link("40", "LiveKit class", custom={
        "provider": "livekit", "mute_on_start": "true", "lock_disable_notes": "true"})
    teacher = lms.launch("teacher", resource_link_id="40")
    page = page_text(teacher.page())
    assert "Students may use their camera" in page and "Welcome message" in page
    for absent in ("Microphones are muted", "shared notes", "Start recording automatically",
                   "Teachers may start and stop"):
        assert absent not in page, absent
    assert teacher.save_settings(students_camera="on", welcome="Hello").status_code == 303
    with app.app_context():
        stored = db.session.get(Room, teacher.room_id).settings
    assert stored["mute_on_start"] is True and stored["lock_disable_notes"] is True, "hidden options kept"
    assert stored["lock_disable_cam"] is False and stored["lock_disable_mic"] is True
    assert stored["welcome"] == "Hello"


@pytest.mark.parametrize("app_overrides", [{
    "PROVIDER_PACKAGES": "lti_tool.providers.bbb lti_tool.providers.livekit tests.toy_provider",
    "TOY_SERVER_URL": NOBODY_LISTENS, "TOY_SECRET": "toy-secret-0123456789"}])
def test_the_toy_provider_room_shows_only_the_roles_it_knows(lms):
    lms.platform.add_resource_link("50", "Toy class", custom={"provider": "toy"})
    page = page_text(lms.launch("teacher", resource_link_id="50").page())
    assert re.findall(r"<legend>([^<]+)</legend>", page) == ["Who may do what"]
    assert "Students wait until a teacher starts the class" in page and "Everyone joins" in page
    assert "Students see who else" not in page and "Largest class size" not in page


# --- static files -----------------------------------------------------------------------------
SDK = "vendor/livekit-client.umd.js"


@pytest.mark.skipif(not (STATIC / SDK).exists(), reason="the LiveKit SDK is fetched by bin/setup")
def test_the_livekit_sdk_travels_gzipped_and_versioned_for_a_year(lms):
    client = lms.app.test_client()
    page = page_text(lms.launch("teacher").page())
    script = re.search(r'src="(/static/pages\.js\?v=[0-9a-f]{12})"', page)
    assert script, "static URLs carry their version"
    with lms.app.test_request_context():
        from flask import url_for
        address = url_for("static", filename=SDK)
    answer = client.get(address, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Accept-Encoding" in answer.headers["Vary"]
    original = (STATIC / SDK).read_bytes()
    assert gzip.decompress(answer.data) == original
    assert len(answer.data) < len(original) / 3, (len(answer.data), len(original))


def test_an_unversioned_or_old_address_is_cached_briefly_and_revalidated(lms):
    client = lms.app.test_client()
    for address in ("/static/style.css", "/static/style.css?v=000000000000"):
        answer = client.get(address)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "max-age=300, public"
        again = client.get(address, headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status_code == 304 and again.data == b""
    plain = client.get("/static/style.css", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.data == (STATIC / "style.css").read_bytes()


def test_static_files_keep_the_security_headers(lms):
    answer = lms.app.test_client().get("/static/classroom.js")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert "camera=(self)" in answer.headers["Permissions-Policy"]
    assert "Content-Security-Policy" not in answer.headers  # as before: CSP is for HTML pages
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert answer.mimetype == "text/javascript"


def test_the_set_up_form_refuses_automatic_recording_without_recording_too(live):
    from tests.test_deep_linking import SetUp

    setup = SetUp(live)
    answer = setup.submit(title="Lab", provider="bbb", record=False, auto_start_recording=True)
    assert answer.status_code == 400
    assert 'href="#f-auto_start_recording"' in answer.text and "needs" in html.unescape(answer.text)
    assert live.platform.created_activities == []
