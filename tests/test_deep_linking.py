"""Deep linking over real HTTP: a teacher's "Select content" in the fake Moodle 4.5 (from the
course and from the activity form) gets the tool's set-up form; its answer is a signed
LtiDeepLinkingResponse that the platform verifies against the tool's JWKS, and the first launch
of the activity it makes builds the room as chosen, grades landing in the activity's own
column. Students, other sites, tampered, replayed or expired forms and requests the tool cannot
answer are refused with readable pages, and nothing is written.
"""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from sqlalchemy import func, select, update

from lti_tool.extensions import db
from lti_tool.models import DeepLinkRequest, LoginState, ResourceLink, Room
from tests.fakes.lti_platform import (
    CLAIM_DL_CONTENT_ITEMS,
    CLAIM_DL_DATA,
    DEEP_LINKING_REQUEST,
    SCOPE_LINEITEM,
    SCOPE_SCORE,
)
from tests.support import ClassRun, page_form, scores_for

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


class SetUp:
    """A teacher's browser after "Select content": the tool's set-up form is on screen."""

    def __init__(self, live, user: str = "teacher", **login):
        self.live = live
        self.session = requests.Session()
        self.page = live.platform.launch(self.session, user=user, message_type=DEEP_LINKING_REQUEST, **login)

    def fields(self, page=None) -> dict:
        return page_form((self.page if page is None else page).text, "deep-link-form")[1]

    def submit(self, origin: str | None = None, page=None, **choices) -> requests.Response:
        """Send the form as shown, with these changes (False unticks a box, None drops a field)."""
        data = self.fields(page)
        for name, value in choices.items():
            if value is None or value is False:
                data.pop(name, None)
            else:
                data[name] = "on" if value is True else value
        return self.session.post(self.live.url + "/lti/deep-link", data=data, allow_redirects=False,
                                 headers={"Origin": origin or self.live.url})


def returned_jwt(answer: requests.Response) -> tuple[str, str]:
    """The return page's self-submitting form: (the platform's return URL, the JWT)."""
    action, fields = page_form(answer.text, "deep-link-return")
    return action, fields["JWT"]


def send_to_platform(answer: requests.Response) -> requests.Response:
    """What the return page's script does in the browser: post the JWT to the platform."""
    action, token = returned_jwt(answer)
    return requests.post(action, data={"JWT": token}, timeout=10)


def verified_response(live, token: str) -> tuple[dict, dict]:
    """The response as a platform checks it: against the tool's published keys."""
    signing = jwt.PyJWKClient(live.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing.key, algorithms=["RS256"], audience=live.platform.issuer,
                        issuer=live.platform.client_id, options={"require": ["exp", "iat", "nonce"]})
    return jwt.get_unverified_header(token), claims


def room_of(live, link_id: str) -> Room:
    with live.app.app_context():
        room = db.session.scalar(select(Room).join(ResourceLink).where(ResourceLink.resource_link_id == link_id))
        db.session.expunge(room)
        return room


def count(live, model) -> int:
    with live.app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


PARIS_CHOICES = {"title": "Seminar on Mondays", "provider": "livekit", "date": "2027-03-01", "time": "09:00",
                 "timezone": "Europe/Paris", "minutes": "90", "weeks": "12", "wait_for_moderator": False,
                 "mute_on_start": True, "record": False, "points": "10"}


