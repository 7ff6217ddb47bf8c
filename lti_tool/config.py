"""Configuration from the environment (CONTRACT.md's table), with the embedded defaults.

`Config.from_environment()` is read once by the application factory; tests pass a dict of
overrides instead. Paths are resolved against the project root so the tool behaves the same
whatever directory it is started from.
"""
from __future__ import annotations

import math
import os
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

DEFAULTS = {
    "DATABASE_URL": f"sqlite:///{INSTANCE_DIR / 'lti_tool.db'}",
    "TOOL_BASE_URL": "http://127.0.0.1:5000",
    "TOOL_CONFIG": str(PROJECT_ROOT / "tool_config.json"),
    "KEYS_DIR": str(PROJECT_ROOT / "keys"),
    "VIDEO_PROVIDER": "bbb",
    "BBB_SERVER_URL": "",
    "BBB_SHARED_SECRET": "",
    "BBB_CHECKSUM_ALGORITHM": "sha256",
    "LIVEKIT_URL": "",
    "LIVEKIT_API_KEY": "",
    "LIVEKIT_API_SECRET": "",
    # Optional, not in the contract: the file path LiveKit Egress records a room to (its
    # placeholders, e.g. recordings/{room_name}-{time}.mp4); empty = no recording offered.
    "LIVEKIT_RECORDING_FILEPATH": "",
    "RETRY_BASE_SECONDS": "2",
}

# Settings that are not in the contract but that operators may want to tune.
TUNABLES = {
    # How often, at most, the tool asks the video server whether a room's meeting runs.
    "ROOM_STATE_CHECK_SECONDS": "5",
    # Seconds of clock skew allowed on id_token exp/iat (Moodle issues 60-second tokens).
    "JWT_LEEWAY_SECONDS": "10",
    # Lifetime of a login's state and nonce between /lti/login and /lti/launch.
    "LOGIN_STATE_SECONDS": "600",
    # How long the room ticket in a page's forms stays valid (it never appears in a URL).
    "ROOM_TICKET_SECONDS": str(12 * 3600),
    # How long a page ticket in a URL stays valid (opening a room page; reloads within it).
    "PAGE_TICKET_SECONDS": "600",
    # Timeout of one call to a video server, in seconds.
    "PROVIDER_TIMEOUT_SECONDS": "10",
    # How often a waiting page reloads itself when script is off (with script it polls).
    "WAITING_REFRESH_SECONDS": "15",
    # How long a worker holds a claimed delivery before another may take it over.
    "DELIVERY_LEASE_SECONDS": "120",
    # How often the worker compares running meetings' participants with the intervals.
    "ATTENDANCE_POLL_SECONDS": "60",
    # How long the platform's JWKS is cached before it is fetched again.
    "JWKS_CACHE_SECONDS": "3600",
    # Origins allowed to frame the tool besides the registered platforms' (space-separated CSP
    # sources, e.g. "https://*.instructure.com" for Canvas, whose pages are on a school's domain).
    "FRAME_ANCESTORS": "",
    # The whole of one fetch of a platform's JWKS (connect, headers, body), however slowly the
    # bytes come; a launch waits at most this long for its platform's keys.
    "JWKS_FETCH_SECONDS": "5",
    # Largest request body the tool reads (413 above it): forms, launches, logins.
    "MAX_REQUEST_BYTES": str(256 * 1024),
    # Largest body a provider webhook may send (an analytics callback of a big class).
    "MAX_WEBHOOK_BYTES": str(4 * 1024 * 1024),
    # Hours the events of meetings the tool does not know (other applications' meetings on the
    # same BBB server, people's names included) are kept before the worker deletes them.
    "UNKNOWN_EVENT_RETENTION_HOURS": "24",
    # Accept bbb-webhooks 3.0–3.3 deliveries, whose checksum does not cover the body: anyone who
    # saw one delivery URL can forge attendance with it. Only for servers that cannot run
    # bbb-webhooks 3.4+ (see docs/security.md).
    "BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM": "false",
}

