"""The command line (`flask --app wsgi …`): platform add/list/show/disable/enable/delete, keys
rotate/list, db upgrade.

Every command prints what it did and exits non-zero with a clear message on bad input, writing
nothing; a platform added with `platform add` can launch the tool like one from TOOL_CONFIG.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lti_tool.cli import quick_start_lines
from lti_tool.extensions import db
from lti_tool.models import Deployment, Platform
from tests.conftest import LMS, TOOL_BASE_URL, row_counts
from tests.fakes.lti_platform import FakePlatform

MOODLE = "https://moodle.example.edu"


def add_args(issuer=MOODLE, client_id="client-1", deployment_id="1", **urls) -> list[str]:
    """`platform add` arguments; a URL option given as None is left out."""
    options = {
        "--auth-login-url": f"{issuer}/mod/lti/auth.php",
        "--token-url": f"{issuer}/mod/lti/token.php",
        "--jwks-url": f"{issuer}/mod/lti/certs.php",
    }
    options.update({"--" + name.replace("_", "-"): value for name, value in urls.items()})
    args = ["platform", "add", "--issuer", issuer, "--client-id", client_id, "--deployment-id", deployment_id]
    for option, value in options.items():
        if value is not None:
            args += [option, value]
    return args


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def store(app):
    return app.extensions["registrations"]


# --- platform add ---------------------------------------------------------------------------
def test_platform_add_registers_a_platform_the_store_finds(app, runner):
    result = runner.invoke(args=add_args())
    assert result.exit_code == 0, result.output
    assert "registered" in result.output and MOODLE in result.output and "client-1" in result.output
    with app.app_context():
        registration = store(app).find(MOODLE, "client-1")
        assert registration is not None and registration.source == "database"
        assert registration.auth_login_url == f"{MOODLE}/mod/lti/auth.php"
        assert registration.auth_token_url == f"{MOODLE}/mod/lti/token.php"
        assert registration.key_set_url == f"{MOODLE}/mod/lti/certs.php"
        assert registration.has_deployment("1")
        assert not registration.has_deployment("2")
        assert store(app).find(MOODLE, "another-client") is None


def test_platform_add_again_with_another_deployment_adds_it(app, runner):
    assert runner.invoke(args=add_args(deployment_id="1")).exit_code == 0
    result = runner.invoke(args=add_args(deployment_id="7"))
    assert result.exit_code == 0, result.output
    assert "updated" in result.output and "7" in result.output
    with app.app_context():
        registration = store(app).find(MOODLE, "client-1")
        assert registration.deployment_ids == {"1", "7"}
        assert db.session.query(Platform).count() == 1


def test_platform_add_same_deployment_twice_keeps_one(app, runner):
    assert runner.invoke(args=add_args()).exit_code == 0
    assert runner.invoke(args=add_args()).exit_code == 0
    with app.app_context():
        assert db.session.query(Deployment).count() == 1


def test_platform_add_again_reactivates_a_deactivated_deployment(app, runner):
    assert runner.invoke(args=add_args(deployment_id="1")).exit_code == 0
    db.session.execute(db.update(Deployment).values(active=False))
    db.session.commit()
    assert not store(app).find(MOODLE, "client-1").has_deployment("1")
    result = runner.invoke(args=add_args(deployment_id="1"))
    assert result.exit_code == 0, result.output
    assert store(app).find(MOODLE, "client-1").has_deployment("1")


@pytest.mark.parametrize(
    "args, complaint",
    [
        (add_args(issuer="not-a-url"), "--issuer"),
        (add_args(auth_login_url="ftp://moodle.example.edu/auth"), "--auth-login-url"),
        (add_args(token_url="moodle.example.edu/token.php"), "--token-url"),
        (add_args(jwks_url="https://"), "--jwks-url"),
        (add_args(client_id=""), "--client-id"),
        (add_args(client_id="   "), "--client-id"),
        (add_args(deployment_id=" "), "--deployment-id"),
        (add_args(jwks_url=None), "--jwks-url"),
        (add_args(token_audience="brightspace"), "--token-audience"),
        (["platform", "add", "--issuer", MOODLE], "Missing option"),
    ],
    ids=["bad-issuer", "ftp-login-url", "schemeless-token-url", "hostless-jwks-url", "empty-client-id",
         "blank-client-id", "blank-deployment-id", "missing-jwks-url", "bad-token-audience", "only-issuer"],
)
def test_platform_add_with_bad_input_fails_clearly_and_writes_nothing(app, runner, args, complaint):
    before = row_counts(app)
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert complaint in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, KeyError))
    assert row_counts(app) == before


def test_platform_add_refuses_a_registration_tool_config_already_has(app, runner, platform):
    before = row_counts(app)
    result = runner.invoke(args=add_args(issuer=platform.issuer, client_id=platform.client_id, deployment_id="2"))
    assert result.exit_code != 0
    assert "TOOL_CONFIG" in result.output and platform.issuer in result.output
    assert row_counts(app) == before
    with app.app_context():
        assert not store(app).find(platform.issuer, platform.client_id).has_deployment("2")


def test_platform_add_accepts_another_client_id_of_a_file_issuer(app, runner, platform):
    result = runner.invoke(args=add_args(issuer=platform.issuer, client_id="second-client"))
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert store(app).find(platform.issuer, "second-client").source == "database"
        assert store(app).find(platform.issuer, platform.client_id).source == "file"


# --- platform list --------------------------------------------------------------------------
def test_platform_list_shows_file_and_database_registrations_with_their_source(app, runner, platform):
    runner.invoke(args=add_args(deployment_id="42"))
    result = runner.invoke(args=["platform", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    file_line = next(line for line in lines if line.startswith(platform.issuer))
    database_line = next(line for line in lines if line.startswith(MOODLE))
    assert f"client_id={platform.client_id}" in file_line and "source=file" in file_line
    assert "deployments=1" in file_line
    assert "client_id=client-1" in database_line and "source=database" in database_line
    assert "deployments=42" in database_line
    assert f"jwks={MOODLE}/mod/lti/certs.php" in result.output
    assert "warning" not in result.output


class TestWithoutFileRegistrations:
    @pytest.fixture
    def app_overrides(self, tmp_path):
        empty = tmp_path / "empty_tool_config.json"
        empty.write_text("{}")
        return {"TOOL_CONFIG": str(empty)}

    def test_platform_list_without_registrations_says_so(self, runner):
        result = runner.invoke(args=["platform", "list"])
        assert result.exit_code == 0
        assert "no platforms registered" in result.output


def test_database_row_shadowed_by_file_registration_is_reported_and_ignored(app, runner, platform):
    """The file gained the registration after the CLI had added it: the row is not live."""
    with app.app_context():
        row = Platform(
            issuer=platform.issuer,
            client_id=platform.client_id,
            auth_login_url="https://elsewhere.example/auth",
            auth_token_url="https://elsewhere.example/token",
            key_set_url="https://elsewhere.example/certs",
        )
        row.deployments.append(Deployment(deployment_id="99"))
        db.session.add(row)
        db.session.commit()
    result = runner.invoke(args=["platform", "list"])
    assert result.exit_code == 0, result.output
    assert "shadowed" in result.output and "not live" in result.output
    assert "elsewhere.example" not in result.output.split("warning")[0]
    with app.app_context():
        registration = store(app).find(platform.issuer, platform.client_id)
        assert registration.source == "file"
        assert registration.auth_login_url == platform.auth_login_url
        assert not registration.has_deployment("99")
        assert [r.source for r in store(app).all() if r.issuer == platform.issuer] == ["file"]


# --- a platform added with the CLI launches -------------------------------------------------
def test_platform_registered_only_with_the_cli_can_launch(app, runner, platform_key):
    with FakePlatform(tool_base_url=TOOL_BASE_URL, client_id="cli-client", deployment_id="5",
                      signing_key=platform_key) as second:
        refused = app.test_client().post("/lti/login", data=second.login_initiation(user="teacher"))
        assert refused.status_code == 403  # not registered yet
        result = runner.invoke(args=[
            "platform", "add", "--issuer", second.issuer, "--client-id", second.client_id,
            "--deployment-id", second.deployment_id, "--auth-login-url", second.auth_login_url,
            "--token-url", second.auth_token_url, "--jwks-url", second.key_set_url,
        ])
        assert result.exit_code == 0, result.output
        response = second.launch(app.test_client(), user="teacher", login_url=TOOL_BASE_URL + "/lti/login")
        assert response.status_code == 303, response.get_data(as_text=True)
        assert response.headers["Location"].startswith("/rooms/")


# --- keys -----------------------------------------------------------------------------------
class TestKeysCommands:
    @pytest.fixture
    def app_overrides(self, tmp_path):
        """A keys directory of this test's own: rotating must not touch the session's keys."""
        return {"KEYS_DIR": str(tmp_path / "own_keys")}

    def test_keys_rotate_publishes_old_and_new_key_and_signs_with_the_new(self, app, runner, client, tmp_path):
        key_ring = app.extensions["key_ring"]
        old_kid = key_ring.signing_key.kid
        result = runner.invoke(args=["keys", "rotate"])
        assert result.exit_code == 0, result.output
        new_kid = key_ring.signing_key.kid
        assert new_kid != old_kid
        assert new_kid in result.output.splitlines()[0]
        published = [key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]]
        assert sorted(published) == sorted([old_kid, new_kid])
        assert len(list((tmp_path / "own_keys").glob("tool-*.pem"))) == 2

    def test_keys_list_marks_the_signing_key(self, app, runner):
        first = app.extensions["key_ring"].signing_key.kid
        runner.invoke(args=["keys", "rotate"])
        second = app.extensions["key_ring"].signing_key.kid
        result = runner.invoke(args=["keys", "list"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert len(lines) == 2
        assert any(first in line and "published" in line and "signing" not in line for line in lines)
        assert any(second in line and "signing" in line for line in lines)


# --- db upgrade -----------------------------------------------------------------------------
def test_db_upgrade_on_an_up_to_date_database_succeeds(app, runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.exception is None


# --- platform show / disable / enable / delete ------------------------------------------------
@pytest.fixture
def second(app, runner, platform_key):
    """A second Moodle, registered with `platform add` (a database registration)."""
    with FakePlatform(tool_base_url=TOOL_BASE_URL, client_id="cli-client", deployment_id="5",
                      signing_key=platform_key) as lms:
        result = runner.invoke(args=[
            "platform", "add", "--issuer", lms.issuer, "--client-id", lms.client_id,
            "--deployment-id", lms.deployment_id, "--auth-login-url", lms.auth_login_url,
            "--token-url", lms.auth_token_url, "--jwks-url", lms.key_set_url,
        ])
        assert result.exit_code == 0, result.output
        yield lms


def launch(app, lms, user="teacher"):
    return lms.launch(app.test_client(), user=user, login_url=TOOL_BASE_URL + "/lti/login")


def which(lms) -> list[str]:
    return ["--issuer", lms.issuer, "--client-id", lms.client_id]


def test_platform_show_prints_urls_deployments_state_and_what_uses_it(app, runner, second):
    assert launch(app, second).status_code == 303
    result = runner.invoke(args=["platform", "show", *which(second)])
    assert result.exit_code == 0, result.output
    output = result.output
    assert f"issuer:         {second.issuer}" in output and "client id:      cli-client" in output
    assert "state:          active" in output and "source:         database" in output
    assert f"login URL:      {second.auth_login_url}" in output and f"key set URL:    {second.key_set_url}" in output
    assert f"token URL:      {second.auth_token_url}" in output
    assert "deployments:    5" in output and "used by:        1 course(s), 1 room(s)" in output


def test_platform_show_a_tool_config_registration(app, runner, platform):
    result = runner.invoke(args=["platform", "show", *which(platform)])
    assert result.exit_code == 0, result.output
    assert "source:         TOOL_CONFIG" in result.output and "used by:        0 course(s), 0 room(s)" in result.output


@pytest.mark.parametrize("command", ["show", "disable", "enable", "delete"])
def test_platform_commands_name_an_unknown_registration_clearly(app, runner, command):
    before = row_counts(app)
    result = runner.invoke(args=["platform", command, "--issuer", MOODLE, "--client-id", "nobody"])
    assert result.exit_code != 0
    assert "no registration for issuer" in result.output and "Traceback" not in result.output
    missing = runner.invoke(args=["platform", command, "--issuer", MOODLE])
    assert missing.exit_code != 0 and "Missing option '--client-id'" in missing.output
    assert row_counts(app) == before


@pytest.mark.parametrize("command", ["disable", "enable", "delete"])
def test_tool_config_registrations_are_changed_in_the_file_not_here(app, runner, platform, command):
    before = row_counts(app)
    result = runner.invoke(args=["platform", command, *which(platform)])
    assert result.exit_code != 0 and "TOOL_CONFIG" in result.output
    assert row_counts(app) == before


def test_disable_refuses_launches_and_keeps_everything_and_enable_brings_them_back(app, runner, second, lms):
    teacher = launch(app, second)
    assert teacher.status_code == 303
    pending = LMS(app, second)
    started = pending.start_login(app.test_client(), as_="student")  # a launch under way while disabling
    kept = row_counts(app)

    result = runner.invoke(args=["platform", "disable", *which(second)])
    assert result.exit_code == 0, result.output
    assert "disabled" in result.output and "refused" in result.output and "1 course(s), 1 room(s)" in result.output
    assert row_counts(app) == kept, "disabling deletes nothing"
    login = app.test_client().post("/lti/login", data=second.login_initiation(user="student"))
    assert login.status_code == 403 and "turned off for this learning platform" in login.get_data(as_text=True)
    id_token = app.test_client().post("/lti/launch", data={"id_token": started["id_token"], "state": started["state"]})
    assert id_token.status_code == 403 and "turned off" in id_token.get_data(as_text=True)
    assert lms.launch("teacher").room_id, "the other platform's launches go on"
    listed = runner.invoke(args=["platform", "list"]).output
    assert any(second.issuer in line and "DISABLED" in line for line in listed.splitlines())
    assert "state:          DISABLED" in runner.invoke(args=["platform", "show", *which(second)]).output
    again = runner.invoke(args=["platform", "disable", *which(second)])
    assert again.exit_code == 0 and "already disabled" in again.output

    result = runner.invoke(args=["platform", "enable", *which(second)])
    assert result.exit_code == 0 and "enabled" in result.output
    back = launch(app, second)
    assert back.status_code == 303
    assert back.headers["Location"].split("?")[0] == teacher.headers["Location"].split("?")[0], "the same room"


def test_delete_refuses_while_rooms_exist_and_force_deletes_what_it_says(app, runner, second, lms):
    launch(app, second)
    launch(app, second, user="student")
    other_room = lms.launch("teacher").room_id  # the file registration's room stays
    before = row_counts(app)
    refused = runner.invoke(args=["platform", "delete", *which(second)])
    assert refused.exit_code != 0
    assert "1 room(s) in 1 course(s)" in refused.output and "--force" in refused.output
    assert row_counts(app) == before

    result = runner.invoke(args=["platform", "delete", *which(second), "--force"])
    assert result.exit_code == 0, result.output
    assert "deleted registration" in result.output and "1 deployment(s), 1 course(s) and 1 room(s)" in result.output
    after = row_counts(app)
    assert after["platforms"] == 0 and after["deployments"] == 0
    assert after["rooms"] == 1 and after["courses"] == 1 and after["enrolments"] == 1
    with app.app_context():
        from lti_tool.models import Room

        assert db.session.get(Room, other_room) is not None
    refused_login = app.test_client().post("/lti/login", data=second.login_initiation(user="teacher"))
    assert refused_login.status_code == 403 and "not registered" in refused_login.get_data(as_text=True)


def test_delete_a_registration_nothing_uses(app, runner, second):
    result = runner.invoke(args=["platform", "delete", *which(second)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("1 deployment(s)")
    assert row_counts(app)["platforms"] == 0


def test_platform_add_with_a_token_audience_keeps_it_for_token_requests(app, runner):
    audience = "https://api.brightspace.com/auth/token"
    result = runner.invoke(args=add_args(token_audience=audience))
    assert result.exit_code == 0, result.output
    assert store(app).find(MOODLE, "client-1").auth_audience == audience
    shown = runner.invoke(args=["platform", "show", "--issuer", MOODLE, "--client-id", "client-1"])
    assert f"token audience: {audience}" in shown.output


# --- the quick start's printout -----------------------------------------------------------------
def test_the_readme_shows_what_bin_start_prints():
    """`bin/start` runs `serve`, which prints quick_start_lines; the README's copy must not drift."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    printed = quick_start_lines("http://127.0.0.1:5000")
    assert "\n".join("    " + line for line in printed) in readme
    assert printed[4].split() == ["Dynamic", "registration", "URL", "http://127.0.0.1:5000/lti/register"]
    assert not any("coming soon" in line or "not available" in line for line in printed)
