"""The live-class LTI 1.3 tool: `create_app()` builds the Flask application.

    flask --app wsgi run          # or gunicorn wsgi:app

Extensions and services attach themselves here, in one place: database (SQLite tuned for
concurrent load: lti_tool/sqlite.py) and migrations, the
tool's keys, the platform registrations, the platforms' key cache, the video providers, the
blueprints, the error pages and the command line.
"""
from __future__ import annotations

import logging

from flask import Flask

from . import migrating, providers, sqlite
from .config import PROJECT_ROOT, load_config, validate_config
from .extensions import db
from .lti.keys import KeyRing
from .lti.platform_keys import PlatformKeyCache
from .lti.registrations import RegistrationStore, load_tool_config

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class ConfigurationError(RuntimeError):
    """The environment cannot run the tool; the message tells the operator what to fix."""


def create_app(overrides: dict | None = None) -> Flask:
    config = load_config(overrides)
    problems = validate_config(config)
    if problems:
        raise ConfigurationError("; ".join(problems))
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(config)
    _configure_logging(app)
    db.init_app(app)
    with app.app_context():
        sqlite.configure(db.engine)  # WAL, busy timeout, write lock up front; PostgreSQL untouched
    migrating.init_app(app, db, directory=str(MIGRATIONS_DIR))  # Flask-Migrate at its first use
    _attach_services(app)
    _register_blueprints(app)
    _trust_proxies(app)  # outermost: static files and the views see the client's own address
    if (
        app.config["AUTO_UPGRADE_DATABASE"]
        and not app.config.get("TESTING")
        and (MIGRATIONS_DIR / "env.py").exists()
    ):
        upgrade_database(app)
    return app


def _configure_logging(app: Flask) -> None:
    from .request_log import JsonFormatter

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config["LOG_FORMAT"] == "json":
        # Only the plain stream handlers (ours, or an embedding server's): a test harness's own
        # capturing handlers are subclasses and keep their format.
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setFormatter(JsonFormatter())
    logging.getLogger("lti_tool").setLevel(logging.INFO)


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, the client's address, scheme and host are the
    ones the proxies forwarded (X-Forwarded-For/-Proto/-Host/-Port); with none (the default),
    such headers are ignored: anyone could send them."""
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)


def _attach_services(app: Flask) -> None:
    registrations = load_tool_config(app.config["TOOL_CONFIG"])
    extra_key_files = [
        path for reg in registrations for path in (reg.private_key_file, reg.public_key_file) if path
    ]
    key_ring = KeyRing(app.config["KEYS_DIR"], extra_key_files)
    key_ring.ensure_keys()
    app.extensions["key_ring"] = key_ring
    app.extensions["registrations"] = RegistrationStore(registrations, key_ring)
    app.extensions["platform_keys"] = PlatformKeyCache(
        ttl_seconds=app.config["JWKS_CACHE_SECONDS"], deadline_seconds=app.config["JWKS_FETCH_SECONDS"]
    )
    providers.attach(app)  # each provider package's provider, routes and worker tasks
    from .lti.platform_services import PlatformServices

    app.extensions["platform_services"] = PlatformServices(app.extensions["registrations"], key_ring)


def _register_blueprints(app: Flask) -> None:
    from . import admin, calendars, cli, errors, recordings, reminders, request_log, rooms, static_files, web
    from .health import bp as health_bp
    from .lti.routes import bp as lti_bp

    app.register_blueprint(lti_bp)
    rooms.register(app)
    admin.register(app)
    calendars.register(app)
    reminders.register(app)
    recordings.register(app)
    app.register_blueprint(health_bp)
    request_log.init_app(app)  # first: its clock starts before, and its line is written after, every other hook
    web.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    static_files.init_app(app)  # WhiteNoise in front of the app for /static/


def upgrade_database(app: Flask) -> None:
    """Bring the schema up to date (the embedded SQLite default does this on start)."""
    from flask_migrate import upgrade

    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        (PROJECT_ROOT / "instance").mkdir(exist_ok=True)
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
