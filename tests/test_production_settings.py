"""The database pool from the environment (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW) and
psycopg's prepared statements turned off for PgBouncer's transaction pooling
(DATABASE_PREPARED_STATEMENTS=false): the engine the tool builds, and, on PostgreSQL, queries
that still run."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from lti_tool import create_app
from lti_tool.config import engine_options, load_config
from lti_tool.extensions import db
from tests.conftest import tool_overrides


def test_postgresql_pool_sizes_and_prepared_statements_come_from_the_environment():
    config = load_config({"DATABASE_URL": "postgresql://db.example/lti", "DATABASE_POOL_SIZE": "3",
                          "DATABASE_MAX_OVERFLOW": "0", "DATABASE_PREPARED_STATEMENTS": "false"})
    assert config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True, "pool_size": 3, "max_overflow": 0, "connect_args": {"prepare_threshold": None}}


def test_sqlite_keeps_sqlalchemys_own_pool():
    assert engine_options(load_config({"DATABASE_URL": "sqlite:///:memory:"})) == {"pool_pre_ping": True}


def test_the_pool_settings_reach_the_engine_and_queries_run(migrated, database_url, keys_dir, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    config = tmp_path / "tool_config.json"
    config.write_text("{}")
    app = create_app(tool_overrides(database_url, keys_dir, config, DATABASE_POOL_SIZE="2",
                                    DATABASE_PREPARED_STATEMENTS="false"))
    with app.app_context():
        assert db.engine.pool.size() == 2
        for _ in range(8):  # psycopg would prepare from the 5th run on
            assert db.session.execute(text("SELECT count(*) FROM platforms")).scalar() >= 0
        db.session.remove()
        db.engine.dispose()
