"""What the administration pages show, for one `AdminAccess`: the operator sees every platform,
a platform's administrator their own platform (its issuer) only.

- `registrations`: each registration (TOOL_CONFIG's and the database's, disabled ones too),
  its deployments, its video service and its own settings (secrets never shown), and how much
  it is used;
- `server_health`: every video server the registrations in view use, checked at once (one call
  each, no retries, in parallel; kept `HEALTH_CACHE_SECONDS` so a page that refreshes itself,
  or a monitor polling /admin/status, does not hammer the servers);
- `failed_deliveries`: grades the platform refused or never answered for, after every retry;
- `backlog`: what waits: grades to deliver, provider events not applied yet.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, update

from ..extensions import db
from ..lti.platform_settings import settings_for, shown_value
from ..models import (
    Course,
    Enrolment,
    Platform,
    ProviderEvent,
    ResourceLink,
    Room,
    ScoreDelivery,
    User,
    utcnow,
)
from ..providers import provider_for
from ..providers.base import ProviderHealth, VideoProvider
from .scope import AdminAccess

HEALTH_CACHE_SECONDS = 15.0
ENVIRONMENT = "the environment"
FAILURES_SHOWN = 20
_health_lock = threading.Lock()


# --- registrations -----------------------------------------------------------------------------------
@dataclass
class RegistrationSummary:
    issuer: str
    client_id: str
    source: str  # "file" (TOOL_CONFIG) or "database"
    active: bool
    deployments: list[str]
    video_provider: str
    own_settings: list[tuple[str, str]]  # (name, value as shown)
    courses: int = 0
    rooms: int = 0
    last_launch_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.issuer, self.client_id


def _in_view(access: AdminAccess, issuer: str) -> bool:
    return access.is_operator or issuer == access.issuer


def _summary(issuer: str, client_id: str, source: str, active: bool, deployments: list[str]) -> RegistrationSummary:
    own = settings_for(issuer, client_id)
    return RegistrationSummary(
        issuer, client_id, source, active, sorted(deployments),
        video_provider=own.get("VIDEO_PROVIDER") or current_app.config["VIDEO_PROVIDER"],
        own_settings=[(name, shown_value(name, own[name])) for name in sorted(own)],
    )


def registrations(access: AdminAccess) -> list[RegistrationSummary]:
    store = current_app.extensions["registrations"]
    found = [_summary(r.issuer, r.client_id, "file", True, list(r.deployment_ids))
             for r in store.file_registrations if _in_view(access, r.issuer)]
    in_file = {r.key for r in found} | {(r.issuer, r.client_id) for r in store.file_registrations}
    query = select(Platform).order_by(Platform.issuer, Platform.client_id)
    if not access.is_operator:
        query = query.where(Platform.issuer == access.issuer)
    for row in db.session.scalars(query):
        if (row.issuer, row.client_id) not in in_file:  # one shadowed by TOOL_CONFIG is not live
            deployments = [d.deployment_id + ("" if d.active else " (disabled)") for d in row.deployments]
            found.append(_summary(row.issuer, row.client_id, "database", row.active, deployments))
    _add_usage(found)
    return found


def _add_usage(found: list[RegistrationSummary]) -> None:
    """Courses, rooms and the latest launch of each registration: three grouped queries."""
    by_key = {r.key: r for r in found}
    issuers = sorted({r.issuer for r in found})
    if not issuers:
        return
    by_registration = (Course.issuer, Course.client_id)
    links = select(*by_registration).select_from(Course).join(ResourceLink, ResourceLink.course_id == Course.id)
    queries = {
        "courses": select(*by_registration, func.count(Course.id)),
        "rooms": links.add_columns(func.count(Room.id)).join(Room, Room.resource_link_id == ResourceLink.id),
        "last_launch_at": links.add_columns(func.max(Enrolment.last_launch_at))
        .join(Enrolment, Enrolment.resource_link_id == ResourceLink.id),
    }
    for attribute, query in queries.items():
        for issuer, client_id, value in db.session.execute(
            query.where(Course.issuer.in_(issuers)).group_by(*by_registration)
        ):
            if (issuer, client_id) in by_key:
                setattr(by_key[(issuer, client_id)], attribute, value)


# --- video servers -------------------------------------------------------------------------------------
@dataclass
class ServerHealth:
    provider: str  # its name: "bbb", "livekit"
    settings_of: str  # "the environment" or the registrations whose own settings it is
    health: ProviderHealth
    used_by: list[str] = field(default_factory=list)  # registrations that use it for new rooms


def _servers_in_view(access: AdminAccess, found: list[RegistrationSummary]) -> dict[int, tuple]:
    """Every provider instance the registrations in view use (the environment's, or one built
    with a registration's own settings), once each: id -> (provider, whose settings, used by)."""
    names = list(current_app.extensions["providers"])
    servers: dict[int, tuple[VideoProvider, str, list[str]]] = {}
    if access.is_operator or not found:
        for name in names:
            servers[id(provider_for(name))] = (provider_for(name), ENVIRONMENT, [])
    for registration in found:
        own = settings_for(registration.issuer, registration.client_id)
        label = f"{registration.issuer} / {registration.client_id}"
        for name in names:
            provider = provider_for(name, own)
            whose = ENVIRONMENT if provider is provider_for(name) else label
            entry = servers.setdefault(id(provider), (provider, whose, []))
            if name == registration.video_provider:
                entry[2].append(label)
    return servers


def server_health(access: AdminAccess, found: list[RegistrationSummary] | None = None) -> list[ServerHealth]:
    """Every server in view, checked in parallel (each check is one call, bounded by the
    provider's timeout)."""
    servers = _servers_in_view(access, registrations(access) if found is None else found)
    entries = list(servers.values())
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(entries)))) as pool:
        results = list(pool.map(lambda entry: _checked(entry[0]), entries))
    checked = [ServerHealth(provider.name, whose, health, used)
               for (provider, whose, used), health in zip(entries, results, strict=True)]
    return sorted(checked, key=lambda s: (s.settings_of != ENVIRONMENT, s.settings_of, s.provider))


