"""Shared fixtures: a fresh database per test, a fake Moodle and a fake BigBlueButton over real
HTTP, and `lms`, which performs launches the way a browser does (`lms.launch("student")`).

The suite runs on SQLite by default and on PostgreSQL with
`TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, text

from lti_tool import create_app, upgrade_database
from lti_tool.extensions import db
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.lti_platform import FakePlatform, SigningKey

BBB_SECRET = "8cd8ef52e8e101574e400365b55e11a6"
LIVEKIT_KEY = "APItestKey"
LIVEKIT_SECRET = "testSecret0123456789abcdefghijklmnopqrstuvwxyz"
TOOL_BASE_URL = "http://localhost"


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def reset_postgres(url: str) -> None:
    engine = create_engine(_psycopg_url(url))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _private_postgres_database(url: str):
    """A throwaway database next to the one named, so concurrent runs (CI, helpers, a developer)
    never share tables. Falls back to resetting the named database's schema when the role may
    not create databases."""
    from sqlalchemy.engine import make_url

    name = f"lti_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_psycopg_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # no CREATEDB right: use the named database itself
        admin.dispose()
        reset_postgres(url)
        return url, None
    private = make_url(_psycopg_url(url)).set(database=name).render_as_string(hide_password=False)
    return private, (admin, name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url and url.startswith("postgres"):
        private, cleanup = _private_postgres_database(url)
        yield private
        if cleanup:
            admin, name = cleanup
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def migrated(database_url, keys_dir, tmp_path_factory):
    """Build the schema once per session through the real migrations."""
    config_file = tmp_path_factory.mktemp("cfg") / "tool_config.json"
    config_file.write_text("{}")
    app = create_app(tool_overrides(database_url, keys_dir, config_file))
    upgrade_database(app)
    return True


def tool_overrides(database_url, keys_dir, config_file, **extra) -> dict:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "TOOL_BASE_URL": TOOL_BASE_URL,
        "KEYS_DIR": str(keys_dir),
        "TOOL_CONFIG": str(config_file),
        "SECRET_KEY": "test-secret-key",
        **extra,
    }


@pytest.fixture
def bbb():
    with FakeBigBlueButton(BBB_SECRET) as server:
        yield server


@pytest.fixture(scope="session")
def platform_key():
    return SigningKey()  # one RSA key for every test's fake platform: key generation is slow


@pytest.fixture
def platform(platform_key):
    with FakePlatform(tool_base_url=TOOL_BASE_URL, signing_key=platform_key) as fake:
        yield fake


@pytest.fixture
def app_overrides() -> dict:
    """Tests override configuration by requesting this fixture and updating it."""
    return {}


@pytest.fixture
def app(migrated, database_url, keys_dir, tmp_path, platform, bbb, app_overrides):
    config_file = tmp_path / "tool_config.json"
    config_file.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
    provider_settings = {"BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET}
    overrides = tool_overrides(database_url, keys_dir, config_file, **{**provider_settings, **app_overrides})
    app = create_app(overrides)
    provider = app.extensions["providers"]["bbb"]
    if provider.is_configured():
        provider.client.backoff_base = 0.01  # retries stay real, only the waits shrink
    # The tool must fetch the JWKS the fake platform would fetch: the test client's own.
    platform.tool_jwks = lambda: app.test_client().get("/.well-known/jwks.json").get_json()
    yield app
    empty_tables(app)


def empty_tables(app) -> None:
    """Leave the shared test database empty for the next test."""
    with app.app_context():
        db.session.remove()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


def room_ticket_in(page_html: str) -> str:
    """The room ticket a room page puts in its forms (what a browser sends back with them)."""
    match = re.search(r'name="t" value="([^"]+)"', page_html)
    assert match, "the page has no form carrying the room ticket"
    return match.group(1)


class Person:
    """One browser after a launch: its own cookies, its room page and its tickets (the page
    ticket in the launch's redirect, the room ticket in the room page's forms)."""

    def __init__(self, client, launch_response):
        self.client = client
        self.launch_response = launch_response
        location = launch_response.headers.get("Location", "")
        parts = urlsplit(location)
        self.room_url = parts.path + ("?" + parts.query if parts.query else "")
        self.page_ticket = parse_qs(parts.query).get("t", [""])[0]
        self.room_id = int(parts.path.rstrip("/").split("/")[-1]) if parts.path.startswith("/rooms/") else None
        self._ticket = None

    @property
    def ticket(self) -> str:
        if self._ticket is None:
            self._ticket = room_ticket_in(self.page().get_data(as_text=True))
        return self._ticket

    @ticket.setter
    def ticket(self, value: str) -> None:  # tests forge or swap tickets
        self._ticket = value

    def page(self):
        return self.client.get(self.room_url)

    def status(self):
        return self.client.get(f"/rooms/{self.room_id}/status",
                               headers={"X-Room-Ticket": self.ticket, "Accept": "application/json"})

    def join(self, **headers):
        return self.client.post(f"/rooms/{self.room_id}/join", data={"t": self.ticket}, headers=headers)

    def end(self):
        return self.client.post(f"/rooms/{self.room_id}/end", data={"t": self.ticket})

    def save_settings(self, **fields):
        return self.client.post(f"/rooms/{self.room_id}/settings", data={"t": self.ticket, **fields})


class LMS:
    """What people do in Moodle: open the activity (a full OIDC launch in a fresh browser)."""

    def __init__(self, app, platform):
        self.app = app
        self.platform = platform

    def launch(self, as_: str = "teacher", **login) -> Person:
        client = self.app.test_client()
        response = self.platform.launch(client, user=as_, login_url=TOOL_BASE_URL + "/lti/login", **login)
        assert response.status_code == 303, response.get_data(as_text=True)
        return Person(client, response)

    def start_login(self, client, as_: str = "teacher", **login) -> dict:
        """Only the first two legs: login at the tool, authorization at the platform.
        Returns the id_token form the platform would POST (tests tamper with it)."""
        fields = self.platform.login_initiation(user=as_, **login)
        answer = client.post("/lti/login", data=fields)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return self.platform.authorize(answer.headers["Location"])


@pytest.fixture
def lms(app, platform) -> LMS:
    return LMS(app, platform)


def row_counts(app) -> dict:
    """How many rows each table holds: 'nothing written' checks compare these."""
    with app.app_context():
        return {
            table.name: db.session.execute(text(f"SELECT COUNT(*) FROM {table.name}")).scalar()
            for table in db.metadata.sorted_tables
        }


# --- the tool served over real HTTP (providers call back into it) ------------------------------
class LivePerson:
    """A browser (requests.Session) after a launch against the live tool."""

    def __init__(self, live, session, response):
        self.live, self.session = live, session
        parts = urlsplit(response.headers["Location"])
        self.room_id = int(parts.path.rstrip("/").split("/")[-1])
        self.page_ticket = parse_qs(parts.query)["t"][0]
        self.user_public_id = None
        self._ticket = None

    @property
    def ticket(self) -> str:
        """The room ticket, as the room page's forms carry it."""
        if self._ticket is None:
            self._ticket = room_ticket_in(self.get().text)
        return self._ticket

    def url(self, path: str = "") -> str:
        return f"{self.live.url}/rooms/{self.room_id}{path}"

    def get(self, path: str = "", **params):
        return self.session.get(self.url(path), params={"t": self.page_ticket, **params}, allow_redirects=False)

    def post(self, path: str, **data):
        return self.session.post(self.url(path), data={"t": self.ticket, **data}, allow_redirects=False)

    def join(self):
        return self.post("/join")


