"""LTI Dynamic Registration at /lti/register, over real HTTP, against fake Moodle, Canvas and
Brightspace platforms that check what the real ones check (tests/fakes/lti_registration.py).

Each platform's registration is followed by the administrator enabling the tool and a launch
with the new client id. Refused registrations — a token expired, used or forged, a platform that
refuses, misbehaves, or names another site as its issuer — store nothing, and the registration
token is in no log line, whatever happens.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from html.parser import HTMLParser

import jwt
import pytest
import requests
from sqlalchemy import func, select

from lti_tool import create_app
from lti_tool.access_log import QuietRequestHandler
from lti_tool.extensions import db
from lti_tool.lti.dynamic_registration import TOOL_CONFIGURATION, registration_request
from lti_tool.lti.platform_config import PLATFORM_CONFIGURATION, parse_configuration
from lti_tool.models import Deployment, Platform
from tests.conftest import empty_tables, row_counts, tool_overrides
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.jwks_server import JwksServer
from tests.fakes.lti_platform import SCOPE_NRPS, SCOPE_SCORE, FakePlatform, SigningKey

STORED = ("platforms", "deployments")


@dataclass
class Tool:
    url: str
    app: object

    def rows(self, model) -> list:
        with self.app.app_context():
            return db.session.scalars(select(model).order_by(model.id)).all()

    def registration(self, issuer: str, client_id: str):
        with self.app.app_context():
            return self.app.extensions["registrations"].find(issuer, client_id)


@pytest.fixture
def tool_settings() -> dict:
    return {}


@pytest.fixture
def tool(migrated, database_url, keys_dir, tmp_path, tool_settings):
    """The tool on a real port, logging requests as `flask serve` does (query values hidden)."""
    forward = LaterApp()
    server = ServedApp(forward, request_handler=QuietRequestHandler)
    config_file = tmp_path / "tool_config.json"
    config_file.write_text("{}")
    app = create_app(tool_overrides(database_url, keys_dir, config_file, TOOL_BASE_URL=server.url,
                                    REGISTRATION_FETCH_SECONDS="2", **tool_settings))
    forward.app = app
    server.start()
    try:
        yield Tool(server.url, app)
    finally:
        server.stop()
        empty_tables(app)


@pytest.fixture
def platforms(tool, platform_key):
    """`platforms("canvas")`: a fake platform of that product, knowing the tool's URL."""
    started = []

    def start(product: str = "moodle") -> FakePlatform:
        platform = FakePlatform(tool_base_url=tool.url, signing_key=platform_key, product=product).start()
        started.append(platform)
        return platform

    yield start
    for platform in started:
        platform.stop()


class _Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes.get("action")
        elif tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value") or ""


def confirmation(tool: Tool, params: dict) -> tuple[requests.Response, dict]:
    """The administrator's browser at the tool's registration URL: the confirmation page and
    the fields its form posts."""
    page = requests.get(tool.url + "/lti/register", params=params, timeout=30)
    form = _Form()
    form.feed(page.text)
    return page, form.fields


def register(tool: Tool, platform: FakePlatform, **start) -> requests.Response:
    page, fields = confirmation(tool, platform.start_registration(**start))
    assert page.status_code == 200, page.text[:2000]
    return requests.post(tool.url + "/lti/register", data=fields, timeout=30)


def sent(platform: FakePlatform) -> dict:
    """The registration request the platform received last."""
    return json.loads(platform.registration_desk.requests[-1]["body"])


def client_id_in(page: requests.Response) -> str:
    start = page.text.index('id="client-id">') + len('id="client-id">')
    return page.text[start:page.text.index("<", start)]


def launch_works(tool: Tool, platform: FakePlatform, user: str = "teacher") -> requests.Response:
    answer = platform.launch(requests.Session(), user=user)
    assert answer.status_code == 303, answer.text[:2000]
    assert "/rooms/" in answer.headers["Location"]
    return answer