def _checked(provider: VideoProvider) -> ProviderHealth:
    """The provider's own check, or the one made less than HEALTH_CACHE_SECONDS ago."""
    cache = _HEALTH_CACHE
    with _health_lock:
        cached = cache.get(id(provider))
        if cached and cached[0] is provider and time.monotonic() - cached[1] < HEALTH_CACHE_SECONDS:
            return cached[2]
    health = provider.check()
    with _health_lock:
        cache[id(provider)] = (provider, time.monotonic(), health)
    return health


_HEALTH_CACHE: dict[int, tuple[VideoProvider, float, ProviderHealth]] = {}


def forget_health() -> None:
    with _health_lock:
        _HEALTH_CACHE.clear()


# --- deliveries and events ---------------------------------------------------------------------------
@dataclass
class FailedDelivery:
    id: int
    person: str
    activity: str
    course: str
    issuer: str
    score: str
    attempts: int
    error: str
    failed_at: datetime


def failed_deliveries(access: AdminAccess) -> tuple[int, list[FailedDelivery]]:
    """How many grades failed for good, and the latest FAILURES_SHOWN of them."""
    scope = [ScoreDelivery.status == "failed"]
    if not access.is_operator:
        scope.append(ScoreDelivery.issuer == access.issuer)
    total = db.session.scalar(select(func.count(ScoreDelivery.id)).where(*scope)) or 0
    rows = db.session.execute(
        select(ScoreDelivery, User.name, ResourceLink.title, Course.title)
        .join(User, ScoreDelivery.user_id == User.id)
        .join(ResourceLink, ScoreDelivery.resource_link_id == ResourceLink.id)
        .join(Course, ResourceLink.course_id == Course.id)
        .where(*scope).order_by(ScoreDelivery.id.desc()).limit(FAILURES_SHOWN)
    )
    return total, [
        FailedDelivery(d.id, name or d.sub, activity, course, d.issuer,
                       f"{d.score_given:g} / {d.score_maximum:g}", d.attempts, (d.last_error or "")[:300],
                       d.next_attempt_at)
        for d, name, activity, course in rows
    ]


def retry_failed_deliveries(access: AdminAccess) -> int:
    """Put the failed grades in view back in the queue (the worker sends them again)."""
    query = update(ScoreDelivery).where(ScoreDelivery.status == "failed")
    if not access.is_operator:
        query = query.where(ScoreDelivery.issuer == access.issuer)
    result = db.session.execute(
        query.values(status="pending", attempts=0, next_attempt_at=utcnow(), locked_until=None),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return result.rowcount or 0


@dataclass
class Backlog:
    grades_pending: int = 0
    grades_retrying: int = 0  # pending after a failed attempt: the platform did not take them yet
    oldest_grade_at: datetime | None = None
    events: dict[str, int] = field(default_factory=dict)  # status -> count, applied ones aside
    oldest_event_at: datetime | None = None

    @property
    def events_waiting(self) -> int:
        return sum(self.events.values())


def backlog(access: AdminAccess) -> Backlog:
    result = Backlog()
    grades = [ScoreDelivery.status == "pending"]
    if not access.is_operator:
        grades.append(ScoreDelivery.issuer == access.issuer)
    result.grades_pending, result.grades_retrying, result.oldest_grade_at = db.session.execute(
        select(func.count(ScoreDelivery.id), func.count(ScoreDelivery.id).filter(ScoreDelivery.attempts > 0),
               func.min(ScoreDelivery.created_at)).where(*grades)
    ).one()
    events = select(ProviderEvent.status, func.count(ProviderEvent.id), func.min(ProviderEvent.received_at)).where(
        ProviderEvent.status != "applied")
    if not access.is_operator:
        # A platform's administrator sees the events of their platform's rooms; events of
        # meetings the tool does not know belong to no platform (the operator sees them).
        events = (events.join(Room, Room.meeting_id == ProviderEvent.meeting_id)
                  .join(ResourceLink, Room.resource_link_id == ResourceLink.id)
                  .join(Course, ResourceLink.course_id == Course.id).where(Course.issuer == access.issuer))
    for status, count, oldest in db.session.execute(events.group_by(ProviderEvent.status)):
        result.events[status] = count
        if oldest and (result.oldest_event_at is None or oldest < result.oldest_event_at):
            result.oldest_event_at = oldest
    return result
