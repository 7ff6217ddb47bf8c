"""What an unauthenticated launch may cost: bounded work before the signature is checked.

Observed before: an unsigned id_token whose `aud` listed 10,000 strings made one database lookup
per entry before any signature check (3.3 s per request on SQLite, 27 s on PostgreSQL) and the
whole list went into the log; a 1.3 MB token timed a gunicorn worker out. Such tokens must be
refused quickly, with a 4xx page, a bounded log line and a handful of SQL statements at most.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from lti_tool.extensions import db
from lti_tool.lti.launch import MAX_AUDIENCES, MAX_ID_TOKEN_BYTES
from tests.conftest import row_counts

LONGEST_LOG_LINE = 1000


@contextmanager
def counted_statements(app):
    """Count the SQL statements the application sends (observing the engine, not mocking it)."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def unsigned(platform, **claims) -> str:
    """An id_token nobody signed: what anyone on the internet can post to /lti/launch."""
    payload = {**platform.id_token_claims(user="teacher"), **claims}
    return platform.sign_jwt(payload, sign=False)


def refused_quickly(app, client, caplog, id_token: str, max_statements: int):
    """Post the token; it must be refused with a readable 4xx page, fast, with few statements
    and only bounded, single-line log records. Returns (response, seconds, statements)."""
    caplog.set_level(logging.INFO, logger="lti_tool")
    before = row_counts(app)
    # Any page first: it fills the process's short cache of the registered platforms' origins
    # (the Content-Security-Policy's frame-ancestors), which is not the launch's work.
    client.get("/nowhere")
    with counted_statements(app) as statements:
        started = time.monotonic()
        response = client.post("/lti/launch", data={"id_token": id_token, "state": "s" * 20})
        seconds = time.monotonic() - started
    body = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, body[:300])
    assert "<h1" in body and "Traceback" not in body
    # The bound is the statement count; the time is reported (bench/ measures speed).
    assert len(statements) <= max_statements, statements[:5]
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("lti_tool")]
    assert lines, "a refused launch logs its reason"
    for line in lines:
        assert len(line) <= LONGEST_LOG_LINE, f"log line of {len(line)} characters: {line[:200]}…"
        assert "\n" not in line
    assert row_counts(app) == before
    return response, seconds, statements


def test_ten_thousand_audiences_are_refused_quickly_with_few_statements(app, client, platform, caplog):
    token = unsigned(platform, aud=[f"client-{i}" for i in range(10_000)])
    refused_quickly(app, client, caplog, token, max_statements=2)


def test_many_short_audiences_under_the_size_cap_are_refused_before_any_lookup(app, client, platform, caplog):
    audiences = [str(i) for i in range(5_000)]  # ~47 KB: under the size cap, over the list cap
    token = unsigned(platform, aud=audiences)
    assert len(token) < MAX_ID_TOKEN_BYTES
    refused_quickly(app, client, caplog, token, max_statements=0)
    assert any("audiences" in record.getMessage() for record in caplog.records)


def test_a_token_over_the_size_cap_is_refused_before_it_is_decoded(app, client, platform, caplog):
    token = unsigned(platform, padding="x" * (MAX_ID_TOKEN_BYTES + 1000))
    refused_quickly(app, client, caplog, token, max_statements=0)
    assert any("too large" in record.getMessage() for record in caplog.records)


def test_deeply_nested_claims_are_refused_not_a_500(app, client, platform, caplog):
    """json.loads recurses once per nesting level: 20,000 levels raise RecursionError."""
    import base64

    payload = base64.urlsafe_b64encode(b"[" * 20_000 + b"]" * 20_000).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k"}').rstrip(b"=").decode()
    refused_quickly(app, client, caplog, f"{header}.{payload}.", max_statements=0)


def add_database_registrations(app, platform, *client_ids) -> None:
    """Registrations added with the CLI, on the fake platform's own endpoints."""
    from lti_tool.models import Platform

    with app.app_context():
        for client_id in client_ids:
            db.session.add(Platform(issuer=platform.issuer, client_id=client_id,
                                    auth_login_url=platform.auth_login_url,
                                    auth_token_url=platform.auth_token_url,
                                    key_set_url=platform.key_set_url))
        db.session.commit()


def test_the_audiences_of_a_token_are_looked_up_in_one_query(app, client, platform, caplog):
    """Several audiences (within the cap) and database registrations: one query finds them."""
    add_database_registrations(app, platform, "db-a", "db-b")
    audiences = [f"unknown-{i}" for i in range(MAX_AUDIENCES - 1)] + ["db-b"]
    token = unsigned(platform, aud=audiences)
    _, _, statements = refused_quickly(app, client, caplog, token, max_statements=1)
    assert len(statements) == 1


def test_registration_store_finds_the_first_of_several_client_ids_with_one_query(app, platform):
    store = app.extensions["registrations"]
    add_database_registrations(app, platform, "db-a", "db-b")
    with app.app_context():
        with counted_statements(app) as statements:
            assert store.find_first(platform.issuer, ["nobody", "db-b", "db-a"]).client_id == "db-b"
            # The file registration comes first when it is named first, without a query.
            found = store.find_first(platform.issuer, [platform.client_id, "db-a"])
            assert found.client_id == platform.client_id and found.source == "file"
            assert store.find_first(platform.issuer, ["nobody", "nul\x00client"]) is None
            assert store.find_first("https://unknown.example.com", ["db-a"]) is None
        assert len(statements) <= 3


@pytest.mark.parametrize("aud", [[], "", 7, {"a": 1}, [None, 3]])
def test_audiences_of_the_wrong_shape_are_refused(app, client, platform, caplog, aud):
    refused_quickly(app, client, caplog, unsigned(platform, aud=aud), max_statements=0)


@pytest.mark.parametrize("claims",
                         [{"aud": "\ud800"}, {"iss": "https://x\ud800"}, {"aud": ["b\udfff"]}, {"iss": "x\x00"}],
                         ids=["aud-surrogate", "iss-surrogate", "aud-entry-surrogate", "iss-nul"])
def test_unstorable_characters_in_issuer_or_audience_are_refused_before_any_query(
    app, client, platform, caplog, claims
):
    """Found by the fuzzer on PostgreSQL: a lone surrogate in aud reached the query (a 500)."""
    refused_quickly(app, client, caplog, unsigned(platform, **claims), max_statements=0)
