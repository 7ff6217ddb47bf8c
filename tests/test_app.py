"""The application as a whole: configuration (CONTRACT.md's table), migrations that match the
models, and error pages: bad input never gives a 500 or a stack trace.
"""
from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import lti_tool
from lti_tool import ConfigurationError, create_app
from lti_tool import config as config_module
from lti_tool.config import all_settings, load_config
from lti_tool.extensions import db

ROOT = Path(lti_tool.__file__).resolve().parent.parent


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No configuration in the environment, no .env, and instance/ in a temporary directory."""
    for name in [*(s.name for s in all_settings()), "SECRET_KEY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config_module, "PROJECT_ROOT", tmp_path / "project")  # where .env is read
    monkeypatch.setattr(config_module, "INSTANCE_DIR", tmp_path / "instance")
    return tmp_path / "instance"


# --- configuration ----------------------------------------------------------------------------
def test_defaults_match_the_contract(clean_environment):
    config = load_config()
    assert config["DATABASE_URL"] == f"sqlite:///{ROOT / 'instance' / 'lti_tool.db'}"
    assert config["SQLALCHEMY_DATABASE_URI"] == config["DATABASE_URL"]
    assert config["TOOL_BASE_URL"] == "http://127.0.0.1:5000"
    assert config["TOOL_CONFIG"] == str(ROOT / "tool_config.json")
    assert config["KEYS_DIR"] == str(ROOT / "keys")
    assert config["VIDEO_PROVIDER"] == "bbb"
    assert config["BBB_CHECKSUM_ALGORITHM"] == "sha256"
    assert config["BBB_SERVER_URL"] == "" and config["BBB_SHARED_SECRET"] == ""
    assert config["LIVEKIT_URL"] == "" and config["LIVEKIT_API_KEY"] == "" and config["LIVEKIT_API_SECRET"] == ""
    assert config["RETRY_BASE_SECONDS"] == 2
    assert config["AUTO_UPGRADE_DATABASE"] is True, "the embedded SQLite upgrades itself on start"
    assert config["SECRET_KEY"] and (clean_environment / "secret_key").exists()


def test_environment_overrides_defaults_and_overrides_beat_the_environment(clean_environment, monkeypatch):
    monkeypatch.setenv("VIDEO_PROVIDER", " LiveKit ")
    monkeypatch.setenv("BBB_CHECKSUM_ALGORITHM", "SHA1")
    monkeypatch.setenv("TOOL_BASE_URL", "https://live.example.edu/")
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.5")
    config = load_config({"BBB_CHECKSUM_ALGORITHM": "sha512"})
    assert config["VIDEO_PROVIDER"] == "livekit"
    assert config["BBB_CHECKSUM_ALGORITHM"] == "sha512"
    assert config["TOOL_BASE_URL"] == "https://live.example.edu"
    assert config["RETRY_BASE_SECONDS"] == 0.5
    assert config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    "url",
    ["postgres://lti:pw@db.example.edu/lti", "postgresql://lti:pw@db.example.edu/lti",
     "postgresql+psycopg://lti:pw@db.example.edu/lti"],
)
def test_postgres_urls_use_psycopg_3(url):
    config = load_config({"DATABASE_URL": url, "SECRET_KEY": "x"})
    assert config["DATABASE_URL"] == "postgresql+psycopg://lti:pw@db.example.edu/lti"
    assert config["SQLALCHEMY_DATABASE_URI"] == config["DATABASE_URL"]
    assert config["AUTO_UPGRADE_DATABASE"] is False, "PostgreSQL is upgraded with `db upgrade`"


def test_legacy_bbb_webhook_checksums_are_off_unless_switched_on(clean_environment, monkeypatch):
    assert load_config()["BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM"] is False
    monkeypatch.setenv("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM", " True ")
    assert load_config()["BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM"] is True
    assert load_config({"BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM": "off"})["BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM"] is False


def test_relative_sqlite_path_is_relative_to_the_project():
    config = load_config({"DATABASE_URL": "sqlite:///instance/other.db", "SECRET_KEY": "x"})
    assert config["DATABASE_URL"] == f"sqlite:///{ROOT / 'instance' / 'other.db'}"


def test_relative_tool_config_and_keys_dir_are_relative_to_the_project():
    config = load_config({"TOOL_CONFIG": "conf/tool_config.json", "KEYS_DIR": "keys", "SECRET_KEY": "x"})
    assert config["TOOL_CONFIG"] == str(ROOT / "conf" / "tool_config.json")
    assert config["KEYS_DIR"] == str(ROOT / "keys")


@pytest.mark.parametrize(
    "name, value",
    [("VIDEO_PROVIDER", "zoom"), ("BBB_CHECKSUM_ALGORITHM", "md5"), ("RETRY_BASE_SECONDS", "soon"),
     ("RETRY_BASE_SECONDS", "-1"), ("ROOM_STATE_CHECK_SECONDS", "five"), ("LOGIN_STATE_SECONDS", "inf"),
     ("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM", "maybe")],
)
def test_invalid_setting_stops_create_app_with_a_message_naming_it(name, value, tmp_path):
    with pytest.raises(ConfigurationError) as raised:
        create_app({name: value, "SECRET_KEY": "x", "KEYS_DIR": str(tmp_path / "keys"),
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"})
    assert name in str(raised.value) and value in str(raised.value)
    assert not (tmp_path / "keys").exists(), "nothing is set up with a broken configuration"


def test_invalid_setting_from_the_environment_is_refused_too(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_PROVIDER", "jitsi")
    with pytest.raises(ConfigurationError, match="VIDEO_PROVIDER"):
        create_app({"SECRET_KEY": "x", "KEYS_DIR": str(tmp_path / "keys")})


def test_default_secret_key_is_generated_once_and_reused(clean_environment, tmp_path, monkeypatch):
    first = load_config()["SECRET_KEY"]
    assert len(first) >= 32
    assert load_config()["SECRET_KEY"] == first
    key_file = clean_environment / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Another instance directory (another machine) gets a key of its own, not a constant.
    monkeypatch.setattr(config_module, "INSTANCE_DIR", tmp_path / "other-instance")
    assert load_config()["SECRET_KEY"] != first


def test_secret_key_from_the_environment_wins_and_writes_nothing(clean_environment, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert load_config()["SECRET_KEY"] == "from-the-environment"
    assert not (clean_environment / "secret_key").exists()


# --- migrations -------------------------------------------------------------------------------
def test_migrations_match_the_models(app):
    """What `flask db check` checks: autogenerate finds nothing to add to the migrations."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], f"the models and migrations/ differ: {differences}"
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


