"""What a login may store: each parameter at most MAX_LOGIN_PARAM_BYTES, and only the ones the
launch needs.

Observed before: a 400 KB `lti_message_hint` was stored whole in login_states (300 logins grew
the database by 115 MB). Anyone can start logins, so what one costs must be small.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lti_tool.extensions import db
from lti_tool.lti.login import LOGIN_PARAMS, MAX_LOGIN_PARAM_BYTES, PURGE_EVERY_SECONDS
from lti_tool.models import LoginState, utcnow
from tests.conftest import row_counts


def refused(app, send, fields, status=400):
    before = row_counts(app)
    response = send(fields)
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[:300]
    assert "<h1" in body and "Traceback" not in body
    assert "Set-Cookie" not in response.headers
    assert row_counts(app) == before
    return body


@pytest.fixture(params=["GET", "POST"])
def send(request, client):
    if request.param == "GET":
        return lambda fields: client.get("/lti/login", query_string=fields)
    return lambda fields: client.post("/lti/login", data=fields)


@pytest.mark.parametrize("name", LOGIN_PARAMS)
def test_a_login_parameter_over_the_cap_is_refused_and_nothing_is_stored(app, platform, send, name):
    fields = {**platform.login_initiation(user="student"), name: "h" * (MAX_LOGIN_PARAM_BYTES + 1)}
    body = refused(app, send, fields)
    assert "too large" in body


def test_a_200_kb_message_hint_is_refused(app, platform, send):
    """Under the request body cap (256 KB), far over what a platform sends (Moodle: ~60 bytes)."""
    fields = {**platform.login_initiation(user="student"), "lti_message_hint": secrets.token_hex(100_000)}
    refused(app, send, fields)


def test_the_cap_counts_bytes_not_characters(app, platform, client):
    fields = {**platform.login_initiation(user="student"), "login_hint": "é" * (MAX_LOGIN_PARAM_BYTES // 2 + 1)}
    refused(app, lambda f: client.post("/lti/login", data=f), fields)


def test_parameters_up_to_the_cap_are_accepted(app, platform, client):
    hint = '{"cmid":2,"launchid":"x","pad":"' + "p" * (MAX_LOGIN_PARAM_BYTES - 40) + '"}'
    assert len(hint.encode()) <= MAX_LOGIN_PARAM_BYTES
    fields = {**platform.login_initiation(user="student"), "lti_message_hint": hint}
    assert client.post("/lti/login", data=fields).status_code == 302


def test_only_the_login_parameters_are_stored(app, platform, client):
    """Other request parameters (anything can be added to the URL) are neither checked nor kept."""
    fields = {**platform.login_initiation(user="student"), "junk": "j" * 100_000, "more": "x"}
    assert client.post("/lti/login", data=fields).status_code == 302
    with app.app_context():
        stored = db.session.scalars(select(LoginState)).one().login_params
    assert set(stored) <= set(LOGIN_PARAMS)
    assert stored == {name: fields[name] for name in LOGIN_PARAMS if fields.get(name)}


@pytest.mark.parametrize(
    "target", ["http://[::1", "http://localhost]:80/lti/launch", "//localhost/lti/launch", "localhost"]
)
def test_a_malformed_target_link_uri_is_refused_not_a_500(app, platform, client, target):
    fields = {**platform.login_initiation(user="student"), "target_link_uri": target}
    refused(app, lambda f: client.post("/lti/login", data=f), fields)


@pytest.mark.parametrize("name", ["iss", "client_id", "lti_deployment_id", "login_hint"])
@pytest.mark.parametrize("value", ["i" * MAX_LOGIN_PARAM_BYTES, "nul\x00inside", "\u202eright-to-left"],
                         ids=["at-the-cap", "nul", "bidi"])
def test_odd_values_within_the_cap_get_an_answer_not_a_500(app, platform, client, name, value):
    """They reach the registration lookup (and, for login_hint, the stored login): PostgreSQL
    must not see a NUL, and nothing longer than a column may be written."""
    fields = {**platform.login_initiation(user="student"), name: value}
    response = client.post("/lti/login", data=fields)
    assert response.status_code in (302, 400, 403), response.get_data(as_text=True)[:300]


def test_expired_logins_are_deleted_at_most_once_a_minute_per_process(app, platform, client):
    """Not at every login (two DELETEs apiece): once PURGE_EVERY_SECONDS have passed."""
    assert client.post("/lti/login", data=platform.login_initiation(user="student")).status_code == 302
    with app.app_context():
        db.session.add(LoginState(state="old", nonce="n", browser_binding="b", issuer=platform.issuer,
                                  client_id=platform.client_id, login_params={},
                                  expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.post("/lti/login", data=platform.login_initiation(user="student")).status_code == 302
    with app.app_context():
        assert db.session.get(LoginState, "old") is not None  # the minute has not passed
    app.extensions["login_purged_at"] -= PURGE_EVERY_SECONDS + 1
    assert client.post("/lti/login", data=platform.login_initiation(user="student")).status_code == 302
    with app.app_context():
        assert db.session.get(LoginState, "old") is None
        assert db.session.scalar(select(func.count()).select_from(LoginState)) == 3
