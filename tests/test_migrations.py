"""Upgrading a database that holds data: what the migrations carry over.

The run ids migration (d91e4c7b2a10) moves the core off BigBlueButton's formats; a database
written before it must keep working: a BBB room keeps its last known run, BBB events keep their
connection (from their payload) and their run's start (from their internal id).
"""
from __future__ import annotations

import hashlib
import json

from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from lti_tool import create_app
from lti_tool.config import PROJECT_ROOT

MIGRATIONS = str(PROJECT_ROOT / "migrations")
CREATE_TIME = 1_715_261_728_123


def test_run_ids_are_carried_over_from_bbb_create_times_and_payloads(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "x", "KEYS_DIR": str(tmp_path / "keys"),
                      "TOOL_CONFIG": str(tmp_path / "none.json")})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="c3f1a7d2e901")
    engine = create_engine(url)
    internal_id = hashlib.sha1(b"m-1").hexdigest() + f"-{CREATE_TIME}"
    payload = {"attributes": {"user": {"internal-user-id": "w_tab1", "external-user-id": "u1"}}}
    with engine.begin() as db:
        db.execute(text("INSERT INTO courses "
                        "(id, issuer, client_id, deployment_id, context_id, label, title, created_at) "
                        "VALUES (1, 'i', 'c', 'd', 'x', '', '', '2026-01-01')"))
        db.execute(text("INSERT INTO resource_links (id, course_id, resource_link_id, title, created_at) "
                        "VALUES (1, 1, 'r', '', '2026-01-01')"))
        db.execute(text("INSERT INTO rooms (id, resource_link_id, provider, meeting_id, name, settings, running, "
                        "create_time, grading, created_at) VALUES (1, 1, 'bbb', 'm-1', 'R', '{}', 0, :t, '{}', "
                        "'2026-01-01')"), {"t": CREATE_TIME})
        db.execute(text("INSERT INTO provider_events (id, provider, source, kind, dedupe_key, meeting_id, "
                        "internal_meeting_id, user_name, role, occurred_at, payload, received_at, status) VALUES "
                        "(1, 'bbb', 'webhook', 'user_joined', 'k1', 'm-1', :run, '', '', '2026-01-01', :p, "
                        "'2026-01-01', 'applied')"), {"run": internal_id, "p": json.dumps(payload)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    with engine.connect() as db:
        assert db.execute(text("SELECT run_id FROM rooms")).scalar() == internal_id
        run_id, started, stored = db.execute(text("SELECT run_id, run_started_at, payload FROM provider_events")).one()
    assert run_id == internal_id and started.startswith("2024-05-09 13:35:28")
    assert json.loads(stored)["connection"] == "w_tab1"
    engine.dispose()


def test_rooms_from_before_deep_linking_keep_sending_grades_out_of_100(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "x", "KEYS_DIR": str(tmp_path / "keys"),
                      "TOOL_CONFIG": str(tmp_path / "none.json")})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="d91e4c7b2a10")
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("INSERT INTO courses "
                        "(id, issuer, client_id, deployment_id, context_id, label, title, created_at) "
                        "VALUES (1, 'i', 'c', 'd', 'x', '', '', '2026-01-01')"))
        db.execute(text("INSERT INTO resource_links (id, course_id, resource_link_id, title, created_at) "
                        "VALUES (1, 1, 'r', '', '2026-01-01')"))
        db.execute(text("INSERT INTO rooms (id, resource_link_id, provider, meeting_id, name, settings, running, "
                        "grading, created_at) VALUES (1, 1, 'bbb', 'm-1', 'R', '{}', 0, '{}', '2026-01-01')"))
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    with engine.connect() as db:
        room = db.execute(text("SELECT graded, score_maximum, schedule_start, schedule_weeks FROM rooms")).one()
        scopes = db.execute(text("SELECT ags_scopes FROM resource_links")).scalar()
    assert tuple(room) == (1, 100.0, None, None) and scopes is None
    engine.dispose()