# --------------------------------------------------------------------------- the happy paths
def test_select_content_from_the_course_places_a_live_class_built_as_chosen(live):
    platform = live.platform
    setup = SetUp(live)
    assert setup.page.status_code == 200
    shown = setup.fields()
    assert shown["title"] == "Deep linked item" and shown["grading"] == "on" and shown["points"] == "100"
    assert shown["wait_for_moderator"] == "on" and shown["record"] == "on" and "mute_on_start" not in shown
    assert 'value="bbb"' in setup.page.text and "LiveKit" in setup.page.text  # two providers configured

    answer = setup.submit(**PARIS_CHOICES)
    assert answer.status_code == 200, answer.text
    action, token = returned_jwt(answer)
    assert action == platform.deep_link_return_url("2")
    header, claims = verified_response(live, token)
    assert header["kid"] == live.app.extensions["key_ring"].signing_key.kid and header["alg"] == "RS256"
    assert claims["iss"] == platform.client_id and claims["aud"] == platform.issuer
    assert claims[LTI + "deployment_id"] == "1" and claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert CLAIM_DL_DATA not in claims  # Moodle sent no data: none comes back
    (item,) = claims[CLAIM_DL_CONTENT_ITEMS]
    assert item["type"] == "ltiResourceLink" and item["title"] == "Seminar on Mondays"
    assert item["url"] == live.url + "/lti/launch"
    assert item["custom"] == {
        "provider": "livekit", "schedule_start": "2027-03-01T09:00+01:00", "schedule_minutes": "90",
        "schedule_weeks": "12", "wait_for_moderator": "false", "everyone_moderator": "false", "record": "false",
        "auto_start_recording": "false", "mute_on_start": "true", "webcams_only_for_moderator": "false",
        "grading": "on", "grade_points": "10",
    }
    assert item["lineItem"]["scoreMaximum"] == 10 and item["lineItem"]["label"] == "Seminar on Mondays"
    assert item["lineItem"]["tag"] == "attendance" and item["lineItem"]["resourceId"]

    saved = send_to_platform(answer)
    assert saved.status_code == 200 and "Activity added" in saved.text
    (link,) = platform.created_activities
    teacher = live.launch("teacher", resource_link_id=link.id)
    assert teacher.get().status_code == 200
    room = room_of(live, link.id)
    assert room.provider == "livekit" and room.name == "Seminar on Mondays"
    assert room.schedule_start == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    assert (room.schedule_minutes, room.schedule_weeks) == (90, 12)
    assert room.settings["wait_for_moderator"] is False and room.settings["mute_on_start"] is True
    assert room.settings["record"] is False and room.settings["lock_disable_cam"] is False
    assert room.graded is True and room.score_maximum == 10.0

    assert send_to_platform(answer).status_code == 400, "the platform takes a response once (its nonce)"


def test_select_content_from_the_activity_form_fills_the_form_and_saving_it_makes_the_room(live):
    platform = live.platform
    setup = SetUp(live, entry="activity_form")
    assert setup.fields()["title"] == "Harness LTI 1.3 Tool"
    answer = setup.submit(title="Office hours", provider="bbb", grading=False)
    saved = send_to_platform(answer)
    assert saved.status_code == 200 and "save the activity form" in saved.text
    assert platform.created_activities == []
    link = platform.save_activity_form()
    assert link.custom == {"provider": "bbb", "wait_for_moderator": "true", "everyone_moderator": "false",
                           "record": "true", "auto_start_recording": "false", "mute_on_start": "false",
                           "webcams_only_for_moderator": "false", "grading": "off"}
    live.launch("student", resource_link_id=link.id)
    room = room_of(live, link.id)
    assert room.provider == "bbb" and room.graded is False and room.schedule_start is None


def test_the_request_data_comes_back_unchanged(live):
    setup = SetUp(live, deep_linking={"data": "csrf-token-from-the-platform"})
    answer = setup.submit(title="With data")
    _, claims = verified_response(live, returned_jwt(answer)[1])
    assert claims[CLAIM_DL_DATA] == "csrf-token-from-the-platform"
    assert send_to_platform(answer).status_code == 200


def test_without_a_script_the_time_is_read_as_utc_and_the_page_says_so(live):
    setup = SetUp(live)
    assert "read as UTC" in setup.page.text and setup.fields()["timezone"] == ""
    answer = setup.submit(title="UTC class", date="2027-06-01", time="18:30", timezone="")
    _, claims = verified_response(live, returned_jwt(answer)[1])
    assert claims[CLAIM_DL_CONTENT_ITEMS][0]["custom"]["schedule_start"] == "2027-06-01T18:30+00:00"


