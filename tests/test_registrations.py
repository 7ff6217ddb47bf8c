"""Registrations: TOOL_CONFIG in pylti1p3's JSON format, the database, and pylti1p3's interface.

The store answers "which platform is this issuer and client id, and is this deployment one of
its own?"; a deployment the registration does not list is refused at login and at launch.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from lti_tool.extensions import db
from lti_tool.lti.registrations import (
    RegistrationConfigError,
    RegistrationStore,
    load_tool_config,
    parse_tool_config,
)
from lti_tool.models import Deployment, Platform
from tests.conftest import row_counts

MOODLE = "https://moodle.example.edu"
CANVAS = "https://canvas.instructure.com"


def client_entry(client_id: str, issuer: str = MOODLE, **extra) -> dict:
    return {
        "client_id": client_id,
        "auth_login_url": f"{issuer}/auth",
        "auth_token_url": f"{issuer}/token",
        "key_set_url": f"{issuer}/certs",
        "deployment_ids": ["1"],
        **extra,
    }


def write_config(directory, data) -> str:
    path = directory / "tool_config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# --- parsing TOOL_CONFIG ----------------------------------------------------------------------
def test_several_issuers_and_several_client_ids_per_issuer(tmp_path):
    path = write_config(tmp_path, {
        MOODLE: [client_entry("a", deployment_ids=["1", 2]), client_entry("b", default=True)],
        CANVAS: [client_entry("10000000000001", issuer=CANVAS)],
    })
    registrations = load_tool_config(path)
    assert [(r.issuer, r.client_id) for r in registrations] == [
        (MOODLE, "a"), (MOODLE, "b"), (CANVAS, "10000000000001"),
    ]
    first = registrations[0]
    assert first.deployment_ids == {"1", "2"}, "numeric deployment ids are read as strings"
    assert first.auth_login_url == f"{MOODLE}/auth" and first.auth_token_url == f"{MOODLE}/token"
    assert first.key_set_url == f"{MOODLE}/certs" and first.source == "file"
    assert [r.default for r in registrations] == [False, True, False]


def test_old_single_object_form_is_one_client(tmp_path):
    registrations = load_tool_config(write_config(tmp_path, {MOODLE: client_entry("only", auth_audience="aud")}))
    (registration,) = registrations
    assert registration.client_id == "only" and registration.auth_audience == "aud"
    assert registration.has_deployment("1")


def test_missing_file_means_no_registrations_and_empty_file_too(tmp_path):
    assert load_tool_config(tmp_path / "absent.json") == []
    assert load_tool_config(write_config(tmp_path, "")) == []


@pytest.mark.parametrize("field", ["client_id", "auth_login_url", "auth_token_url", "key_set_url"])
def test_missing_required_field_names_issuer_and_field(tmp_path, field):
    entry = client_entry("a")
    del entry[field]
    path = write_config(tmp_path, {MOODLE: [client_entry("ok"), entry]})
    with pytest.raises(RegistrationConfigError) as raised:
        load_tool_config(path)
    message = str(raised.value)
    assert MOODLE in message and field in message and "tool_config.json" in message


@pytest.mark.parametrize(
    "data, complaint",
    [
        ('{"https://moodle.example.edu": [', "not valid JSON"),
        ("[]", "top level"),
        ({MOODLE: "client"}, "list of client entries"),
        ({MOODLE: [client_entry("a", deployment_ids="1")]}, "deployment_ids"),
    ],
    ids=["invalid-json", "top-level-list", "string-entry", "deployment-ids-not-a-list"],
)
def test_malformed_config_gives_a_clear_error(tmp_path, data, complaint):
    path = write_config(tmp_path, data)
    with pytest.raises(RegistrationConfigError) as raised:
        load_tool_config(path)
    assert complaint in str(raised.value) and path in str(raised.value)


def test_key_file_paths_are_resolved_against_the_config_files_directory(tmp_path):
    config_dir = tmp_path / "etc" / "lti"
    config_dir.mkdir(parents=True)
    entry = client_entry("a", private_key_file="keys/private.pem", public_key_file="/abs/public.pem")
    (registration,) = load_tool_config(write_config(config_dir, {MOODLE: [entry]}))
    assert registration.private_key_file == str(config_dir / "keys" / "private.pem")
    assert registration.public_key_file == "/abs/public.pem"


# --- finding registrations --------------------------------------------------------------------
def store_of(data) -> RegistrationStore:
    return RegistrationStore(parse_tool_config(data, base_dir=None))


def test_find_without_client_id_picks_the_only_registration(app):
    store = store_of({MOODLE: [client_entry("only")], CANVAS: [client_entry("c", issuer=CANVAS)]})
    assert store.find(MOODLE).client_id == "only"
    assert store.find(CANVAS).client_id == "c"


def test_find_without_client_id_picks_the_default_one(app):
    store = store_of({MOODLE: [client_entry("a"), client_entry("b", default=True), client_entry("c")]})
    assert store.find(MOODLE).client_id == "b"


def test_find_without_client_id_is_none_when_ambiguous(app):
    store = store_of({MOODLE: [client_entry("a"), client_entry("b")]})
    assert store.find(MOODLE) is None
    assert store.find(MOODLE, "b").client_id == "b"


def test_find_unknown_issuer_or_client_is_none(app):
    store = store_of({MOODLE: [client_entry("a")]})
    assert store.find("https://other.example.edu") is None
    assert store.find(MOODLE, "zzz") is None
    assert store.find("") is None and store.find(None) is None


def test_has_deployment_only_for_listed_ids(app):
    registration = store_of({MOODLE: [client_entry("a", deployment_ids=["1", "3"])]}).find(MOODLE, "a")
    assert registration.has_deployment("1") and registration.has_deployment("3")
    assert not registration.has_deployment("2")
    assert not registration.has_deployment("") and not registration.has_deployment(None)


def add_platform_row(issuer=MOODLE, client_id="db-client", deployments=(("1", True),)) -> None:
    row = Platform(issuer=issuer, client_id=client_id, auth_login_url=f"{issuer}/db-auth",
                   auth_token_url=f"{issuer}/db-token", key_set_url=f"{issuer}/db-certs")
    for deployment_id, active in deployments:
        row.deployments.append(Deployment(deployment_id=deployment_id, active=active))
    db.session.add(row)
    db.session.commit()


def test_database_registration_is_found_and_inactive_deployments_are_not_its_own(app):
    add_platform_row(deployments=(("1", True), ("2", False)))
    registration = store_of({}).find(MOODLE, "db-client")
    assert registration.source == "database" and registration.auth_login_url == f"{MOODLE}/db-auth"
    assert registration.has_deployment("1") and not registration.has_deployment("2")


def test_inactive_database_platform_is_not_found(app):
    add_platform_row()
    db.session.execute(db.update(Platform).values(active=False))
    db.session.commit()
    assert store_of({}).find(MOODLE, "db-client") is None


def test_a_registration_disabled_by_another_process_stops_working_within_the_cache_bound(app):
    """Each process keeps a copy of the database registrations for DATABASE_CACHE_SECONDS: a
    change another process makes (the CLI, another worker) is seen once that bound has passed."""
    add_platform_row()
    store, now = store_of({}), [1000.0]
    store.clock = lambda: now[0]
    assert store.find(MOODLE, "db-client") is not None
    db.session.execute(db.update(Platform).values(active=False))  # as `platform disable` elsewhere
    db.session.commit()
    now[0] += store.DATABASE_CACHE_SECONDS - 0.5
    assert store.find(MOODLE, "db-client") is not None  # still this process's copy
    assert store.find(MOODLE, "db-client", fresh=True) is None  # what the administration pages ask
    now[0] += 1.0
    assert store.find(MOODLE, "db-client") is None
    assert store.disabled(MOODLE, ["db-client"])


def test_a_change_made_through_the_store_is_seen_at_once(app):
    add_platform_row()
    store = store_of({})
    store.clock = lambda: 1000.0  # the copy never expires by itself
    assert store.find(MOODLE, "db-client") is not None
    db.session.execute(db.update(Platform).values(active=False))
    db.session.commit()
    store.forget_cached()  # what platform_admin, add_database_platform and registration call
    assert store.find(MOODLE, "db-client") is None


def test_file_registrations_are_found_without_the_database(app):
    store = store_of({MOODLE: [client_entry("a")]})
    statements = []

    def count(conn, cursor, statement, *rest):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert store.find(MOODLE, "a").client_id == "a"
        assert store.find_first(MOODLE, ["a"]).client_id == "a"
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert statements == []


# --- pylti1p3's ToolConfAbstract --------------------------------------------------------------
def test_pylti1p3_registration_by_params_has_the_registered_urls(app, platform):
    store = app.extensions["registrations"]
    registration = store.find_registration_by_params(platform.issuer, platform.client_id)
    assert registration.get_issuer() == platform.issuer
    assert registration.get_client_id() == platform.client_id
    assert registration.get_auth_login_url() == platform.auth_login_url
    assert registration.get_auth_token_url() == platform.auth_token_url
    assert registration.get_key_set_url() == platform.key_set_url
    signing = app.extensions["key_ring"].signing_key
    assert registration.get_tool_private_key() == signing.private_pem.decode()
    assert registration.get_kid() == signing.kid, "pylti1p3's client assertions must name the key"
    assert store.find_registration_by_params(platform.issuer, "unknown-client") is None
    assert store.find_registration_by_issuer(platform.issuer).get_client_id() == platform.client_id


def test_pylti1p3_deployment_by_params(app, platform):
    store = app.extensions["registrations"]
    deployment = store.find_deployment_by_params(platform.issuer, platform.deployment_id, platform.client_id)
    assert deployment is not None and deployment.get_deployment_id() == platform.deployment_id
    assert store.find_deployment_by_params(platform.issuer, "99", platform.client_id) is None
    assert store.find_deployment_by_params(platform.issuer, platform.deployment_id, "other") is None
    assert store.find_deployment(platform.issuer, platform.deployment_id).get_deployment_id() == "1"


def test_pylti1p3_looks_database_issuers_up_by_client_id(app):
    """An issuer with two client ids in the database: pylti1p3 must ask with the client id
    (find_registration_by_issuer alone cannot tell them apart)."""
    add_platform_row(client_id="first")
    add_platform_row(client_id="second")
    store = app.extensions["registrations"]
    assert store.check_iss_has_many_clients(MOODLE) and not store.check_iss_has_one_client(MOODLE)
    assert store.find_registration_by_params(MOODLE, "second").get_client_id() == "second"
    # pylti1p3's own lookup (used by its services) goes through the client id.
    published = store.get_jwks(iss=MOODLE, client_id="second")["keys"]
    assert [key["kid"] for key in published] == [app.extensions["key_ring"].signing_key.kid]


# --- deployments the registration does not list are refused -----------------------------------
def test_login_for_an_unlisted_deployment_is_refused(app, platform, client):
    before = row_counts(app)
    platform.deployment_id = "99"  # Moodle made a second tool type; TOOL_CONFIG lists only "1"
    response = client.post("/lti/login", data=platform.login_initiation(user="teacher"))
    assert response.status_code == 403
    assert "deployment of the tool is not registered" in response.get_data(as_text=True)
    assert row_counts(app) == before


def test_launch_with_an_unlisted_deployment_is_refused(app, platform, client):
    """The login did not name the deployment, the id_token does: the launch checks it."""
    fields = platform.login_initiation(user="student")
    del fields["lti_deployment_id"]
    answer = client.post("/lti/login", data=fields)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    platform.deployment_id = "99"
    form = platform.authorize(answer.headers["Location"])
    before = row_counts(app)
    response = client.post("/lti/launch", data={"id_token": form["id_token"], "state": form["state"]})
    assert response.status_code == 403, response.get_data(as_text=True)
    assert "deployment of the tool is not registered" in response.get_data(as_text=True)
    after = row_counts(app)
    for table in ("users", "courses", "resource_links", "rooms", "enrolments"):
        assert after[table] == before[table], table