def services_work(tool: Tool, platform: FakePlatform) -> None:
    """The tool gets an access token from the platform with its new client id (and, on
    Brightspace, the audience its OpenID configuration named)."""
    with tool.app.app_context():
        registration = tool.app.extensions["registrations"].find(platform.issuer, platform.client_id)
        token = tool.app.extensions["platform_services"].access_token(registration, [SCOPE_SCORE, SCOPE_NRPS])
    assert token in platform.access_tokens


def counts(tool: Tool) -> dict:
    return {table: n for table, n in row_counts(tool.app).items() if table in STORED}


# --- Moodle 4.5 -------------------------------------------------------------------------------
def test_moodle_registers_the_tool_and_the_new_client_id_launches(tool, platforms):
    moodle = platforms("moodle")
    page, fields = confirmation(tool, moodle.start_registration())
    assert page.status_code == 200, page.text
    assert "Register the live-class tool" in page.text and moodle.issuer in page.text and "Moodle" in page.text
    assert "frame-ancestors *" in page.headers["Content-Security-Policy"]
    assert set(fields) == {"openid_configuration", "registration_token"}
    assert counts(tool) == {"platforms": 0, "deployments": 0}, "the confirmation page registers nothing"

    answer = requests.post(tool.url + "/lti/register", data=fields, timeout=30)
    assert answer.status_code == 200, answer.text
    client_id = client_id_in(answer)
    assert client_id == jwt.decode(fields["registration_token"], options={"verify_signature": False})["sub"]
    assert 'id="deployment-id">2<' in answer.text
    assert "send grades" in answer.text and "read course members" in answer.text
    assert "activate it" in answer.text and 'id="close-dialog"' in answer.text

    request = sent(moodle)
    assert request["initiate_login_uri"] == tool.url + "/lti/login"
    assert request["redirect_uris"] == [tool.url + "/lti/launch"]
    assert request["jwks_uri"] == tool.url + "/.well-known/jwks.json"
    logo = requests.get(request["logo_uri"], timeout=10)
    assert logo.status_code == 200 and logo.headers["Content-Type"].startswith("image/svg+xml")
    configuration = request[TOOL_CONFIGURATION]
    assert configuration["domain"] == tool.url.split("://")[1]
    assert [(m["type"], m.get("placements")) for m in configuration["messages"]] == [
        ("LtiResourceLinkRequest", None), ("LtiDeepLinkingRequest", ["ContentArea"])]
    assert "https://canvas.instructure.com/lti/privacy_level" not in configuration

    (row,) = tool.rows(Platform)
    assert (row.issuer, row.client_id, row.active) == (moodle.issuer, client_id, True)
    assert (row.auth_login_url, row.auth_token_url, row.key_set_url) == (
        moodle.auth_login_url, moodle.auth_token_url, moodle.key_set_url)
    assert [d.deployment_id for d in tool.rows(Deployment)] == ["2"]

    moodle.activate(client_id)
    launch_works(tool, moodle)
    launch_works(tool, moodle, user="student")
    services_work(tool, moodle)


def test_moodle_update_of_the_existing_tool_updates_the_registration(tool, platforms):
    moodle = platforms("moodle")
    first = register(tool, moodle)
    assert first.status_code == 200, first.text
    client_id = client_id_in(first)
    moodle.key_set_url = moodle.issuer + "/mod/lti/certs.php?rotated=1"  # the platform moved its keys
    again = register(tool, moodle, update_of="2")  # Moodle: "update the existing tool"
    assert again.status_code == 200, again.text
    assert "Registration updated" in again.text and client_id_in(again) == client_id
    (row,) = tool.rows(Platform)
    assert row.key_set_url == moodle.key_set_url
    assert [d.deployment_id for d in tool.rows(Deployment)] == ["2"]


def test_a_second_moodle_registration_is_a_second_tool(tool, platforms):
    moodle = platforms("moodle")
    assert register(tool, moodle).status_code == 200
    assert register(tool, moodle).status_code == 200
    assert sorted(d.deployment_id for d in tool.rows(Deployment)) == ["2", "3"]
    assert len({row.client_id for row in tool.rows(Platform)}) == 2