def test_a_time_zone_the_tool_does_not_know_is_not_silently_read_as_utc(live):
    setup = SetUp(live)
    answer = setup.submit(title="Far away", date="2027-03-01", time="09:00", timezone="Mars/Olympus_Mons")
    assert answer.status_code == 400 and "does not know the time zone" in answer.text
    assert setup.fields(answer)["timezone"] == "UTC" and "<strong data-timezone-name>UTC</strong>" in answer.text
    again = setup.submit(page=answer)
    _, claims = verified_response(live, returned_jwt(again)[1])
    assert claims[CLAIM_DL_CONTENT_ITEMS][0]["custom"]["schedule_start"] == "2027-03-01T09:00+00:00"


def test_grades_land_in_the_activitys_own_column_without_the_tool_making_one(live):
    platform = live.platform
    answer = SetUp(live).submit(title="Graded seminar", provider="bbb", points="10")
    send_to_platform(answer)
    (link,) = platform.created_activities
    own_item = next(item for item in platform.line_items.values() if item.resource_link_id == link.id)
    teacher = live.launch("teacher", resource_link_id=link.id)
    live.launch("student", resource_link_id=link.id)
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.joined("student", 0))
    run.send(run.left("student", 45), run.left("teacher", 60), run.ended(60))
    live.run_worker()
    (score,) = scores_for(platform, "4")
    assert score["lineitem_id"] == own_item.id and score["scoreMaximum"] == 10.0 and score["scoreGiven"] == 7.5
    assert own_item.grades["4"]["grade"] == 7.5
    assert not [r for r in platform.requests_log if r["method"] == "POST" and r["path"].endswith("/lineitems")]


def test_grading_off_sends_no_grade_and_makes_no_line_item(live):
    platform = live.platform
    send_to_platform(SetUp(live).submit(title="Ungraded", provider="bbb", grading=False))
    (link,) = platform.created_activities
    assert not any(item.resource_link_id == link.id for item in platform.line_items.values())
    teacher = live.launch("teacher", resource_link_id=link.id)
    live.launch("student", resource_link_id=link.id)
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("student", 0), run.left("student", 30), run.ended(60))
    live.run_worker()
    assert scores_for(platform, "4") == []
    assert not [r for r in platform.requests_log if r["path"].endswith("/lineitems")]
    assert all(SCOPE_SCORE not in t["scopes"] and SCOPE_LINEITEM not in t["scopes"] for t in platform.issued_tokens)
    page = teacher.get("/attendance").text
    assert "Grading is off" in page and 'id="send-grades"' not in page


# --------------------------------------------------------------------------- the form's errors
def test_form_errors_are_tied_to_their_fields_and_the_form_still_works(live, caplog):
    setup = SetUp(live)
    with caplog.at_level(logging.INFO, logger="lti_tool.lti.routes"):
        answer = setup.submit(title="  ", date="2027-03-01", time="", points="-3", weeks="99")
    assert answer.status_code == 400
    page = answer.text
    for name in ("title", "time", "points", "weeks"):
        field = re.search(rf'<input[^>]*id="f-{name}"[^>]*>', page).group(0)
        assert re.search(rf'aria-describedby="[^"]*e-{name}"', field) and 'aria-invalid="true"' in field, field
        assert f'id="e-{name}"' in page
    assert 'aria-invalid="true"' in page and 'role="alert"' in page
    assert "deep-link form" in caplog.text and "refused" in caplog.text
    assert count(live, DeepLinkRequest) == 1
    fixed = setup.submit(page=answer, title="Fixed", time="10:00", points="20", weeks="2")
    assert fixed.status_code == 200 and send_to_platform(fixed).status_code == 200


# --------------------------------------------------------------------------- refusals
def test_a_student_asking_to_select_content_is_refused_and_nothing_is_written(live):
    setup = SetUp(live, user="student")
    assert setup.page.status_code == 403
    assert "Only the teachers" in setup.page.text and "<h1" in setup.page.text
    assert count(live, DeepLinkRequest) == 0 and count(live, LoginState) == 1


@pytest.mark.parametrize("settings, status, says", [
    ({"accept_types": ["link", "file"]}, 400, "other content"),
    ({"accept_presentation_document_targets": ["embed"]}, 400, "in no way"),
    ({"deep_link_return_url": None}, 400, "did not say where"),
    ({"deep_link_return_url": "javascript:alert(document.domain)"}, 400, "cannot use"),
    ({"accept_types": "ltiResourceLink"}, 400, "cannot use"),
    ({"data": "state\x00with a NUL"}, 400, "cannot use"),
], ids=["no-resource-links", "no-usable-target", "no-return-url", "script-return-url", "types-not-a-list",
        "unstorable-data"])