# --- error pages: never a 500, never a stack trace --------------------------------------------
def unsigned_jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k'})}.{part(claims)}.c2ln"


BAD_REQUESTS = {
    "launch-by-get": ("GET", "/lti/launch", {}),
    "launch-junk": ("POST", "/lti/launch", {"data": {"id_token": "junk", "state": "junk"}}),
    "launch-empty": ("POST", "/lti/launch", {}),
    "launch-json-body": ("POST", "/lti/launch", {"json": {"id_token": ["x"]}}),
    "launch-token-with-odd-claims": ("POST", "/lti/launch", {"data": {
        "id_token": unsigned_jwt({"iss": ["a"], "aud": {"x": 1}, "nonce": 5}), "state": "s"}}),
    "launch-nul-in-issuer": ("POST", "/lti/launch", {"data": {
        "id_token": unsigned_jwt({"iss": "https://moodle\x00.example", "aud": "c"}), "state": "s"}}),
    "launch-nul-in-state": ("POST", "/lti/launch", {"data": {"id_token": "a.b.c", "state": "\x00"}}),
    "launch-huge-field": ("POST", "/lti/launch", {"data": {"id_token": "x" * 3_000_000, "state": "s"}}),
    "login-empty": ("POST", "/lti/login", {}),
    "login-unknown-platform": ("GET", "/lti/login", {"query_string": {"iss": "https://x.example", "login_hint": "1"}}),
    "login-nul-in-issuer": ("GET", "/lti/login", {"query_string": {"iss": "https://x\x00", "login_hint": "1"}}),
    "login-non-utf8-query": ("GET", "/lti/login", {"query_string": "iss=%ff%fe%80&login_hint=%c3%28"}),
    "login-long-issuer": ("POST", "/lti/login", {"data": {"iss": "https://" + "a" * 5000, "login_hint": "1"}}),
    "room-unknown": ("GET", "/rooms/999999", {}),
    "room-not-a-number": ("GET", "/rooms/abc", {}),
    "room-huge-number": ("GET", "/rooms/99999999999999999999999", {}),
    "room-bad-ticket": ("GET", "/rooms/1", {"query_string": {"t": "not-a-ticket"}}),
    "room-non-utf8-ticket": ("GET", "/rooms/1", {"query_string": "t=%ff%00%fe"}),
    "join-without-ticket": ("POST", "/rooms/1/join", {}),
    "join-by-get": ("GET", "/rooms/1/join", {}),
    "end-without-ticket": ("POST", "/rooms/1/end", {}),
    "settings-without-ticket": ("POST", "/rooms/1/settings", {"data": {"mute_on_start": "x"}}),
    "status-without-ticket": ("GET", "/rooms/1/status", {}),
    "unknown-page": ("GET", "/nope", {}),
    "non-utf8-path": ("GET", "/rooms/%ff%fe", {}),
    "jwks-by-post": ("POST", "/.well-known/jwks.json", {}),
    "webhook-junk": ("POST", "/webhooks/bbb", {"data": b"\xff\xfe{not json", "content_type": "application/json"}),
    "deep-link-empty": ("POST", "/lti/deep-link", {}),
    "deep-link-junk-token": ("POST", "/lti/deep-link", {"data": {"dl": "\x00junk", "title": "x" * 5000}}),
    "deep-link-by-get": ("GET", "/lti/deep-link", {}),
    "review-without-ticket": ("GET", "/rooms/1/review", {"query_string": {"student": "\x00"}}),
}