# --- Canvas -----------------------------------------------------------------------------------
def test_canvas_registers_the_tool_and_its_first_launch_brings_the_deployment(tool, platforms):
    canvas = platforms("canvas")
    answer = register(tool, canvas)
    assert answer.status_code == 200, answer.text
    assert "none yet" in answer.text and "Canvas" in answer.text
    request = sent(canvas)
    configuration = request[TOOL_CONFIGURATION]
    assert configuration["https://canvas.instructure.com/lti/privacy_level"] == "public"
    assert [(m["type"], m["placements"]) for m in configuration["messages"]] == [
        ("LtiResourceLinkRequest", ["course_navigation"]),
        ("LtiDeepLinkingRequest", ["link_selection", "assignment_selection"])]
    assert "Authorization" in canvas.registration_desk.requests[-1]["headers"]

    client_id = client_id_in(answer)
    assert tool.rows(Deployment) == [], "Canvas gives no deployment id at registration"
    deployment = canvas.activate(client_id)
    launch_works(tool, canvas)
    assert [d.deployment_id for d in tool.rows(Deployment)] == [deployment]
    launch_works(tool, canvas, user="student")
    services_work(tool, canvas)

    canvas.deployment_id = "999:another-account"  # installed in another account: not this registration's
    refused = requests.post(tool.url + "/lti/login", data=canvas.login_initiation(user="student"), timeout=10)
    assert refused.status_code == 403 and "deployment of the tool is not registered" in refused.text
    assert [d.deployment_id for d in tool.rows(Deployment)] == [deployment]


def test_canvas_refuses_what_it_does_not_know_with_422_and_the_page_says_so(tool, platforms):
    canvas = platforms("canvas")
    params = canvas.start_registration()
    body = registration_request(
        parse_configuration(canvas.openid_configuration_url, json.dumps(canvas.openid_configuration()).encode()),
        tool.url)
    body[TOOL_CONFIGURATION]["messages"].append({"type": "LtiSubmissionReviewRequest"})
    direct = requests.post(canvas.registration_desk.registration_endpoint(), json=body, timeout=10,
                           headers={"Authorization": f"Bearer {params['registration_token']}"})
    assert direct.status_code == 422 and "LtiSubmissionReviewRequest" in direct.text

    canvas.registration_desk.answer_next = (422, json.dumps({"errors": {"lti_tool_configuration": [
        "placement 'course_navigation' is not allowed here"]}}), "application/json")
    answer = register(tool, canvas)
    assert answer.status_code == 400, answer.text
    assert "refused the registration" in answer.text and "is not allowed here" in answer.text
    assert counts(tool) == {"platforms": 0, "deployments": 0}


