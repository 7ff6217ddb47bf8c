"""GET /healthz: 200 while the database answers, 503 (quickly, never 500) when it does not."""
from __future__ import annotations

import time

import pytest

from lti_tool import create_app
from lti_tool.extensions import db

# A PostgreSQL port nothing listens on: connecting is refused at once.
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/none"


def test_healthz_is_ok_with_the_database_reachable(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


@pytest.fixture
def app_without_database(keys_dir, tmp_path):
    config = tmp_path / "tool_config.json"
    config.write_text("{}")
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": UNREACHABLE_DATABASE,
        "TOOL_BASE_URL": "http://localhost",
        "KEYS_DIR": str(keys_dir),
        "TOOL_CONFIG": str(config),
        "SECRET_KEY": "test-secret-key",
    })
    yield app
    with app.app_context():
        db.engine.dispose()


def test_healthz_is_503_quickly_when_the_database_is_unreachable(app_without_database):
    client = app_without_database.test_client()
    for _ in range(2):  # and again: a failed check must not leave the session broken
        started = time.monotonic()
        response = client.get("/healthz")
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["status"] != "ok"
        assert "Traceback" not in response.get_data(as_text=True)
        assert time.monotonic() - started < 3


def test_healthz_accepts_head_for_load_balancers(client):
    assert client.head("/healthz").status_code == 200
