"""Configuration from the environment (CONTRACT.md's table), with the embedded defaults.

`load_config()` is read once by the application factory; tests pass a dict of overrides
instead. The core's settings are listed here; each video provider package lists its own
(`BBB_…`, `LIVEKIT_…`: providers/<name>/__init__.py), and they are read the same way. Paths
are resolved against the project root so the tool behaves the same whatever directory it is
started from.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from .providers import load_packages
from .reminders.smtp import mail_problems
from .settings import FLAG, NUMBER, Setting

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
BUILT_IN_PROVIDERS = "lti_tool.providers.bbb lti_tool.providers.livekit"

# The contract's settings (CONTRACT.md), the providers' own aside.
CONTRACT = (
    Setting("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'lti_tool.db'}"),
    Setting("TOOL_BASE_URL", "http://127.0.0.1:5000"),
    Setting("TOOL_CONFIG", str(PROJECT_ROOT / "tool_config.json")),
    Setting("KEYS_DIR", str(PROJECT_ROOT / "keys")),
    Setting("VIDEO_PROVIDER", "bbb", lower=True),
    Setting("RETRY_BASE_SECONDS", "2", NUMBER),
)

# Settings that are not in the contract but that operators may want to tune.
TUNABLES = (
    Setting("ROOM_STATE_CHECK_SECONDS", "5", NUMBER,
            "How often, at most, the tool asks the video server whether a room's meeting runs."),
    Setting("ROOM_SHOWN_SECONDS", "1", NUMBER,
            "How long each process answers a status poll from a page that already shows the room's "
            "current state without the database (never longer than ROOM_STATE_CHECK_SECONDS): how late "
            "another process's pages may learn of a change."),
    Setting("ROOM_POLLS_PER_SECOND", "100", NUMBER,
            "How many status polls per second the pages of one room may send together: a big class's pages "
            "poll less often than every 4-7 s (2,000 students: every 14.5-25.4 s, so that all have joined "
            "within 30 s of the start); up to ~550 students, nothing changes."),
    Setting("RECORDINGS_CHECK_SECONDS", "60", NUMBER,
            "How often, at most, the tool asks the video server for a room's recordings (docs/recordings.md)."),
    Setting("RECORDINGS_PAGE_REFRESH_SECONDS", "30", NUMBER,
            "How often a room page looks for new recordings while a class ran recently (it asks the tool)."),
    Setting("RECORDING_RETENTION_DAYS", "0", NUMBER,
            "Recordings older than this many days are deleted by the worker; 0 keeps them. A platform may "
            "set its own (`platform set`)."),
    Setting("JWT_LEEWAY_SECONDS", "10", NUMBER,
            "Seconds of clock skew allowed on id_token exp/iat (Moodle issues 60-second tokens)."),
    Setting("LOGIN_STATE_SECONDS", "600", NUMBER,
            "Lifetime of a login's state and nonce between /lti/login and /lti/launch."),
    Setting("ROOM_TICKET_SECONDS", str(12 * 3600), NUMBER,
            "How long the room ticket in a page's forms stays valid (it never appears in a URL)."),
    Setting("PAGE_TICKET_SECONDS", "600", NUMBER,
            "How long a page ticket in a URL stays valid (opening a room page; reloads within it)."),
    Setting("DEEP_LINK_FORM_SECONDS", "3600", NUMBER,
            "How long a teacher's deep-linking set-up form may be answered (it is spent by its answer)."),
    Setting("PROVIDER_TIMEOUT_SECONDS", "10", NUMBER, "Timeout of one call to a video server."),
    Setting("WAITING_REFRESH_SECONDS", "15", NUMBER,
            "How often a waiting page reloads itself when script is off (with script it polls)."),
    Setting("DELIVERY_LEASE_SECONDS", "120", NUMBER,
            "How long a worker holds a claimed delivery before another may take it over."),
    Setting("DELIVERY_BATCH_SIZE", "50", NUMBER,
            "How many due score deliveries a worker claims at once (one statement, one lease)."),
    Setting("DELIVERY_THREADS", "4", NUMBER,
            "Score deliveries a worker process sends at once (threads; 1: one after the other)."),
    Setting("ATTENDANCE_POLL_SECONDS", "60", NUMBER,
            "How often the worker compares running meetings' participants with the intervals."),
    Setting("JWKS_CACHE_SECONDS", "3600", NUMBER,
            "How long the platform's JWKS is cached before it is fetched again."),
    Setting("JWKS_FETCH_SECONDS", "5", NUMBER,
            "The whole of one fetch of a platform's JWKS (connect, headers, body), however slowly "
            "the bytes come; a launch waits at most this long for its platform's keys."),
    Setting("REGISTRATION_FETCH_SECONDS", "10", NUMBER,
            "The whole of one request to a platform during a dynamic registration (its OpenID "
            "configuration, then the registration itself)."),
    Setting("REGISTRATION_ORIGINS", "",
            help="Origins of the platforms that may register the tool dynamically (space-separated, e.g. "
                 "https://moodle.example.edu); empty: any platform, as LTI Dynamic Registration intends."),
    Setting("FRAME_ANCESTORS", "",
            help="Origins allowed to frame the tool besides the registered platforms' (space-separated "
                 "CSP sources, e.g. https://*.instructure.com for Canvas, whose pages are on a school's domain)."),
    Setting("MAX_REQUEST_BYTES", str(256 * 1024), NUMBER,
            "Largest request body the tool reads (413 above it): forms, launches, logins."),
    Setting("MAX_WEBHOOK_BYTES", str(4 * 1024 * 1024), NUMBER,
            "Largest body a provider webhook may send (an analytics callback of a big class)."),
    Setting("UNKNOWN_EVENT_RETENTION_HOURS", "24", NUMBER,
            "Hours the events of meetings the tool does not know (other applications' meetings on "
            "the same video server, people's names included) are kept before the worker deletes them."),
    Setting("ADMIN_TOKEN", "",
            help="The operator's token for the administration pages (/admin sign-in form, or "
                 "`Authorization: Bearer` on /admin/status); at least 32 characters. Unset: only "
                 "the platforms' administrators get in, through a launch."),
    Setting("ADMIN_REFRESH_SECONDS", "60", NUMBER,
            "How often an open administration page brings its server health, failures and backlog up to date."),
    Setting("SMTP_URL", "",
            help="The mail server reminders are sent through (docs/reminders.md): smtp://[user:password@]host[:port] "
                 "(plain, no TLS; credentials only to a loopback host), smtp+starttls://… (STARTTLS required, "
                 "port 587), smtps://… (TLS from the first byte, port 465); user and password percent-encoded. "
                 "Empty: no e-mail at all, nothing queued."),
    Setting("MAIL_FROM", "",
            help="The From of reminders, e.g. `Live class <noreply@school.example>`; empty: "
                 "`Live class <noreply@HOST>` with the host of TOOL_BASE_URL."),
    Setting("REMINDER_MINUTES_BEFORE", "30", NUMBER,
            "How long before a scheduled class its \"starts soon\" e-mail goes out (0: none)."),
    Setting("PROVIDER_PACKAGES", BUILT_IN_PROVIDERS,
            help="The video provider packages the tool loads (import paths, space-separated)."),
)

# Production: logs, metrics, the proxy in front, the database pool (docs/deployment.md).
PRODUCTION = (
    Setting("LOG_FORMAT", "text", lower=True,
            help="`text` (one readable line per record) or `json` (one JSON object per line, for a log "
                 "collector); each request writes one line with its LTI context (lti_tool/request_log.py)."),
    Setting("TRUSTED_PROXIES", "0", NUMBER,
            "How many reverse proxies (nginx, a load balancer) stand in front of the tool: the client's "
            "address and scheme are read from that many X-Forwarded-For/-Proto/-Host entries (werkzeug "
            "ProxyFix). 0: none trusted, the socket's address is the client's."),
    Setting("METRICS_TOKEN", "",
            help="A token that opens /metrics from anywhere (`Authorization: Bearer …`), at least 32 characters."),
    Setting("METRICS_ALLOW", "127.0.0.1/32 ::1/128",
            help="Addresses that may read /metrics without the token (CIDRs, space-separated); empty: none. "
                 "Everyone else gets 404."),
    Setting("DATABASE_POOL_SIZE", "5", NUMBER,
            "Connections each process keeps open to PostgreSQL (SQLAlchemy pool_size)."),
    Setting("DATABASE_MAX_OVERFLOW", "10", NUMBER,
            "Connections a process may open beyond the pool at a peak, closed afterwards (max_overflow)."),
    Setting("DATABASE_PREPARED_STATEMENTS", "true", FLAG,
            "Whether psycopg prepares statements it repeats; `false` behind PgBouncer in transaction "
            "pooling before PgBouncer 1.21 (prepare_threshold=None)."),
)

CORE_SETTINGS = CONTRACT + TUNABLES + PRODUCTION
ADMIN_TOKEN_MIN_LENGTH = 32
LOG_FORMATS = ("text", "json")


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


def engine_options(values: dict) -> dict:
    """SQLAlchemy's engine options: a checked pool; PostgreSQL's sized from the environment."""
    options = {"pool_pre_ping": True}
    if not values["DATABASE_URL"].startswith("postgresql"):
        return options  # SQLite: one file, the pool is SQLAlchemy's own choice
    for option, name in (("pool_size", "DATABASE_POOL_SIZE"), ("max_overflow", "DATABASE_MAX_OVERFLOW")):
        if isinstance(values[name], float):  # a wrong value is reported by validate_config
            options[option] = int(values[name])
    if values["DATABASE_PREPARED_STATEMENTS"] is False:
        # PgBouncer's transaction pooling hands each transaction another server connection: a
        # statement prepared on one is unknown on the next (psycopg 3 prepares after 5 uses).
        options["connect_args"] = {"prepare_threshold": None}
    return options


def production_problems(config: dict) -> list[str]:
    """The production settings' own rules (their kinds are checked with every setting)."""
    problems = []
    if config["LOG_FORMAT"] not in LOG_FORMATS:
        problems.append(f"LOG_FORMAT must be text or json, not {config['LOG_FORMAT']!r}")
    if 0 < len(config.get("METRICS_TOKEN") or "") < ADMIN_TOKEN_MIN_LENGTH:
        problems.append(f"METRICS_TOKEN must be at least {ADMIN_TOKEN_MIN_LENGTH} characters long")
    for cidr in str(config["METRICS_ALLOW"]).split():
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"METRICS_ALLOW must list addresses or CIDRs (e.g. 10.0.0.0/8), not {cidr!r}")
    proxies = config["TRUSTED_PROXIES"]
    if isinstance(proxies, float) and not proxies.is_integer():
        problems.append(f"TRUSTED_PROXIES must be a whole number, not {proxies}")
    return problems