# --- Brightspace ------------------------------------------------------------------------------
@pytest.mark.parametrize("configure_deployment", [True, False], ids=["with-deployment", "without-deployment"])
def test_brightspace_registers_without_a_token_and_without_an_authorization_header(
        tool, platforms, configure_deployment):
    brightspace = platforms("brightspace")
    page, fields = confirmation(tool, brightspace.start_registration(configure_deployment=configure_deployment))
    assert page.status_code == 200, page.text
    assert "Brightspace" in page.text and set(fields) == {"openid_configuration"}
    answer = requests.post(tool.url + "/lti/register", data=fields, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "Authorization" not in brightspace.registration_desk.requests[-1]["headers"]
    client_id = client_id_in(answer)
    assert len(tool.rows(Deployment)) == (1 if configure_deployment else 0)
    (row,) = tool.rows(Platform)
    assert row.auth_audience == brightspace.token_audience, "authorization_server is the assertions' aud"

    deployment = brightspace.activate(client_id)
    launch_works(tool, brightspace)
    assert [d.deployment_id for d in tool.rows(Deployment)] == [deployment]
    services_work(tool, brightspace)

    again = requests.post(tool.url + "/lti/register", data=fields, timeout=30)  # its one-time address is spent
    assert again.status_code == 502 and "HTTP 404" in again.text and "may have expired" in again.text
    assert len(tool.rows(Platform)) == 1


# --- refused registrations store nothing --------------------------------------------------------
def test_a_reused_registration_token_is_refused(tool, platforms):
    moodle = platforms("moodle")
    page, fields = confirmation(tool, moodle.start_registration())
    assert requests.post(tool.url + "/lti/register", data=fields, timeout=30).status_code == 200
    before = counts(tool)
    again = requests.post(tool.url + "/lti/register", data=fields, timeout=30)
    assert again.status_code == 403, again.text
    assert "expired or was used already" in again.text and "token_already_used" in again.text
    assert "Nothing was registered" in again.text
    assert counts(tool) == before


@pytest.mark.parametrize("token", ["expired", "foreign-key", "tampered", "wrong-scope"])
def test_a_bad_registration_token_is_refused_and_nothing_is_stored(tool, platforms, token):
    moodle = platforms("moodle")
    desk = moodle.registration_desk
    if token == "expired":
        params = moodle.start_registration(exp_in=-60)
    else:
        params = moodle.start_registration()
        claims = jwt.decode(params["registration_token"], options={"verify_signature": False})
        if token == "foreign-key":
            params["registration_token"] = moodle.sign_jwt(claims, key=SigningKey(kid=moodle.signing_key.kid))
        elif token == "tampered":
            header, _, signature = params["registration_token"].split(".")
            forged = moodle.sign_jwt({**claims, "sub": "someone-else"}).split(".")[1]
            params["registration_token"] = f"{header}.{forged}.{signature}"
        else:
            params["registration_token"] = moodle.sign_jwt({**claims, "scope": "admin"})
    answer = requests.post(tool.url + "/lti/register", data=params, timeout=30)
    assert answer.status_code == 403, answer.text
    assert "<h1" in answer.text and "Traceback" not in answer.text
    assert counts(tool) == {"platforms": 0, "deployments": 0}
    assert desk.tools == {}


@pytest.mark.parametrize("status, body, expected, shown", [
    (400, "missing required attribute client_name", 400, "missing required attribute client_name"),
    (500, "<html>Moodle exception</html>", 502, "HTTP 500"),
    (200, "<html>not JSON</html>", 502, "could not be read"),
    (200, json.dumps({"client_id": ""}), 502, "no usable client id"),
    (201, json.dumps({"client_id": "x", TOOL_CONFIGURATION: {"deployment_id": ["1"]}}), 502, "no usable client id"),
    (302, "", 502, "HTTP 302"),
    (200, "x" * (300 * 1024), 502, "could not be reached"),
], ids=["refused", "server-error", "not-json", "no-client-id", "bad-deployment", "redirect", "huge"])
def test_a_registration_answer_the_tool_cannot_use_stores_nothing(tool, platforms, status, body, expected, shown):
    moodle = platforms("moodle")
    moodle.registration_desk.answer_next = (status, body, "application/json")
    answer = register(tool, moodle)
    assert answer.status_code == expected, answer.text
    assert shown in answer.text and "<h1" in answer.text
    assert counts(tool) == {"platforms": 0, "deployments": 0}


def test_an_issuer_on_another_site_is_refused_before_anything_is_sent(tool, platforms):
    moodle = platforms("moodle")
    elsewhere = {**moodle.openid_configuration(), "issuer": "https://moodle.example.edu"}
    with JwksServer(lambda: elsewhere) as impostor:
        answer = requests.get(tool.url + "/lti/register", timeout=30, params={
            "openid_configuration": impostor.base_url + "/mod/lti/openid-configuration.php",
            "registration_token": moodle.start_registration()["registration_token"]})
        posted = requests.post(tool.url + "/lti/register", timeout=30, data={
            "openid_configuration": impostor.base_url + "/mod/lti/openid-configuration.php",
            "registration_token": moodle.start_registration()["registration_token"]})
    for response in (answer, posted):
        assert response.status_code == 502, response.text
        assert "https://moodle.example.edu" in response.text and "same site" in response.text
    assert moodle.registration_desk.requests == [], "the registration was never sent"
    assert counts(tool) == {"platforms": 0, "deployments": 0}


@pytest.mark.parametrize("mode, shown", [
    ("503", "HTTP 503"), ("huge", "could not be reached"), ("drip", "could not be reached"),
    ("not-an-object", "not a JSON object"),
])
def test_a_misbehaving_configuration_url_is_refused_within_bounds(tool, mode, shown):
    with JwksServer(lambda: ["not", "an", "object"]) as server:
        server.mode = "ok" if mode == "not-an-object" else mode
        server.drip_bytes = 10
        answer = requests.post(tool.url + "/lti/register", timeout=30,
                               data={"openid_configuration": server.base_url + "/openid-configuration"})
    assert answer.status_code == 502, answer.text
    assert shown in answer.text
    assert counts(tool) == {"platforms": 0, "deployments": 0}


def test_an_unreachable_platform_is_explained(tool, platforms):
    moodle = platforms("moodle")
    params = moodle.start_registration()
    moodle.stop()
    answer = requests.get(tool.url + "/lti/register", params=params, timeout=30)
    assert answer.status_code == 502 and "could not be reached" in answer.text
    assert counts(tool) == {"platforms": 0, "deployments": 0}


@pytest.mark.parametrize("params, status, shown", [
    ({}, 400, "paste it into your platform"),
    ({"openid_configuration": "javascript:alert(1)"}, 400, "not a web address"),
    ({"openid_configuration": "http://127.0.0.1:9/x", "registration_token": "a\r\nX-Injected: 1"}, 400,
     "cannot be used"),
])
def test_bad_registration_requests_get_a_readable_page_or_json(tool, params, status, shown):
    page = requests.get(tool.url + "/lti/register", params=params, timeout=30)
    assert page.status_code == status and shown in page.text and "<h1" in page.text
    machine = requests.post(tool.url + "/lti/register", data=params, headers={"Accept": "application/json"},
                            timeout=30)
    assert machine.status_code == status and shown in machine.json()["error"]


class TestOnlyListedPlatforms:
    @pytest.fixture
    def tool_settings(self):
        return {"REGISTRATION_ORIGINS": "https://moodle.example.edu"}

    def test_a_platform_not_listed_in_registration_origins_is_not_even_asked(self, tool, platforms):
        moodle = platforms("moodle")
        answer = requests.get(tool.url + "/lti/register", params=moodle.start_registration(), timeout=30)
        assert answer.status_code == 403 and "listed" in answer.text
        assert [r for r in moodle.requests_log if "openid" in r["path"]] == []


# --- the file registration wins; deployment ids are the platform's one tool's ---------------
def test_a_client_id_tool_config_has_is_not_stored_from_a_registration(app, client, platform):
    params = platform.start_registration(client_id=platform.client_id)  # Moodle promises TOOL_CONFIG's id
    before = row_counts(app)
    answer = client.post("/lti/register", data=params)
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert "TOOL_CONFIG" in answer.get_data(as_text=True)
    assert row_counts(app) == before


def test_a_deployment_id_another_client_id_has_is_not_stored(app, client, platform):
    platform.registration_desk.next_type_id = int(platform.deployment_id)  # Moodle answers deployment "1" again
    before = row_counts(app)
    answer = client.post("/lti/register", data=platform.start_registration())
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert "already belongs to client id" in answer.get_data(as_text=True)
    assert row_counts(app) == before


# --- the registration token is in no log line -------------------------------------------------
def test_the_registration_token_is_in_no_log_line(tool, platforms, caplog):
    caplog.set_level(logging.DEBUG)
    moodle = platforms("moodle")
    params = moodle.start_registration()
    page, fields = confirmation(tool, params)
    assert requests.post(tool.url + "/lti/register", data=fields, timeout=30).status_code == 200
    assert requests.post(tool.url + "/lti/register", data=fields, timeout=30).status_code == 403  # reused
    _, echoed = confirmation(tool, moodle.start_registration())
    moodle.registration_desk.answer_next = (400, "bad token: " + echoed["registration_token"], "text/plain")
    refused = requests.post(tool.url + "/lti/register", data=echoed, timeout=30)  # a platform echoing the token
    assert refused.status_code == 400 and "bad token: [registration token]" in refused.text
    tokens = [fields["registration_token"], *(json.loads(r["body"]) and r["headers"].get("Authorization", "")[7:]
                                              for r in moodle.registration_desk.requests)]
    # The test's own browser (requests, in this process) logs the URLs it opens: not the tool's log.
    browser = tool.url.split("://")[1]
    lines = [record.getMessage() for record in caplog.records
             if not (record.name.startswith("urllib3") and browser in record.getMessage())]
    assert any("/lti/register" in line for line in lines), "the tool's request log was captured"
    assert any("dynamic registration" in line for line in lines)
    for token in filter(None, tokens):
        pieces = {token[i:i + 24] for i in range(0, len(token) - 24, 12)}  # any part of it, not just all
        leaked = [line for line in lines if any(piece in line for piece in pieces)]
        assert leaked == [], "the registration token was logged"


def test_a_token_in_the_configuration_urls_query_is_in_no_log_line(tool, caplog):
    """Some platforms put the registration token in the configuration URL's query (Canvas's
    API accepts it there): log lines show that URL's query values as `…`."""
    caplog.set_level(logging.DEBUG, logger="lti_tool")
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJ1dWlkIjoiMGQzZjc5NzgifQ.c2VjcmV0LXNpZ25hdHVyZS1wYXJ0"
    with JwksServer(lambda: {}) as server:
        server.mode = "503"
        for url in (f"{server.base_url}/openid?registration_token={secret}",
                    f"http://127.0.0.1:9/openid?registration_token={secret}"):
            answer = requests.get(tool.url + "/lti/register", params={"openid_configuration": url}, timeout=30)
            assert answer.status_code == 502, answer.text
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("lti_tool")]
    assert any("registration_token=…" in line for line in lines), lines
    assert [line for line in lines if "c2VjcmV0" in line] == []