def test_requests_the_tool_cannot_answer_are_refused_readably(live, settings, status, says):
    setup = SetUp(live, deep_linking=settings)
    assert setup.page.status_code == status and says in setup.page.text
    assert count(live, DeepLinkRequest) == 0 and count(live, LoginState) == 1


def test_a_tampered_form_token_is_refused(live):
    setup = SetUp(live)
    token = setup.fields()["dl"]
    forged = setup.submit(dl=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert forged.status_code == 403 and "did not come from the tool" in forged.text
    assert setup.submit(dl="").status_code == 403
    assert live.platform.deep_link_responses == []


def test_a_form_answered_once_cannot_be_answered_again(live):
    setup = SetUp(live)
    first = setup.submit(title="Once")
    assert first.status_code == 200
    again = setup.submit(title="Twice, into another course")
    assert again.status_code == 409 and "already been sent" in again.text
    assert 'name="JWT"' not in again.text


def test_an_expired_form_is_refused(live):
    setup = SetUp(live)
    with live.app.app_context():
        db.session.execute(update(DeepLinkRequest).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    answer = setup.submit(title="Too late")
    assert answer.status_code == 401 and "expired" in answer.text


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_a_form_sent_from_another_site_is_refused(live, origin):
    setup = SetUp(live)
    answer = setup.submit(origin=origin, title="Forged")
    assert answer.status_code == 403 and "another site" in answer.text
    assert setup.submit(title="Mine").status_code == 200, "the refusal spent nothing"


def test_the_response_is_signed_by_the_newest_key(live, tmp_path):
    key_ring = live.app.extensions["key_ring"]
    old_dir = key_ring.keys_dir
    key_ring.keys_dir = tmp_path / "keys"  # rotate in a directory of this test's own
    try:
        key_ring.ensure_keys()
        first = key_ring.signing_key.kid
        newest = key_ring.rotate().kid
        answer = SetUp(live).submit(title="Rotated")
        header, _ = verified_response(live, returned_jwt(answer)[1])
        assert header["kid"] == newest != first
        assert send_to_platform(answer).status_code == 200
    finally:
        key_ring.keys_dir = old_dir
        key_ring.reload()


# --------------------------------------------------------------------------- first launch values
def test_unusable_custom_values_are_ignored_with_a_log_line_and_the_launch_goes_on(lms, app, caplog):
    platform = lms.platform
    platform.add_resource_link("40", "Odd values", custom={
        "provider": "zoom", "schedule_start": "next monday", "schedule_minutes": "-5", "schedule_weeks": "500",
        "grade_points": "lots", "grading": "maybe", "record": "perhaps", "max_participants": "12",
    })
    with caplog.at_level(logging.WARNING):
        teacher = lms.launch("teacher", resource_link_id="40")
    assert teacher.page().status_code == 200
    with app.app_context():
        room = db.session.get(Room, teacher.room_id)
        assert room.provider == app.config["VIDEO_PROVIDER"] and room.schedule_start is None
        assert room.graded is True and room.score_maximum == 100.0
        assert room.settings["record"] is True and room.settings["max_participants"] == 12
    for name in ("provider", "schedule_start", "schedule_minutes", "schedule_weeks", "grade_points", "grading",
                 "record"):
        assert name in caplog.text, name


def test_custom_values_shape_only_the_first_launch(lms, app):
    platform = lms.platform
    platform.add_resource_link("41", "Scheduled", custom={"schedule_start": "2027-01-04T10:00-05:00",
                                                          "schedule_minutes": "45"})
    teacher = lms.launch("teacher", resource_link_id="41")
    platform.resource_links["41"].custom = {"schedule_start": "2030-01-01T10:00Z", "grading": "off"}
    lms.launch("student", resource_link_id="41")
    with app.app_context():
        room = db.session.get(Room, teacher.room_id)
        assert room.schedule_start == datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
        assert (room.schedule_minutes, room.schedule_weeks, room.graded) == (45, 1, True)
