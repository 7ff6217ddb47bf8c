"""Video settings per platform registration: one tool serving several institutions, each with its
own video service, server and secret, falling back to the environment for what it does not set.

What may be set: `VIDEO_PROVIDER`, `RECORDING_RETENTION_DAYS` (docs/recordings.md) and every
setting of the loaded provider packages (`BBB_…`,
`LIVEKIT_…`). A file registration (TOOL_CONFIG) sets them in its entry's `"settings"` object; a
database registration keeps them in `platforms.video_settings`, sealed (Fernet, with a key
derived from SECRET_KEY: a database dump alone does not give the video servers' secrets away)
and changed with `flask --app wsgi platform set|unset`.

Read on many requests (every room's provider depends on its platform), so each process keeps
them for `CACHE_SECONDS`; a change made in this process is seen at once, one made elsewhere
within that time.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import select

from ..config import all_settings
from ..extensions import db
from ..logsafe import quoted
from ..models import Platform
from ..providers import load_packages

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
_lock = threading.Lock()


class PlatformSettingsError(ValueError):
    """A change the tool refuses; the message says why (for the command line)."""


def settable_names() -> set[str]:
    """VIDEO_PROVIDER, RECORDING_RETENTION_DAYS and the settings of the app's provider packages."""
    packages, _ = load_packages(current_app.config["PROVIDER_PACKAGES"])
    own = {setting.name for package in packages for setting in package.settings}
    return {"VIDEO_PROVIDER", "RECORDING_RETENTION_DAYS"} | own


def shown_value(name: str, value: str) -> str:
    """A setting as the command line and the administration pages show it: secrets never."""
    return "(set)" if "SECRET" in name or "TOKEN" in name else value


# --- sealing ---------------------------------------------------------------------------------------
def _fernet() -> Fernet:
    digest = hashlib.sha256(b"lti-tool platform video settings:" + current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def seal(settings: dict[str, str]) -> str | None:
    return _fernet().encrypt(json.dumps(settings, sort_keys=True).encode()).decode() if settings else None


def unseal(sealed: str | None) -> dict[str, str]:
    if not sealed:
        return {}
    try:
        return json.loads(_fernet().decrypt(sealed.encode()))
    except (InvalidToken, ValueError):
        # SECRET_KEY changed since they were set: the platform falls back to the environment.
        log.warning("a platform's video settings cannot be read with this SECRET_KEY: set them again")
        return {}


# --- reading ---------------------------------------------------------------------------------------
def settings_for(issuer: str, client_id: str) -> dict[str, str]:
    """The video settings this registration sets (empty: the environment's for everything)."""
    return dict(_all_settings().get((issuer, client_id), {}))


def every_platform_settings() -> list[dict[str, str]]:
    """The settings of every registration that sets any (to know every server the tool uses)."""
    return [dict(settings) for settings in _all_settings().values() if settings]


def _all_settings() -> dict[tuple[str, str], dict[str, str]]:
    cache = current_app.extensions.setdefault("platform_settings_cache", {})
    with _lock:
        if cache and time.monotonic() - cache["at"] < CACHE_SECONDS:
            return cache["settings"]
    loaded = {(r.issuer, r.client_id): dict(r.settings) for r in current_app.extensions["registrations"].all()}
    for row in db.session.scalars(select(Platform).where(Platform.video_settings.is_not(None))):
        key = (row.issuer, row.client_id)
        if key in loaded and not loaded[key]:  # a file registration with the same key wins
            loaded[key] = unseal(row.video_settings)
    with _lock:
        cache.update(at=time.monotonic(), settings=loaded)
    return loaded


def forget_cached() -> None:
    current_app.extensions.get("platform_settings_cache", {}).clear()


# --- changing --------------------------------------------------------------------------------------
def change_settings(issuer: str, client_id: str, values: dict[str, str], removed: list[str]) -> dict[str, str]:
    """Set `values` and remove `removed` for a database registration; returns the new settings.
    Refuses unknown names, values the tool could not run with, and file registrations."""
    row = db.session.scalar(select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id))
    if row is None:
        raise PlatformSettingsError(_not_in_database(issuer, client_id))
    unknown = sorted((set(values) | set(removed)) - settable_names())
    if unknown:
        raise PlatformSettingsError(f"{', '.join(unknown)}: not a video setting "
                                    f"(these are: {', '.join(sorted(settable_names()))})")
    settings = {**unseal(row.video_settings), **values}
    for name in removed:
        settings.pop(name, None)
    problems = _problems({**current_app.config, **settings}, settings)
    if problems:
        raise PlatformSettingsError("; ".join(problems))
    row.video_settings = seal(settings)
    db.session.commit()
    forget_cached()
    log.info("video settings of %s / %s changed: %s", quoted(issuer), quoted(client_id), ", ".join(sorted(settings)))
    return settings


def _not_in_database(issuer: str, client_id: str) -> str:
    file_registration = any(r.issuer == issuer and r.client_id == client_id
                            for r in current_app.extensions["registrations"].file_registrations)
    if file_registration:
        return (f"{issuer} / {client_id} is registered in TOOL_CONFIG: put its video settings in that "
                'entry\'s "settings" object')
    return f"no registration for {issuer} / {client_id} in the database (see `platform list`)"


def _problems(merged: dict, settings: dict[str, str]) -> list[str]:
    """What the tool could not run with: the same checks as for the environment's settings."""
    from ..config import validate_config

    typed = {s.name: s.read(merged[s.name]) for s in all_settings(merged["PROVIDER_PACKAGES"]) if s.name in settings}
    return [p for p in validate_config({**merged, **typed}) if any(name in p for name in settings)]