def default_mail_from(tool_base_url: str) -> str:
    host = urlsplit(tool_base_url).hostname or "localhost"
    return f"Live class <noreply@{host}>"


def all_settings(provider_packages: str | None = None) -> tuple[Setting, ...]:
    """The core's settings and those of the provider packages (the built-in ones by default)."""
    packages, _ = load_packages(provider_packages or BUILT_IN_PROVIDERS)
    return CORE_SETTINGS + tuple(setting for package in packages for setting in package.settings)


def _read(overrides: dict, settings) -> dict:
    return {s.name: s.read(overrides.pop(s.name, os.environ.get(s.name, s.default))) for s in settings}


def load_config(overrides: dict | None = None) -> dict:
    """Return the Flask config mapping: defaults < environment (.env included) < overrides."""
    try:
        from dotenv import load_dotenv

        load_dotenv(PROJECT_ROOT / ".env", override=False)
    except ImportError:  # pragma: no cover - python-dotenv is a declared dependency
        pass
    overrides = dict(overrides or {})
    values = _read(overrides, CORE_SETTINGS)
    packages, _ = load_packages(values["PROVIDER_PACKAGES"])
    values.update(_read(overrides, [s for package in packages for s in package.settings]))
    values["DATABASE_URL"] = _normalise_database_url(values["DATABASE_URL"])
    values["TOOL_BASE_URL"] = values["TOOL_BASE_URL"].rstrip("/")
    values["MAIL_FROM"] = values["MAIL_FROM"] or default_mail_from(values["TOOL_BASE_URL"])
    for name in ("TOOL_CONFIG", "KEYS_DIR"):
        values[name] = str(PROJECT_ROOT / values[name])  # an absolute path stays as it is
    config = {
        **values,
        "SECRET_KEY": overrides.pop("SECRET_KEY", None) or _secret_key(),
        "SQLALCHEMY_DATABASE_URI": values["DATABASE_URL"],
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(values),
        # The tool is framed by the LMS: its pages must be embeddable (see lti_tool/web.py).
        "SESSION_COOKIE_SAMESITE": "None" if values["TOOL_BASE_URL"].startswith("https") else "Lax",
        "SESSION_COOKIE_SECURE": values["TOOL_BASE_URL"].startswith("https"),
        "AUTO_UPGRADE_DATABASE": values["DATABASE_URL"].startswith("sqlite"),
    }
    config.update(overrides)
    return config


def validate_config(config: dict) -> list[str]:
    """Problems an operator must fix; empty when the configuration is usable."""
    packages, problems = load_packages(config["PROVIDER_PACKAGES"])
    settings = CORE_SETTINGS + tuple(s for package in packages for s in package.settings)
    problems += [p for p in (s.problem(config[s.name]) for s in settings) if p]
    names = [package.name for package in packages]
    if config["VIDEO_PROVIDER"] not in names:
        problems.append(f"VIDEO_PROVIDER must be one of {', '.join(names)}, not {config['VIDEO_PROVIDER']!r}")
    for package in packages:
        problems += package.validate(config)
    if 0 < len(config.get("ADMIN_TOKEN") or "") < ADMIN_TOKEN_MIN_LENGTH:
        # A short token could be guessed through the sign-in form; the value is never repeated.
        problems.append(f"ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_LENGTH} characters long "
                        "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    problems += mail_problems(config)
    problems += production_problems(config)
    return problems

