"""The platform's LTI Advantage services as the tool calls them: OAuth2 access tokens, Assignment
and Grade Services (line items, scores) and Names and Role Provisioning Services (the roster).

Access tokens are kept in `PlatformToken`, outside the caller's transaction, sealed (Fernet, with a
key derived from SECRET_KEY), so that every thread and process on every machine reuses the same
token until shortly before it expires; exactly one of them fetches a missing or expired one, under
a row lock (docs/queues.md). Runs inside an app context.

    services = PlatformServices.from_app(current_app)
    outcome = services.post_score(registration, lineitem_url, score)   # ScoreOutcome
    members = services.roster(registration, memberships_url)           # [RosterEntry]
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import jwt
import requests
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import PlatformToken

log = logging.getLogger(__name__)

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"

MEDIA_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
MEDIA_LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MEDIA_SCORE = "application/vnd.ims.lis.v1.score+json"
MEDIA_RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MEDIA_MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 300
TOKEN_REUSE_MARGIN = timedelta(seconds=60)  # a cached token is dropped this long before expiry
DEFAULT_TOKEN_SECONDS = 3600  # when the platform's answer has no expires_in
TOKEN_MEMORY_SECONDS = 10  # a process rereads the shared token at least this often
NEVER_FRESH = datetime(1970, 1, 1, tzinfo=UTC)  # the expiry of a key row that holds no token
MESSAGE_LIMIT = 500  # characters of a platform's error body kept in messages
MAX_PAGES = 1000  # a Link rel="next" chain longer than this is a platform bug, not a roster


def _is_retryable(status: int | None) -> bool:
    return status is None or status in (408, 429) or status >= 500


class PlatformServiceError(Exception):
    """A platform service call failed: `status` is the HTTP status (None: no answer at all),
    `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class ScoreOutcome:
    """What became of one score POST.

    kind: "delivered"; "conflict" (409: the platform holds a score at least as recent);
    "rejected" (another 4xx: sending the same score again will not help; `message` says why);
    "retry" (no answer, timeout, 5xx or 429: try again, after `retry_after` seconds if given).
    """

    kind: str
    status: int | None = None
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class RosterEntry:
    """One course member as NRPS lists them; `roles` as given (Moodle: "Learner")."""

    sub: str
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    roles: list[str] = field(default_factory=list)
    status: str = "Active"


def scopes_key(scopes) -> str:
    """The cache key of a set of scopes: sorted, unique, space-separated."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    return " ".join(sorted(set(scopes)))


def scores_url(lineitem_url: str) -> str:
    """`…/lineitem?type_id=1` → `…/lineitem/scores?type_id=1`: the query stays after the path."""
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _trimmed(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _safe_url(url: str) -> str:
    """The URL for a log line: without user info (the tool never puts a token in a URL)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _db_error(exc: SQLAlchemyError) -> str:
    """A database error for a log line: SQLAlchemy's own text lists the parameters (the token)."""
    reason = str(getattr(exc, "orig", None) or "").splitlines()
    return f"{type(exc).__name__}: {reason[0] if reason else ''}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _fernet() -> Fernet:
    # Its own key, derived from SECRET_KEY as the platforms' video settings derive theirs.
    digest = hashlib.sha256(b"lti-tool platform access tokens:" + current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def _sealed(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode()


def _unsealed(sealed: str | None) -> str | None:
    """The token, or None when there is none or SECRET_KEY changed since it was sealed (then
    a new one is fetched)."""
    if not sealed:
        return None
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None


class PlatformServices:
    """Calls to the LTI Advantage services of the platforms the tool is registered with."""

    def __init__(self, registrations, key_ring, timeout: float = 10,
                 session: requests.Session | None = None):
        self.registrations = registrations
        self.key_ring = key_ring
        self.timeout = timeout
        self._session = session
        self._local = threading.local()  # one instance serves web and worker threads
        # One token request per platform and scope set at a time in this process: threads that
        # need the same token wait for the first one's answer instead of asking too.
        self._token_locks: dict[tuple, threading.Lock] = {}
        self._token_locks_guard = threading.Lock()
        self._memory: dict[tuple, tuple[str, datetime, float]] = {}  # see _remembered

    @property
    def session(self) -> requests.Session:
        """The session given, or one per thread (a requests.Session is not thread-safe)."""
        if self._session is not None:
            return self._session
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    @classmethod
    def from_app(cls, app, **kwargs) -> PlatformServices:
        return cls(app.extensions["registrations"], app.extensions["key_ring"], **kwargs)

    # ----------------------------------------------------------------- access tokens
    def access_token(self, registration, scopes, *, refused: str | None = None) -> str:
        """A bearer token for these scopes: the stored one while it is fresh (and is not the
        `refused` one), else a new one — fetched by exactly one process at a time (see below)."""
        key = scopes_key(scopes)
        remembered = self._remembered(registration, key)
        if remembered is not None and remembered != refused:
            return remembered
        cached = self._cached_token(registration, key)
        if cached is not None and cached != refused:
            return cached
        with self._token_lock(registration, key):  # one thread of this process goes to the database
            cached = self._cached_token(registration, key)  # another thread may have fetched it
            if cached is not None and cached != refused:
                return cached
            return self._fetch_once(registration, key, refused)

    def _remembered(self, registration, key: str) -> str | None:
        """The token this process read or fetched last, for TOKEN_MEMORY_SECONDS: a class's
        scores do not each read the shared row. A token the platform refuses meanwhile is
        answered 401 and replaced through the row, as always."""
        entry = self._memory.get((registration.issuer, registration.client_id, key))
        if entry is None:
            return None
        token, expires_at, read_at = entry
        if time.monotonic() - read_at > TOKEN_MEMORY_SECONDS or expires_at - TOKEN_REUSE_MARGIN <= _utcnow():
            return None
        return token

    def _remember(self, registration, key: str, token: str | None, expires_at: datetime) -> None:
        ident = (registration.issuer, registration.client_id, key)
        if token is None:
            self._memory.pop(ident, None)
        else:
            self._memory[ident] = (token, expires_at, time.monotonic())

    def _token_lock(self, registration, key: str) -> threading.Lock:
        with self._token_locks_guard:
            return self._token_locks.setdefault((registration.issuer, registration.client_id, key), threading.Lock())

    def _fetch_once(self, registration, key: str, refused: str | None) -> str:
        """Fetch a token while holding the key's row: on PostgreSQL `SELECT … FOR UPDATE` (every
        other process asking for this key waits for this transaction, then reads its token); on
        SQLite the write lock taken by the INSERT serialises the same way. The wait is bounded
        (`lock_timeout` on PostgreSQL, the busy timeout on SQLite)."""
        try:
            with db.engine.begin() as connection:
                row = self._locked_row(connection, registration, key)
                token = _unsealed(row.sealed_token) if row.expires_at - TOKEN_REUSE_MARGIN > _utcnow() else None
                if token is not None and token != refused:
                    return token  # another process fetched it while this one waited
                token, expires_at = self._request_token(registration, key)
                connection.execute(update(PlatformToken).where(*self._token_row(registration, key))
                                   .values(sealed_token=_sealed(token), expires_at=expires_at))
            self._remember(registration, key, token, expires_at)  # once committed
            return token
        except SQLAlchemyError as exc:
            log.warning("access token of %s: the shared token row is unavailable: %s",
                        registration.issuer, _db_error(exc))
            raise PlatformServiceError(f"access token: {_db_error(exc)}", None, True) from exc

    def _locked_row(self, connection, registration, key: str):
        if connection.dialect.name == "postgresql":
            # Waits for another process's fetch at most as long as that fetch may take.
            connection.execute(text(f"SET LOCAL lock_timeout = '{int((self.timeout + 5) * 1000)}ms'"))
        connection.execute(self._key_row(connection.dialect.name, registration, key))
        return connection.execute(
            select(PlatformToken.sealed_token, PlatformToken.expires_at)
            .where(*self._token_row(registration, key)).with_for_update()).one()

    @staticmethod
    def _key_row(dialect: str, registration, key: str):
        """The key's row, made when missing (with no token, long expired); kept when present."""
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
        return insert(PlatformToken).values(
            issuer=registration.issuer, client_id=registration.client_id, scopes=key,
            sealed_token=None, expires_at=NEVER_FRESH).on_conflict_do_nothing(
            index_elements=["issuer", "client_id", "scopes"])

    def invalidate(self, registration, scopes, access_token: str | None = None) -> None:
        """Forget what this process remembers of the token: the platform refused it. The shared
        row is replaced by the next `access_token(…, refused=access_token)`, under the row lock
        and only if it still holds that token — so workers refused at the same moment fetch one
        new token between them, and a token another worker stored meanwhile is kept."""
        self._remember(registration, scopes_key(scopes), None, NEVER_FRESH)

    @staticmethod
    def _token_row(registration, key: str) -> tuple:
        return (PlatformToken.issuer == registration.issuer,
                PlatformToken.client_id == registration.client_id,
                PlatformToken.scopes == key)

    def _cached_token(self, registration, key: str) -> str | None:
        query = select(PlatformToken.sealed_token, PlatformToken.expires_at).where(
            *self._token_row(registration, key))
        # Its own connection: the caller's session would keep a stale row in its identity map.
        with db.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None or row.expires_at - TOKEN_REUSE_MARGIN <= _utcnow():
            return None
        token = _unsealed(row.sealed_token)
        self._remember(registration, key, token, row.expires_at)
        return token

    def _request_token(self, registration, key: str) -> tuple[str, datetime]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self._client_assertion(registration),
            "scope": key,
        }
        response = self._send("POST", registration.auth_token_url, data=form,
                              headers={"Accept": "application/json"})
        body = self._json(response, "access token")
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise self._token_refusal(response, body)
        return body["access_token"], _utcnow() + timedelta(seconds=_lifetime(body))

    def _token_refusal(self, response, body) -> PlatformServiceError:
        if isinstance(body, dict) and body.get("error"):
            detail = f"{body['error']}: {body.get('error_description', '')}".rstrip(": ")
        else:
            detail = _trimmed(response.text) or "no access_token in the answer"
        status = response.status_code
        return PlatformServiceError(f"token endpoint refused ({status}): {_trimmed(detail)}",
                                    status, _is_retryable(status),
                                    retry_after_seconds(response.headers.get("Retry-After")))

    def _client_assertion(self, registration) -> str:
        """RFC 7523 client authentication, signed by the key that signs for this registration."""
        key = self._signing_key(registration)
        now = int(time.time())
        claims = {
            "iss": registration.client_id,
            "sub": registration.client_id,
            "aud": registration.auth_audience or registration.auth_token_url,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})

    def _signing_key(self, registration):
        if getattr(self.registrations, "key_ring", None) is not None:
            return self.registrations.signing_key_for(registration)
        return self.key_ring.signing_key

    # ----------------------------------------------------------------- HTTP
    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        """One HTTP request; no answer at all becomes a retryable PlatformServiceError."""
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            log.warning("%s %s failed: %s", method, _safe_url(url), type(exc).__name__)
            raise PlatformServiceError(f"{method} {_safe_url(url)}: {type(exc).__name__}: {exc}",
                                       None, True) from exc
        log.info("%s %s -> %s", method, _safe_url(url), response.status_code)
        return response

    def _authorized(self, registration, scopes, method: str, url: str, *, headers: dict,
                    refusals=(401,), **kwargs) -> requests.Response:
        """A service call with a bearer token; a refused token is dropped and the call made once
        more with a fresh one. `refusals`: the statuses this resource answers a bad token with."""
        token = None
        for attempt in (1, 2):
            token = self.access_token(registration, scopes, refused=token)
            response = self._send(method, url, headers={**headers, "Authorization": f"Bearer {token}"},
                                  **kwargs)
            if response.status_code not in refusals or attempt == 2:
                return response
            log.info("%s refused the access token (%s): fetching a new one", _safe_url(url),
                     response.status_code)
            self.invalidate(registration, scopes, token)

    @staticmethod
    def _json(response: requests.Response, what: str):
        """The body as JSON whatever its Content-Type (Moodle labels token JSON text/html)."""
        try:
            return json.loads(response.text) if response.text.strip() else None
        except ValueError as exc:
            if response.status_code >= 400:
                return None  # the caller reports the status and the text
            raise PlatformServiceError(f"{what}: the platform answered something that is not JSON",
                                       response.status_code, True) from exc

    @staticmethod
    def _failure(response: requests.Response, what: str) -> PlatformServiceError:
        status = response.status_code
        return PlatformServiceError(f"{what} failed ({status}): {_trimmed(response.text)}", status,
                                    _is_retryable(status),
                                    retry_after_seconds(response.headers.get("Retry-After")))

    def _pages(self, registration, scopes, url: str, accept: str, what: str, shape: type, *,
               params=None, refusals=(401,)):
        """Every page of a paged container (JSON of type `shape`), following Link: rel="next".
        A partial answer is an error: a roster missing its last page would drop members."""
        seen, origin = set(), _origin(url)
        while url and url not in seen:
            if len(seen) >= MAX_PAGES or _origin(url) != origin:  # never send the token elsewhere
                raise PlatformServiceError(f"{what}: unusable next page {_safe_url(url)}", None, False)
            seen.add(url)
            response = self._authorized(registration, scopes, "GET", url, refusals=refusals,
                                        headers={"Accept": accept}, params=params)
            if response.status_code != 200:
                raise self._failure(response, what)
            page = self._json(response, what)
            if not isinstance(page, shape):
                raise PlatformServiceError(f"{what}: the platform answered no {shape.__name__}",
                                           200, True)
            yield page
            following = response.links.get("next", {}).get("url")
            url, params = (urljoin(response.url, following) if following else None), None

    # ----------------------------------------------------------------- AGS: scores
    def post_score(self, registration, lineitem_url: str, score: dict) -> ScoreOutcome:
        """POST one score to the line item's scores endpoint; never raises for platform trouble."""
        try:
            response = self._authorized(registration, [SCOPE_SCORE], "POST", scores_url(lineitem_url),
                                        data=json.dumps(score), headers={"Content-Type": MEDIA_SCORE})
        except PlatformServiceError as error:
            kind = "retry" if error.retryable else "rejected"
            return ScoreOutcome(kind, error.status, error.message, error.retry_after)
        return self._score_outcome(response)

    @staticmethod
    def _score_outcome(response: requests.Response) -> ScoreOutcome:
        status = response.status_code
        message = _trimmed(response.text)
        if 200 <= status < 300:
            return ScoreOutcome("delivered", status)
        if status == 409:
            return ScoreOutcome("conflict", status, message)
        if _is_retryable(status):
            return ScoreOutcome("retry", status, message,
                                retry_after_seconds(response.headers.get("Retry-After")))
        return ScoreOutcome("rejected", status, message)

    # ----------------------------------------------------------------- AGS: line items
    def find_or_create_lineitem(self, registration, lineitems_url: str, *, resource_link_id=None,
                                resource_id=None, tag=None, label: str, score_maximum: float,
                                limit: int | None = None) -> str:
        """The `id` URL of the line item with these resource link id, resource id and tag (the
        non-empty ones), created with `label` and `score_maximum` when the platform has none."""
        wanted = {"resource_link_id": resource_link_id, "resource_id": resource_id, "tag": tag}
        wanted = {name: str(value) for name, value in wanted.items() if value not in (None, "")}
        found = self._find_lineitem(registration, lineitems_url, wanted, limit)
        if found:
            return found
        body = {"label": label, "scoreMaximum": score_maximum,
                "resourceLinkId": wanted.get("resource_link_id"),
                "resourceId": wanted.get("resource_id"), "tag": wanted.get("tag")}
        return self._create_lineitem(registration, lineitems_url,
                                     {k: v for k, v in body.items() if v is not None})

    def _find_lineitem(self, registration, lineitems_url: str, wanted: dict, limit) -> str | None:
        params = {**wanted, **({"limit": limit} if limit else {})}
        for page in self._pages(registration, [SCOPE_LINEITEM], lineitems_url,
                                MEDIA_LINEITEM_CONTAINER, "line items", list, params=params):
            for item in page:
                if isinstance(item, dict) and item.get("id") and _lineitem_matches(item, wanted):
                    return item["id"]
        return None

    def _create_lineitem(self, registration, lineitems_url: str, body: dict) -> str:
        response = self._authorized(
            registration, [SCOPE_LINEITEM], "POST", lineitems_url, data=json.dumps(body),
            headers={"Content-Type": MEDIA_LINEITEM, "Accept": MEDIA_LINEITEM})
        if response.status_code not in (200, 201):
            raise self._failure(response, "line item creation")
        created = self._json(response, "line item creation")
        if not isinstance(created, dict) or not created.get("id"):
            raise PlatformServiceError("line item creation: the answer has no id",
                                       response.status_code, False)
        log.info("created line item %s", _safe_url(created["id"]))
        return created["id"]

    # ----------------------------------------------------------------- NRPS
    def roster(self, registration, memberships_url: str, *,
               limit: int | None = None) -> list[RosterEntry]:
        """Every member of the context, across all pages (`limit`: members per page asked for)."""
        entries: dict[str, RosterEntry] = {}
        # Moodle answers a bad or expired token on memberships with 403, not 401.
        for page in self._pages(registration, [SCOPE_NRPS], memberships_url,
                                MEDIA_MEMBERSHIP_CONTAINER, "roster", dict,
                                params={"limit": limit} if limit else None, refusals=(401, 403)):
            members = page.get("members")
            if not isinstance(members, list):
                raise PlatformServiceError("roster: the platform answered no members list", 200, True)
            for member in members:
                entry = _roster_entry(member)
                if entry is not None:
                    entries.setdefault(entry.sub, entry)
        return list(entries.values())


def _lifetime(body: dict) -> float:
    try:
        return float(body.get("expires_in") or DEFAULT_TOKEN_SECONDS)
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_SECONDS


def _lineitem_matches(item: dict, wanted: dict) -> bool:
    """Platforms may ignore the filters: check them on each item (Moodle's ltiLinkId too)."""
    actual = {
        "resource_link_id": item.get("resourceLinkId", item.get("ltiLinkId")),
        "resource_id": item.get("resourceId"),
        "tag": item.get("tag"),
    }
    return all(str(actual[name] or "") == value for name, value in wanted.items())


def _roster_entry(member) -> RosterEntry | None:
    if not isinstance(member, dict) or not member.get("user_id"):
        return None
    given, family = member.get("given_name") or "", member.get("family_name") or ""
    return RosterEntry(
        sub=str(member["user_id"]),
        name=member.get("name") or " ".join(part for part in (given, family) if part),
        given_name=given,
        family_name=family,
        email=member.get("email") or "",
        roles=list(member.get("roles") or []),
        status=member.get("status") or "Active",
    )