class Live:
    def __init__(self, url, app, platform, bbb, livekit=None):
        self.url, self.app, self.platform, self.bbb, self.livekit = url, app, platform, bbb, livekit

    def launch(self, as_: str = "teacher", **login) -> LivePerson:
        import requests

        session = requests.Session()
        response = self.platform.launch(session, user=as_, **login)
        assert response.status_code == 303, response.text[:500]
        return LivePerson(self, session, response)

    def run_worker(self, passes: int = 20) -> None:
        """Run worker passes until one finds nothing to do (bounded)."""
        from lti_tool.worker import Worker

        worker = Worker(self.app)
        for _ in range(passes):
            if not worker.run_once():
                return

    def public_id(self, platform_user: str) -> str:
        from lti_tool.models import User

        sub = self.platform.user(platform_user).sub
        with self.app.app_context():
            return db.session.scalar(
                __import__("sqlalchemy").select(User.public_id).where(
                    User.issuer == self.platform.issuer, User.sub == sub
                )
            )


@pytest.fixture
def live_overrides() -> dict:
    return {}


@pytest.fixture
def live(migrated, database_url, keys_dir, tmp_path, platform_key, live_overrides):
    from tests.fakes.http_server import LaterApp, ServedApp
    from tests.fakes.livekit_server import FakeLiveKit

    forward = LaterApp()
    server = ServedApp(forward)
    with FakeBigBlueButton(BBB_SECRET) as bbb, FakePlatform(
        tool_base_url=server.url, signing_key=platform_key
    ) as platform, FakeLiveKit(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit:
        config_file = tmp_path / "tool_config.json"
        config_file.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
        overrides = tool_overrides(
            database_url, keys_dir, config_file,
            **{"TOOL_BASE_URL": server.url, "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET,
               "LIVEKIT_URL": livekit.ws_url, "LIVEKIT_API_KEY": LIVEKIT_KEY, "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
               "RETRY_BASE_SECONDS": "0.01", **live_overrides},
        )
        app = create_app(overrides)
        app.extensions["providers"]["bbb"].client.backoff_base = 0.01
        forward.app = app
        platform.tool_jwks = server.url + "/.well-known/jwks.json"
        server.start()
        try:
            yield Live(server.url, app, platform, bbb, livekit)
        finally:
            server.stop()
            empty_tables(app)


def run_cli(app, *args) -> tuple[int, str]:
    """`flask --app wsgi <args>` against `app`: exit code and output."""
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


@pytest.fixture
def second_school(live, platform_key):
    """Another institution's Moodle, registered in the database (as `platform add` does), next to
    the live tool's own (TOOL_CONFIG) platform."""
    with FakePlatform(tool_base_url=live.url, signing_key=platform_key, client_id="school-two") as school:
        code, output = run_cli(live.app, "platform", "add", "--issuer", school.issuer, "--client-id",
                               school.client_id, "--deployment-id", school.deployment_id, "--auth-login-url",
                               school.auth_login_url, "--token-url", school.auth_token_url, "--jwks-url",
                               school.key_set_url)
        assert code == 0, output
        school.tool_jwks = live.url + "/.well-known/jwks.json"
        yield school


def launch_at(live, school, user: str) -> LivePerson:
    """A launch of `user` from another platform than the live tool's own."""
    import requests

    session = requests.Session()
    response = school.launch(session, user=user)
    assert response.status_code == 303, response.text[:300]
    return LivePerson(live, session, response)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright, one per test module. Modules that use it
    import tests.browser_support first, which skips them when no browser is available."""
    from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# Property-based fuzzing (tests/test_fuzz_*.py): every example is a real HTTP round trip against
# a shared database, so examples are few, never time-limited (a slow CI machine is not a bug),
# and the profile is the same on SQLite and PostgreSQL.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "lti",
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    )
    settings.load_profile("lti")
except ImportError:  # pragma: no cover - hypothesis is in requirements-dev.txt
    pass