# Tunables that are switches, and those that are text, rather than numbers.
FLAGS = ("BBB_WEBHOOKS_ACCEPT_LEGACY_CHECKSUM",)
TEXT_TUNABLES = ("FRAME_ANCESTORS",)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once into instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        # O_EXCL: two workers starting together must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        except FileExistsError:
            pass
    return path.read_text().strip()


def _normalise_database_url(url: str) -> str:
    # Heroku-style URLs and a bare postgresql:// should use psycopg 3, the driver we install.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is relative to the project, not the working directory.
        relative = url[len("sqlite:///"):]
        if relative and relative != ":memory:":
            url = f"sqlite:///{PROJECT_ROOT / relative}"
    return url


NUMBERS = ("RETRY_BASE_SECONDS", *(name for name in TUNABLES if name not in FLAGS + TEXT_TUNABLES))


def _number(value: str) -> float | str:
    """A number of seconds; an unusable value is kept as given for validate_config to report."""
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) and number >= 0 else value


def _flag(value: str) -> bool | str:
    """A switch; an unusable value is kept as given for validate_config to report."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    return False if word in _FALSE else value


def load_config(overrides: dict | None = None) -> dict:
    """Return the Flask config mapping: defaults < environment (.env included) < overrides."""
    try:
        from dotenv import load_dotenv

        load_dotenv(PROJECT_ROOT / ".env", override=False)
    except ImportError:  # pragma: no cover - python-dotenv is a declared dependency
        pass
    overrides = dict(overrides or {})
    values = {}
    for name, default in {**DEFAULTS, **TUNABLES}.items():
        values[name] = str(overrides.pop(name, os.environ.get(name, default)))
    values["DATABASE_URL"] = _normalise_database_url(values["DATABASE_URL"])
    values["TOOL_BASE_URL"] = values["TOOL_BASE_URL"].rstrip("/")
    values["VIDEO_PROVIDER"] = values["VIDEO_PROVIDER"].strip().lower()
    values["BBB_CHECKSUM_ALGORITHM"] = values["BBB_CHECKSUM_ALGORITHM"].strip().lower()
    for name in ("TOOL_CONFIG", "KEYS_DIR"):
        values[name] = str(PROJECT_ROOT / values[name])  # an absolute path stays as it is
    for name in NUMBERS:
        values[name] = _number(values[name])
    for name in FLAGS:
        values[name] = _flag(values[name])
    config = {
        **values,
        "SECRET_KEY": overrides.pop("SECRET_KEY", None) or _secret_key(),
        "SQLALCHEMY_DATABASE_URI": values["DATABASE_URL"],
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # The tool is framed by the LMS: its pages must be embeddable (see lti_tool/web.py).
        "SESSION_COOKIE_SAMESITE": "None" if values["TOOL_BASE_URL"].startswith("https") else "Lax",
        "SESSION_COOKIE_SECURE": values["TOOL_BASE_URL"].startswith("https"),
        "AUTO_UPGRADE_DATABASE": values["DATABASE_URL"].startswith("sqlite"),
    }
    config.update(overrides)
    return config


def validate_config(config: dict) -> list[str]:
    """Problems an operator must fix; empty when the configuration is usable."""
    problems = []
    if config["VIDEO_PROVIDER"] not in ("bbb", "livekit"):
        problems.append(f"VIDEO_PROVIDER must be 'bbb' or 'livekit', not {config['VIDEO_PROVIDER']!r}")
    if config["BBB_CHECKSUM_ALGORITHM"] not in ("sha1", "sha256", "sha384", "sha512"):
        problems.append(
            "BBB_CHECKSUM_ALGORITHM must be sha1, sha256, sha384 or sha512, "
            f"not {config['BBB_CHECKSUM_ALGORITHM']!r}"
        )
    for name in NUMBERS:
        if not isinstance(config[name], (int, float)):
            problems.append(f"{name} must be a number of seconds (0 or more), not {config[name]!r}")
    for name in FLAGS:
        if not isinstance(config[name], bool):
            problems.append(f"{name} must be true or false, not {config[name]!r}")
    if config.get("LIVEKIT_URL"):
        from .providers.livekit.provider import http_url

        try:
            http_url(config["LIVEKIT_URL"])
        except ValueError as exc:
            problems.append(str(exc))
    return problems
