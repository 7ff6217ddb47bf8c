"""The administration pages (/admin), over real HTTP: who gets in (a launch with the institution
or system Administrator role, or the operator's ADMIN_TOKEN), what each sees (their platform, or
everything), video server health checked against the fake servers, failed grade deliveries sent
again, the event backlog, and the refusals."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from lti_tool import ConfigurationError, create_app
from lti_tool.extensions import db
from lti_tool.models import Platform, ScoreDelivery
from tests.conftest import launch_at, run_cli, tool_overrides
from tests.fakes.lti_platform import INSTRUCTOR
from tests.support import grades_given_up, post_bbb_events

TOKEN = "operator-token-" + "x" * 40


@pytest.fixture
def live_overrides():
    return {"ADMIN_TOKEN": TOKEN}


def admin_ticket_in(html: str) -> str:
    return re.search(r'data-ticket="([^"]+)"', html).group(1)


class Admin:
    """A browser on the administration pages: the page address it was sent to, and its ticket."""

    def __init__(self, live, session, location: str):
        self.live, self.session = live, session
        self.page_ticket = parse_qs(urlsplit(location).query)["t"][0]
        self.page = self.get()
        assert self.page.status_code == 200, self.page.text[:300]
        self.ticket = admin_ticket_in(self.page.text)

    def get(self, path: str = "", **params):
        return self.session.get(f"{self.live.url}/admin{path}", params={"t": self.page_ticket, **params},
                                allow_redirects=False, timeout=30)

    def post(self, path: str, **data):
        return self.session.post(f"{self.live.url}/admin{path}", data={"t": self.ticket, **data},
                                 allow_redirects=False, timeout=30)


def operator(live) -> Admin:
    session = requests.Session()
    answer = session.post(f"{live.url}/admin/sign-in", data={"token": TOKEN}, allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    return Admin(live, session, answer.headers["Location"])


def administrator_from(person) -> Admin:
    """Follow the room page's Administration control, as a platform administrator would."""
    page = person.get().text
    assert 'id="admin-link"' in page
    answer = person.session.post(f"{person.live.url}/admin/open", data={"t": person.ticket, "room": person.room_id},
                                 allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    return Admin(person.live, person.session, answer.headers["Location"])


def status_json(live, token=TOKEN):
    return requests.get(f"{live.url}/admin/status", headers={"Authorization": f"Bearer {token}"}, timeout=30)


# --- getting in ---------------------------------------------------------------------------------------
def test_the_sign_in_page_says_how_to_get_in(live):
    page = requests.get(f"{live.url}/admin", timeout=10)
    assert page.status_code == 200
    assert "follow" in page.text and "Administration" in page.text and 'id="sign-in"' in page.text
    assert "frame-ancestors" in page.headers["Content-Security-Policy"]


def test_a_wrong_operator_token_is_refused_and_logged_without_the_token(live, caplog):
    answer = requests.post(f"{live.url}/admin/sign-in", data={"token": "guess-" + "y" * 40}, allow_redirects=False)
    assert answer.status_code == 401 and "That token is not right" in answer.text
    assert "guess-" not in caplog.text and "not the ADMIN_TOKEN" in caplog.text


def test_the_operator_signs_in_and_sees_every_platform(live, second_school):
    admin = operator(live)
    page = admin.page.text
    assert "every platform" in page
    assert live.platform.issuer in page and second_school.client_id in page
    assert "TOOL_CONFIG" in page and "database" in page


def test_a_platform_administrator_gets_in_through_a_launch_and_sees_their_platform_only(live, second_school):
    launch_at(live, second_school, "teacher")  # the other platform has a course here too
    admin = administrator_from(live.launch("admin"))
    page = admin.page.text
    assert f"administrator of <strong>{live.platform.issuer}</strong>" in page
    assert "school-two" not in page  # neither the other registration nor its servers
    assert "1 course, 1 room" in page


@pytest.mark.parametrize("user", ["student", "teacher"])
def test_people_who_are_not_platform_administrators_are_refused(live, user, caplog):
    person = live.launch(user)
    assert 'id="admin-link"' not in person.get().text
    answer = person.session.post(f"{live.url}/admin/open", data={"t": person.ticket, "room": person.room_id},
                                 allow_redirects=False)
    assert answer.status_code == 403
    assert "administrators can open the tool" in answer.text
    assert "without an institution or system Administrator role" in caplog.text


def test_an_administrator_whose_latest_launch_is_not_an_administrators_loses_access(live):
    admin = administrator_from(live.launch("admin"))
    live.platform.users["admin"].roles = [INSTRUCTOR]
    live.launch("admin")
    assert admin.get().status_code == 403
    assert admin.post("/retry").status_code == 403


def test_a_disabled_registration_closes_its_administrators_access(live, second_school):
    second_school.users["admin"].enrolled = True
    admin = administrator_from(launch_at(live, second_school, "admin"))
    with live.app.app_context():
        db.session.execute(update(Platform).where(Platform.client_id == "school-two").values(active=False))
        db.session.commit()
    answer = admin.get()
    assert answer.status_code == 403 and "registration with the tool is disabled" in answer.text


def test_tickets_of_one_kind_are_not_taken_for_another(live):
    admin = administrator_from(live.launch("admin"))
    # The page ticket opens pages only; a room ticket is not an admin ticket.
    assert admin.session.post(f"{live.url}/admin/retry", data={"t": admin.page_ticket}).status_code == 401
    student = live.launch("student")
    assert requests.get(f"{live.url}/admin", params={"t": student.page_ticket}, timeout=10).status_code == 401
    forged = admin.post("/retry", t=admin.ticket[:-2] + "xx")
    assert forged.status_code == 401


def test_changing_the_operator_token_ends_the_operators_tickets(live):
    admin = operator(live)
    live.app.config["ADMIN_TOKEN"] = "another-token-" + "z" * 40
    try:
        answer = admin.get()
        assert answer.status_code == 401 and "sign in again" in answer.text
    finally:
        live.app.config["ADMIN_TOKEN"] = TOKEN


def test_a_form_from_another_site_is_refused(live):
    admin = operator(live)
    answer = admin.session.post(f"{live.url}/admin/retry", data={"t": admin.ticket},
                                headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert answer.status_code == 403


def test_without_admin_token_only_launches_get_in(live):
    live.app.config["ADMIN_TOKEN"] = ""
    try:
        page = requests.get(f"{live.url}/admin", timeout=10)
        assert 'id="sign-in"' not in page.text and "ADMIN_TOKEN" in page.text
        answer = requests.post(f"{live.url}/admin/sign-in", data={"token": ""}, allow_redirects=False)
        assert answer.status_code == 403
        assert status_json(live, token="").status_code == 401
    finally:
        live.app.config["ADMIN_TOKEN"] = TOKEN


def test_a_short_admin_token_stops_the_tool_from_starting(migrated, database_url, keys_dir, tmp_path):
    config = tmp_path / "tool_config.json"
    config.write_text("{}")
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN must be at least 32 characters") as error:
        create_app(tool_overrides(database_url, keys_dir, config, ADMIN_TOKEN="short-token"))
    assert "short-token" not in str(error.value)


# --- what the pages show ---------------------------------------------------------------------------
def test_the_status_answers_monitoring_with_the_operator_token(live):
    answer = status_json(live)
    assert answer.status_code == 200
    data = answer.json()
    servers = {s["provider"]: s for s in data["servers"] if s["settings_of"] == "the environment"}
    assert servers["bbb"]["ok"] and servers["bbb"]["server"].startswith(live.bbb.url)
    assert servers["livekit"]["ok"] and servers["livekit"]["credentials_accepted"]
    assert data["registrations"][0]["issuer"] == live.platform.issuer
    wrong = status_json(live, token="not-" + TOKEN)
    assert wrong.status_code == 401 and wrong.json() == {"error": "The operator token is not right."}
    assert requests.get(f"{live.url}/admin/status", timeout=10).status_code == 401


def test_server_health_names_a_refused_secret_and_an_unreachable_server(live, second_school):
    run_cli(live.app, "platform", "set", "--issuer", second_school.issuer, "--client-id", "school-two",
            f"BBB_SERVER_URL={live.bbb.url}", "BBB_SHARED_SECRET=" + "0" * 32,
            "LIVEKIT_URL=ws://127.0.0.1:9", "LIVEKIT_API_KEY=k", "LIVEKIT_API_SECRET=" + "s" * 32)
    servers = {(s["provider"], s["settings_of"]): s for s in status_json(live).json()["servers"]}
    school = f"{second_school.issuer} / school-two"
    refused, unreachable = servers[("bbb", school)], servers[("livekit", school)]
    assert refused["reachable"] and not refused["credentials_accepted"] and "checksum" in refused["detail"]
    assert not unreachable["reachable"] and not unreachable["ok"]
    assert servers[("bbb", "the environment")]["ok"]
    page = operator(live).page.text
    assert "Refused" in page and "health-problem" in page


def test_failed_deliveries_are_listed_and_sent_again(live):
    grades_given_up(live)
    admin = administrator_from(live.launch("admin"))
    page = admin.page.text
    # Sam (4) and student5 were in the class; the roster (and so student6) never came.
    assert 'id="failed-total">2<' in page and "gave up after" in page and "Sam" in page
    live.platform.down = False
    answer = admin.post("/retry")
    assert answer.status_code == 303
    assert "2 failed grades put back in the queue" in admin.session.get(
        live.url + answer.headers["Location"], timeout=10).text
    live.run_worker()
    with live.app.app_context():
        assert set(db.session.scalars(select(ScoreDelivery.status))) == {"delivered"}
    assert 'id="no-failures"' in admin.get().text


def test_the_backlog_counts_what_waits_and_scopes_it(live):
    teacher = live.launch("teacher")
    teacher.join()
    stray = [live.bbb.event_meeting_ended("a-meeting-of-another-application", 1_700_000_000_000)]
    assert post_bbb_events(live, stray).status_code == 200
    everything = operator(live).page.text
    assert re.search(r'id="events-waiting">1<', everything) and "unknown meeting" in everything
    mine = administrator_from(live.launch("admin")).page.text
    assert re.search(r'id="events-waiting">0<', mine)


def test_the_page_refreshes_its_live_parts_with_the_admin_ticket(live):
    admin = operator(live)
    answer = admin.session.get(f"{live.url}/admin/live", headers={"X-Admin-Ticket": admin.ticket}, timeout=30)
    assert answer.status_code == 200 and 'id="servers"' in answer.text and "<html" not in answer.text
    refused = requests.get(f"{live.url}/admin/live", headers={"X-Admin-Ticket": "nonsense"}, timeout=10)
    assert refused.status_code == 401 and "error" in refused.json()