@pytest.mark.parametrize("method, path, kwargs", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_gets_a_readable_4xx_and_never_a_stack_trace(client, method, path, kwargs):
    response = client.open(path, method=method, **kwargs)
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, body[:500])
    assert "Traceback" not in body and 'File "' not in body
    if response.mimetype == "text/html":
        assert "<h1" in body
    else:
        assert response.mimetype == "application/json" and "error" in response.get_json(), body[:500]


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/nope", 404), ("GET", "/lti/launch", 405), ("GET", "/rooms/1", 401),
     ("POST", "/rooms/1/join", 401), ("GET", "/rooms/1/status", 401)],
)
def test_json_requests_get_json_errors(client, method, path, status):
    response = client.open(path, method=method, headers={"Accept": "application/json"})
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]


def test_error_pages_are_html_for_browsers(client):
    response = client.get("/nope", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "This page does not exist." in response.get_data(as_text=True)


# --- NUL bytes: PostgreSQL refuses them in text, so they must never reach a query as-is --------
def test_login_with_nul_bytes_in_its_parameters_is_not_a_500(client, platform):
    fields = platform.login_initiation(user="teacher")
    fields.update(login_hint="3\x00", lti_message_hint='{"launchid":"x\x00"}', client_id=platform.client_id)
    response = client.post("/lti/login", data=fields)
    assert response.status_code in (302, 400, 403), response.get_data(as_text=True)[:500]
    fields["client_id"] = platform.client_id + "\x00"
    response = client.post("/lti/login", data=fields)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:500]


def test_signed_launch_with_nul_byte_in_state_is_refused_not_a_500(client, lms):
    form = lms.start_login(client, as_="teacher")
    response = client.post("/lti/launch", data={"id_token": form["id_token"], "state": form["state"] + "\x00"})
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, body[:500])
    assert "Traceback" not in body
