"""The headers every response carries: who may frame the tool, what its pages may run and use,
and that nothing personal is cached."""
from __future__ import annotations

import re

import pytest

from tests.conftest import TOOL_BASE_URL


def directives(response) -> dict[str, list[str]]:
    policy = response.headers.get("Content-Security-Policy", "")
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def origin_of(url: str) -> str:
    return re.match(r"^(https?://[^/]+)", url).group(1)


def test_pages_may_be_framed_by_the_registered_platforms_and_nobody_else(lms, platform):
    teacher = lms.launch("teacher")
    for response in (teacher.page(), teacher.client.get("/rooms/999"), teacher.client.get("/nowhere")):
        assert response.mimetype == "text/html"
        csp = directives(response)
        assert csp["frame-ancestors"] == ["'self'", origin_of(platform.issuer)], response.headers
        assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]


def test_a_platform_registered_in_the_database_may_frame_the_tool_at_once(app, lms):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["platform", "add", "--issuer", "https://moodle.school.example",
                                 "--client-id", "abc", "--deployment-id", "1",
                                 "--auth-login-url", "https://moodle.school.example/mod/lti/auth.php",
                                 "--token-url", "https://moodle.school.example/mod/lti/token.php",
                                 "--jwks-url", "https://moodle.school.example/mod/lti/certs.php"])
    assert result.exit_code == 0, result.output
    csp = directives(lms.launch("teacher").page())
    assert "https://moodle.school.example" in csp["frame-ancestors"]


@pytest.mark.parametrize("app_overrides", [{"FRAME_ANCESTORS": "https://*.instructure.com https://lms.example.edu"}])
def test_operators_may_add_frame_origins_the_registrations_do_not_name(lms, app_overrides):
    csp = directives(lms.launch("teacher").page())
    assert {"https://*.instructure.com", "https://lms.example.edu"} <= set(csp["frame-ancestors"])


def test_livekit_pages_may_connect_to_the_livekit_server_only(live):
    live.platform.add_resource_link("40", "LiveKit class", custom={"provider": "livekit"})
    teacher = live.launch("teacher", resource_link_id="40")
    teacher.join()
    page = teacher.get("/live")
    connect = directives(page)["connect-src"]
    ws = live.livekit.ws_url
    assert connect == ["'self'", ws, ws.replace("ws://", "http://", 1)]


def test_inline_scripts_carry_a_fresh_nonce_when_a_page_has_them(lms, platform):
    client = lms.app.test_client()
    fields = platform.login_initiation(user="teacher")
    fields["lti_storage_target"] = "_parent"
    first, second = client.post("/lti/login", data=fields), client.post("/lti/login", data=fields)
    nonces = []
    for response in (first, second):
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
        assert f'<script nonce="{nonce}">' in response.get_data(as_text=True)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_permissions_policy_lets_only_the_tool_use_camera_and_microphone(lms):
    policy = lms.launch("teacher").page().headers["Permissions-Policy"]
    assert "camera=(self)" in policy and "microphone=(self)" in policy and "geolocation=()" in policy


def test_no_hsts_over_plain_http(lms):
    assert "Strict-Transport-Security" not in lms.launch("teacher").page().headers


@pytest.mark.parametrize("app_overrides", [{"TOOL_BASE_URL": "https://live.example.edu"}])
def test_hsts_over_https(app, app_overrides):
    response = app.test_client().get("/healthz", base_url="https://live.example.edu")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_pages_and_personal_data_are_never_cached(lms):
    teacher = lms.launch("teacher")
    for response in (teacher.page(), teacher.status(),
                     teacher.client.post(f"/rooms/{teacher.room_id}/attendance.csv", data={"t": teacher.ticket})):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store", response.mimetype


def test_public_files_stay_cacheable(lms):
    client = lms.app.test_client()
    assert client.get("/.well-known/jwks.json").headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/static/style.css").headers.get("Cache-Control") != "no-store"


def test_tool_base_url_fixture_is_plain_http():
    assert TOOL_BASE_URL.startswith("http://")