# --- what the tool asks each platform for -------------------------------------------------------
def test_a_platform_offering_submission_review_gets_it_and_scopes_follow_what_it_supports():
    configuration = {
        "issuer": "https://lms.example.edu", "authorization_endpoint": "https://lms.example.edu/auth",
        "token_endpoint": "https://lms.example.edu/token", "jwks_uri": "https://lms.example.edu/jwks",
        "registration_endpoint": "https://lms.example.edu/register",
        "scopes_supported": [SCOPE_SCORE],
        PLATFORM_CONFIGURATION: {"product_family_code": "other", "messages_supported": [
            {"type": "LtiResourceLinkRequest"}, {"type": "LtiSubmissionReviewRequest"}]},
    }
    platform = parse_configuration("https://lms.example.edu/openid", json.dumps(configuration).encode())
    body = registration_request(platform, "https://live.example.edu")
    assert [m["type"] for m in body[TOOL_CONFIGURATION]["messages"]] == [
        "LtiResourceLinkRequest", "LtiSubmissionReviewRequest"]
    assert body["scope"] == SCOPE_SCORE
    assert body[TOOL_CONFIGURATION]["claims"] == ["iss", "sub", "name", "given_name", "family_name", "email"]
    assert body["grant_types"] == ["implicit", "client_credentials"] and body["application_type"] == "web"


def test_platform_list_shows_a_registration_waiting_for_its_deployment(tool, platforms):
    canvas = platforms("canvas")
    assert register(tool, canvas).status_code == 200
    result = tool.app.test_cli_runner().invoke(args=["platform", "list"])
    assert result.exit_code == 0, result.output
    assert "first launch" in result.output
    with tool.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Platform)) == 1
