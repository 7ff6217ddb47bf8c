"""The version of a room's state that pages should show now, kept per process for a second, so
that a crowd of polling pages which already show it is answered `same` without the database
(rooms.routes.status; docs/room-states.md, "The top-of-the-hour crowd").

One entry per room and role (teacher or not): a new version of a role replaces the old one at
once, so an outdated page never gets `same`. Another process learns of a change when its entry
expires (`ROOM_SHOWN_SECONDS`, never longer than `ROOM_STATE_CHECK_SECONDS`: 0 keeps nothing),
and the process that starts or ends a class forgets the room's entries at once.
"""
from __future__ import annotations

import time

from flask import current_app

ROOMS_KEPT = 10_000


def _kept() -> dict:
    return current_app.extensions.setdefault("room_shown_versions", {})


def _lifetime() -> float:
    config = current_app.config
    return min(float(config["ROOM_SHOWN_SECONDS"]), float(config["ROOM_STATE_CHECK_SECONDS"]))


def remember(room_id: int, moderator: bool, version: str, facts: dict) -> None:
    """What a page of this role should show now, as this request worked it out."""
    lifetime = _lifetime()
    if lifetime <= 0:
        return
    kept = _kept()
    if len(kept) >= ROOMS_KEPT and room_id not in kept:
        kept.clear()  # bounded: the rooms polled now come back within a second
    kept.setdefault(room_id, {})[moderator] = (time.monotonic() + lifetime, version, facts)


def current_facts(room_id: int, shown: str | None) -> dict | None:
    """The facts of the version a page says it shows, when that is still what it should show;
    None when unknown here, expired or outdated (the caller then works it out)."""
    if not shown:
        return None
    now = time.monotonic()
    for expires, version, facts in _kept().get(room_id, {}).values():
        # The version names the role it was made for (rooms.routes.status hashes it in), and
        # the facts are the same for everyone of that role: nothing here is anyone's own.
        if version == shown and expires > now:
            return facts
    return None


def forget(room_id: int) -> None:
    """The class changed here (started, ended): this process works the state out again."""
    _kept().pop(room_id, None)
