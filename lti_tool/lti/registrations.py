"""Where the tool finds the LMS registrations: `TOOL_CONFIG` (pylti1p3's JSON) and the database.

`RegistrationStore` answers "which platform is this issuer and client id, and is this
deployment one of its own?" for the login and the launch. It implements pylti1p3's
`ToolConfAbstract`, so pylti1p3's services (deep linking, AGS, NRPS) can run on the same
registrations. A file registration and a database one for the same issuer and client id must
not both be live: the file one wins, and the CLI and dynamic registration refuse to add such a
duplicate.

Database registrations are written here too: `add_database_platform` (`platform add`),
`save_dynamic_registration` (LTI Dynamic Registration, dynamic_registration.py) and
`adopt_deployment` (the first launch of a registration the platform answered without a
deployment id). Turned-off registrations (`platform disable`) are never found; `disabled()`
tells a launch it was refused for that reason.

Logins and launches look registrations up in memory: the file's, and each process's copy of the
database's, read again at most every `DATABASE_CACHE_SECONDS` and at once after a change made
through this store (docs/security.md, "Registrations").
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from jwcrypto import jwk
from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.registration import Registration as PyltiRegistration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import Deployment, Platform

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("client_id", "auth_login_url", "auth_token_url", "key_set_url")


class RegistrationConfigError(ValueError):
    """TOOL_CONFIG cannot be used as it is; the message says what to fix."""


class RegistrationConflict(RegistrationConfigError):
    """A registration cannot be stored as it is: TOOL_CONFIG already has it, or its deployment
    id belongs to another client id of the same issuer (deployment ids are unique per issuer)."""


@dataclass(frozen=True)
class PlatformRegistration:
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    deployment_ids: frozenset[str] = field(default_factory=frozenset)
    source: str = "file"  # "file" or "database"
    default: bool = False
    auth_audience: str | None = None
    private_key_file: str | None = None
    public_key_file: str | None = None
    # Its own video settings from TOOL_CONFIG ("settings"), as (name, value) pairs; a database
    # registration's are sealed in the database (lti/platform_settings.py).
    video_settings: tuple[tuple[str, str], ...] = ()

    # A database registration without any deployment yet (a dynamic registration the platform
    # answered without a deployment id, as Canvas does): its first launch's deployment is adopted.
    adopts_deployment: bool = False
    active: bool = True  # False: turned off with `platform disable` (never returned by find)

    @property
    def settings(self) -> dict[str, str]:
        return dict(self.video_settings)

    def has_deployment(self, deployment_id: str | None) -> bool:
        return bool(deployment_id) and deployment_id in self.deployment_ids

    def accepts_deployment(self, deployment_id: str | None) -> bool:
        """A deployment this registration has, or will adopt at its first launch."""
        return self.has_deployment(deployment_id) or (self.adopts_deployment and bool(deployment_id))


def _entries_for_issuer(issuer: str, value) -> list[dict]:
    if isinstance(value, dict):  # pylti1p3's older one-client-per-issuer form
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise RegistrationConfigError(f"issuer {issuer!r}: expected a list of client entries")


def _resolve(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    candidate = Path(path)
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def parse_tool_config(data: dict, base_dir: Path) -> list[PlatformRegistration]:
    if not isinstance(data, dict):
        raise RegistrationConfigError("the top level must be an object: issuer → client entries")
    registrations = []
    for issuer, value in data.items():
        for entry in _entries_for_issuer(issuer, value):
            missing = [name for name in REQUIRED_FIELDS if not entry.get(name)]
            if missing:
                raise RegistrationConfigError(f"issuer {issuer!r}: missing {', '.join(missing)}")
            deployments = entry.get("deployment_ids") or []
            if not isinstance(deployments, list):
                raise RegistrationConfigError(f"issuer {issuer!r}: deployment_ids must be a list")
            settings = entry.get("settings") or {}
            if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
                raise RegistrationConfigError(f"issuer {issuer!r}: settings must be an object of strings")
            registrations.append(
                PlatformRegistration(
                    issuer=issuer,
                    client_id=str(entry["client_id"]),
                    auth_login_url=entry["auth_login_url"],
                    auth_token_url=entry["auth_token_url"],
                    key_set_url=entry["key_set_url"],
                    deployment_ids=frozenset(str(d) for d in deployments),
                    source="file",
                    default=bool(entry.get("default", False)),
                    auth_audience=entry.get("auth_audience"),
                    private_key_file=_resolve(entry.get("private_key_file"), base_dir),
                    public_key_file=_resolve(entry.get("public_key_file"), base_dir),
                    video_settings=tuple(sorted(settings.items())),
                )
            )
    return registrations


def load_tool_config(path: str | Path) -> list[PlatformRegistration]:
    """Registrations from the JSON file; a missing file means none (and a warning, in case the
    path was mistyped)."""
    path = Path(path)
    if not path.exists():
        log.warning("TOOL_CONFIG %s does not exist: no file registrations", path)
        return []
    try:
        data = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise RegistrationConfigError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return parse_tool_config(data, path.parent)
    except RegistrationConfigError as exc:
        raise RegistrationConfigError(f"{path}: {exc}") from exc


def _from_platform_row(row: Platform) -> PlatformRegistration:
    return PlatformRegistration(
        issuer=row.issuer,
        client_id=row.client_id,
        auth_login_url=row.auth_login_url,
        auth_token_url=row.auth_token_url,
        key_set_url=row.key_set_url,
        deployment_ids=frozenset(d.deployment_id for d in row.deployments if d.active),
        source="database",
        auth_audience=row.auth_audience,
        adopts_deployment=not row.deployments,
        active=row.active,
    )


_UNSEARCHABLE = re.compile(r"[\x00\ud800-\udfff]")


def _searchable(value) -> bool:
    """Whether a lookup key from a request can name a registration at all: a non-empty string
    without NUL or unpaired surrogates (no registration has them, and a database driver cannot
    send them: PostgreSQL refuses NUL, UTF-8 has no surrogates)."""
    return isinstance(value, str) and bool(value) and not _UNSEARCHABLE.search(value)


class RegistrationStore(ToolConfAbstract):
    """File registrations (kept in memory) and database ones (a copy per process, read again
    at most every `DATABASE_CACHE_SECONDS`, and at once after this process changes one)."""

    ORIGINS_CACHE_SECONDS = 30.0
    # How long a process may go on using its copy of the database registrations: a registration
    # disabled, deleted or changed by another process (the CLI, another worker) is seen within
    # this bound (docs/security.md). Every login and launch used to read them again.
    DATABASE_CACHE_SECONDS = 5.0

    def __init__(self, file_registrations: list[PlatformRegistration], key_ring=None):
        super().__init__()
        self.file_registrations = list(file_registrations)
        self.key_ring = key_ring
        self.issuers_relation_types = {}
        for reg in self.file_registrations:
            self.set_iss_has_many_clients(reg.issuer)
        self._origins: tuple[float, list[str]] | None = None
        self._origins_lock = threading.Lock()
        self.clock = time.monotonic  # tests move it forward instead of waiting
        self._database: tuple[float, tuple[PlatformRegistration, ...]] | None = None
        self._generation = 0  # bumped by forget_cached: a copy read meanwhile is not kept

    def platform_origins(self) -> list[str]:
        """The web origins of every live registration (issuer and login URL): where the LMS's
        pages are, so who may frame the tool. Cached briefly: every page asks."""
        with self._origins_lock:
            if self._origins is not None and time.monotonic() - self._origins[0] < self.ORIGINS_CACHE_SECONDS:
                return self._origins[1]
        origins = []
        for registration in self.all():
            for url in (registration.issuer, registration.auth_login_url):
                origin = web_origin(url)
                if origin and origin not in origins:
                    origins.append(origin)
        with self._origins_lock:
            self._origins = (time.monotonic(), origins)
        return origins

    def forget_cached(self) -> None:
        """A registration changed in this process: the next lookup reads them again."""
        with self._origins_lock:
            self._origins = None
            self._database = None
            self._generation += 1

    def _database_registrations(self, fresh: bool = False) -> tuple[PlatformRegistration, ...]:
        """Every database registration, turned-off ones included, from this process's copy (read
        again when `fresh`)."""
        now = self.clock()
        with self._origins_lock:
            if not fresh and self._database is not None and now - self._database[0] < self.DATABASE_CACHE_SECONDS:
                return self._database[1]
            generation = self._generation
        rows = db.session.scalars(select(Platform).options(joinedload(Platform.deployments)).order_by(Platform.id))
        loaded = tuple(_from_platform_row(row) for row in rows.unique())
        with self._origins_lock:
            if generation == self._generation:
                self._database = (now, loaded)
        return loaded

    # --- lookups used by the tool ------------------------------------------------------------
    def _file_matches(self, issuer: str, client_id: str | None) -> list[PlatformRegistration]:
        return [
            r
            for r in self.file_registrations
            if r.issuer == issuer and (client_id is None or r.client_id == client_id)
        ]

    def _database_matches(self, issuer: str, client_id: str | None, fresh: bool = False) -> list[PlatformRegistration]:
        file_clients = {r.client_id for r in self._file_matches(issuer, None)}
        return [
            r for r in self._database_registrations(fresh)
            # A database row shadowed by a file registration is not live.
            if r.issuer == issuer and r.active and (client_id is None or r.client_id == client_id)
            and r.client_id not in file_clients
        ]

    def find(self, issuer: str, client_id: str | None = None, fresh: bool = False) -> PlatformRegistration | None:
        """The registration for issuer (+ client id); without a client id, the issuer's only
        registration or the one marked default. `fresh`: as the database has it now (for the
        administration pages, which must close the moment a registration is disabled)."""
        if not _searchable(issuer) or (client_id is not None and not _searchable(client_id)):
            return None
        in_file = self._file_matches(issuer, client_id)
        if client_id is not None and in_file:
            return in_file[0]  # the file's wins: no need for the database ones
        matches = in_file + self._database_matches(issuer, client_id, fresh)
        if client_id is not None or len(matches) == 1:
            return matches[0] if matches else None
        defaults = [m for m in matches if m.default]
        return defaults[0] if defaults else None

    def find_first(self, issuer: str, client_ids: list[str]) -> PlatformRegistration | None:
        """The registration of the first of `client_ids` registered for issuer (an id_token's
        audiences, in order)."""
        wanted = [c for c in client_ids if _searchable(c)] if _searchable(issuer) else []
        if not wanted:
            return None
        in_file = {r.client_id: r for r in self._file_matches(issuer, None)}
        if wanted[0] in in_file:
            return in_file[wanted[0]]
        in_database = {r.client_id: r for r in self._database_matches(issuer, None)}
        return next((in_file.get(c) or in_database[c] for c in wanted if c in in_file or c in in_database), None)

    def all(self) -> list[PlatformRegistration]:
        rows = db.session.scalars(select(Platform).order_by(Platform.id)).all()
        file_pairs = {(r.issuer, r.client_id) for r in self.file_registrations}
        database = [
            _from_platform_row(row) for row in rows if (row.issuer, row.client_id) not in file_pairs
        ]
        return [*self.file_registrations, *database]

    def shadowed(self) -> list[Platform]:
        """Database rows hidden by a file registration with the same issuer and client id."""
        file_pairs = {(r.issuer, r.client_id) for r in self.file_registrations}
        rows = db.session.scalars(select(Platform)).all()
        return [row for row in rows if (row.issuer, row.client_id) in file_pairs]

    def in_file(self, issuer: str, client_id: str) -> PlatformRegistration | None:
        """The TOOL_CONFIG registration of issuer and client id, if the file has one."""
        return next(iter(self._file_matches(issuer, client_id)), None)

    @staticmethod
    def from_row(row: Platform) -> PlatformRegistration:
        return _from_platform_row(row)

    def disabled(self, issuer, client_ids: list) -> bool:
        """Whether one of these client ids of issuer is a database registration turned off with
        `platform disable` (asked only once a lookup failed, to say so on the refusal page)."""
        wanted = [c for c in client_ids if _searchable(c)] if _searchable(issuer) else []
        file_clients = {r.client_id for r in self._file_matches(issuer, None)} if wanted else set()
        wanted = [c for c in wanted if c not in file_clients]
        return bool(wanted) and any(
            r.issuer == issuer and r.client_id in wanted and not r.active for r in self._database_registrations()
        )

    def deployment_owners(self, issuer: str, deployment_id: str) -> set[str]:
        """The client ids of issuer (file and database) that have this deployment id."""
        owners = {r.client_id for r in self._file_matches(issuer, None) if deployment_id in r.deployment_ids}
        query = (
            select(Platform.client_id)
            .join(Deployment, Deployment.platform_id == Platform.id)
            .where(Platform.issuer == issuer, Deployment.deployment_id == deployment_id)
        )
        return owners | set(db.session.scalars(query))

    def signing_key_for(self, registration: PlatformRegistration):
        """The tool key that signs for this registration: its own pair, or the newest key."""
        if registration.private_key_file and self.key_ring is not None:
            key = self.key_ring.key_for_file(registration.private_key_file)
            if key is not None and key.private_pem:
                return key
        return self.key_ring.signing_key

    # --- pylti1p3's ToolConfAbstract ---------------------------------------------------------
    # Every issuer may have several client ids (database ones too): pylti1p3 must always look
    # registrations up with the client id, never by issuer alone.
    def check_iss_has_one_client(self, iss):
        return False

    def check_iss_has_many_clients(self, iss):
        return True

    def _pylti_registration(self, reg: PlatformRegistration | None) -> PyltiRegistration | None:
        if reg is None:
            return None
        result = (
            PyltiRegistration()
            .set_issuer(reg.issuer)
            .set_client_id(reg.client_id)
            .set_auth_login_url(reg.auth_login_url)
            .set_auth_token_url(reg.auth_token_url)
            .set_key_set_url(reg.key_set_url)
        )
        if reg.auth_audience:
            result.set_auth_audience(reg.auth_audience)
        if self.key_ring is not None:
            key = self.signing_key_for(reg)
            result.set_tool_private_key(key.private_pem.decode())
            # The public half gives pylti1p3 the kid to put in its client assertions' header.
            result.set_tool_public_key(jwk.JWK(**key.public_jwk).export_to_pem().decode())
        return result

    def find_registration_by_issuer(self, iss, *args, **kwargs):
        return self._pylti_registration(self.find(iss))

    def find_registration_by_params(self, iss, client_id, *args, **kwargs):
        return self._pylti_registration(self.find(iss, client_id))

    def find_deployment(self, iss, deployment_id):
        reg = self.find(iss)
        return PyltiDeployment().set_deployment_id(deployment_id) if reg and reg.has_deployment(deployment_id) else None

    def find_deployment_by_params(self, iss, deployment_id, client_id, *args, **kwargs):
        reg = self.find(iss, client_id)
        return PyltiDeployment().set_deployment_id(deployment_id) if reg and reg.has_deployment(deployment_id) else None


def web_origin(url: str) -> str | None:
    """`https://host[:port]` of an http(s) URL; None for anything else (an issuer need not be a
    URL, and only real origins may go into a Content-Security-Policy)."""
    if not isinstance(url, str) or any(c in url for c in " ;,'\"\n\r\t"):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2].lower()
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{host}"


def add_database_platform(
    store: RegistrationStore,
    *,
    issuer: str,
    client_id: str,
    deployment_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    auth_audience: str | None = None,
) -> tuple[Platform, bool]:
    """Register a platform (or add a deployment to an existing one). Returns (row, created)."""
    if store._file_matches(issuer, client_id):
        raise RegistrationConfigError(
            f"{issuer} / {client_id} is already registered in TOOL_CONFIG; "
            "edit that file instead (a file and a database registration must not both be live)"
        )
    row = db.session.scalar(
        select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id)
    )
    created = row is None
    if created:
        row = Platform(
            issuer=issuer,
            client_id=client_id,
            auth_login_url=auth_login_url,
            auth_token_url=auth_token_url,
            key_set_url=key_set_url,
            auth_audience=auth_audience,
        )
        db.session.add(row)
    else:
        row.auth_login_url, row.auth_token_url, row.key_set_url = (
            auth_login_url,
            auth_token_url,
            key_set_url,
        )
        row.auth_audience = auth_audience
        row.active = True
    existing = next((d for d in row.deployments if d.deployment_id == deployment_id), None)
    if existing is None:
        row.deployments.append(Deployment(deployment_id=deployment_id))
    else:
        existing.active = True  # adding a deactivated deployment again brings it back
    db.session.commit()
    store.forget_cached()
    return row, created


def _refuse_conflicts(store: RegistrationStore, issuer: str, client_id: str, deployment_id: str | None) -> None:
    if store._file_matches(issuer, client_id):
        raise RegistrationConflict(
            f"{issuer} / {client_id} is already registered in TOOL_CONFIG; "
            "edit that file instead (a file and a database registration must not both be live)"
        )
    others = store.deployment_owners(issuer, deployment_id) - {client_id} if deployment_id else set()
    if others:
        raise RegistrationConflict(
            f"deployment {deployment_id} of {issuer} already belongs to client id {sorted(others)[0]} "
            "(a deployment id names one tool of a platform)"
        )


def save_dynamic_registration(
    store: RegistrationStore,
    *,
    issuer: str,
    client_id: str,
    deployment_id: str | None,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    auth_audience: str | None,
) -> tuple[Platform, bool]:
    """Keep what a dynamic registration brought, in one transaction: a new registration, or the
    same issuer and client id updated (Moodle's "update the existing tool"). Returns (row,
    created). Unlike `platform add`, it never turns a disabled registration back on: the tool's
    administrator disabled it, a platform's request does not undo that."""
    _refuse_conflicts(store, issuer, client_id, deployment_id)
    try:
        row = db.session.scalar(select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id))
        created = row is None
        if created:
            row = Platform(issuer=issuer, client_id=client_id)
            db.session.add(row)
        row.auth_login_url, row.auth_token_url, row.key_set_url = auth_login_url, auth_token_url, key_set_url
        row.auth_audience = auth_audience
        if deployment_id and all(d.deployment_id != deployment_id for d in row.deployments):
            row.deployments.append(Deployment(deployment_id=deployment_id))
        db.session.commit()
    except IntegrityError as exc:  # the same registration stored by a concurrent request
        db.session.rollback()
        raise RegistrationConflict(f"{issuer} / {client_id} was being registered at the same moment; "
                                   "start the registration again") from exc
    except Exception:
        db.session.rollback()
        raise
    store.forget_cached()
    return row, created


def adopt_deployment(registration: PlatformRegistration, deployment_id: str) -> None:
    """Give a registration without deployments the deployment of its first launch, in the
    caller's transaction (the launch's: both are kept, or neither)."""
    row = db.session.scalar(
        select(Platform).where(Platform.issuer == registration.issuer, Platform.client_id == registration.client_id)
    )
    try:
        with db.session.begin_nested():
            db.session.add(Deployment(platform_id=row.id, deployment_id=deployment_id))
    except IntegrityError:
        pass  # a concurrent first launch with the same deployment added it already
