"""Validation of an id_token launch: every check of LTI 1.3 core and the 1EdTech security
framework, in an order that writes nothing until everything has passed.

Order: token size, shape and algorithm → registration (iss, aud/azp) → signature against the
platform's JWKS → exp/iat (and a lifetime of at most a day) → the types and shapes of every
claim the tool reads (claims.check_claims) → LTI claims (version, message type, deployment,
roles, subject, resource link, target_link_uri) → state (known, unexpired, bound to this
browser) → nonce (matches the login, never used). `consume_login` then deletes the state and
records the nonce inside the caller's transaction, so a failure later in the launch rolls those
back too.
"""
from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import Delete, Insert, Row, Select, bindparam, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logsafe import quoted
from ..models import LoginState, UsedNonce, utcnow
from . import claims as C
from . import id_token
from .errors import LaunchError, PlatformStorageNeeded, ResubmitNeeded
from .login import REGISTRATION_DISABLED, binding_hash, origin_of, same_origin, state_cookie_name
from .platform_keys import PlatformKeyCache, PlatformKeyError, PlatformKeysUnavailable
from .registrations import PlatformRegistration, RegistrationStore

log = logging.getLogger(__name__)

RELAUNCH_FROM_COURSE = "Please go back to your course and open the activity again."
NONCE_KEEP = timedelta(days=1)
# Anyone can post an id_token: what it may cost before its signature is checked is bounded.
# Moodle's id_tokens are about 4 KB; 64 KB leaves room for long custom parameters and roles.
MAX_ID_TOKEN_BYTES = 64 * 1024
# Platforms send one audience (the client id); the spec allows a list. Each is looked up.
MAX_AUDIENCES = 16
# Moodle's id_tokens live 60 s; one that claims to live longer than a day is not a launch (and
# its exp, kept with the used nonce, must stay a representable date).
MAX_ID_TOKEN_LIFETIME_SECONDS = 24 * 3600
KEYS_UNAVAILABLE = (
    "The tool cannot check this launch right now: your learning platform's keys could not be "
    "fetched. Please try again in a minute; if it keeps happening, tell your site administrator."
)
# The marker of the tool's own re-submission of a launch that came without the state cookie.
RESUBMITTED = "lti_resubmitted"
FRAMED_DESTINATIONS = frozenset({"iframe", "frame", "embed", "object", "fencedframe"})
UNUSABLE_CLAIMS = "The learning platform sent launch details the tool cannot use. " + RELAUNCH_FROM_COURSE


@dataclass(frozen=True)
class ValidatedLaunch:
    registration: PlatformRegistration
    claims: C.LaunchClaims
    state: str
    # The first launch of a registration without deployments: record_launch adopts this one.
    adopts_deployment: bool = False


def _refuse(reason: str, message: str = RELAUNCH_FROM_COURSE, status: int = 400, **kw) -> LaunchError:
    return LaunchError(reason, message, status, **kw)


def _unverified(token: str) -> id_token.IdToken:
    """The token parsed, once: its header and its claims, not trusted yet."""
    size = len(token.encode("utf-8", "replace"))
    if size > MAX_ID_TOKEN_BYTES:
        raise _refuse(f"id_token too large: {size} bytes (at most {MAX_ID_TOKEN_BYTES})")
    try:
        return id_token.parse(token)
    except id_token.TokenError as exc:
        raise _refuse(f"id_token is not a JWT: {quoted(str(exc))}") from exc


def _audiences(body: dict) -> list[str]:
    """Client ids the token may be for, in order: azp alone when it is one of the audiences."""
    aud, azp = body.get("aud"), body.get("azp")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
        raise _refuse(f"id_token aud must be a string or a list of strings, not {quoted(aud)}")
    if len(audiences) > MAX_AUDIENCES:
        raise _refuse(f"id_token names {len(audiences)} audiences (at most {MAX_AUDIENCES})")
    return [azp] if azp in audiences else audiences


def _find_registration(store: RegistrationStore, body: dict) -> PlatformRegistration:
    issuer = body.get("iss")
    registration = store.find_first(issuer, _audiences(body)) if isinstance(issuer, str) else None
    if registration is not None:
        return registration
    if isinstance(issuer, str) and store.disabled(issuer, _audiences(body)):
        raise _refuse(
            f"launch from disabled registration iss={quoted(issuer)} aud={quoted(body.get('aud'))}",
            REGISTRATION_DISABLED,
            403,
        )
    raise _refuse(
        f"no registration for iss={quoted(issuer)} aud={quoted(body.get('aud'))} azp={quoted(body.get('azp'))}",
        "This learning platform is not registered with the live-class tool. "
        "Please ask your site administrator.",
        403,
    )


def _verify_signature(token: id_token.IdToken, registration, key_cache, leeway: float) -> dict:
    header = token.header
    if header.get("alg") != "RS256":
        raise _refuse(f"id_token alg {quoted(header.get('alg'))} refused: only RS256 is accepted", status=401)
    if not header.get("kid"):
        raise _refuse("id_token header has no kid", status=401)
    try:
        key = key_cache.key_for(registration.key_set_url, header["kid"])
    except PlatformKeysUnavailable as exc:
        raise _refuse(str(exc), KEYS_UNAVAILABLE, 503, retry_after=exc.retry_after) from exc
    except PlatformKeyError as exc:
        raise _refuse(str(exc), status=401) from exc  # PlatformKeyError quotes what it names
    try:
        return id_token.verify(token, key, audience=registration.client_id, issuer=registration.issuer,
                               leeway=leeway, require=("exp", "iat", "iss", "aud", "nonce"))
    except id_token.ExpiredSignatureError as exc:
        raise _refuse("id_token expired", "This launch has expired. " + RELAUNCH_FROM_COURSE, 401) from exc
    except id_token.TokenError as exc:
        raise _refuse(f"id_token rejected: {exc.__class__.__name__}: {quoted(str(exc))}", status=401) from exc


def _check_lifetime(body: dict, leeway: float) -> None:
    if C.seconds_until(body.get("exp"), time.time()) > MAX_ID_TOKEN_LIFETIME_SECONDS + leeway:
        raise _refuse(
            f"id_token exp {quoted(body.get('exp'))} is more than {MAX_ID_TOKEN_LIFETIME_SECONDS} s ahead",
            status=401,
        )


def _check_claim_types(body: dict) -> None:
    try:
        C.check_claims(body)
    except C.ClaimError as exc:
        raise _refuse(f"id_token {quoted(str(exc), 400)}", UNUSABLE_CLAIMS) from exc


def _check_azp(body: dict, client_id: str) -> None:
    aud, azp = body.get("aud"), body.get("azp")
    if isinstance(aud, list) and len(aud) > 1 and not azp:
        raise _refuse("id_token has several audiences and no azp", status=401)
    if azp is not None and azp != client_id:
        raise _refuse(f"id_token azp {quoted(azp)} is not our client id {quoted(client_id)}", status=401)


def _check_target(launch: C.LaunchClaims, base_url: str) -> None:
    """The login checked the target_link_uri it was given; the signed claim must agree that the
    launch is meant for this tool (required for resource links, checked whenever present)."""
    target = launch.raw.get(C.TARGET_LINK_URI)
    if target is None and launch.message_type not in C.LINK_MESSAGE_TYPES:
        return
    if not same_origin(target, base_url):
        raise _refuse(
            f"target_link_uri {quoted(target)} is not on this tool ({base_url})",
            "This launch is meant for another tool.",
        )


def _check_lti_claims(launch: C.LaunchClaims, registration: PlatformRegistration) -> None:
    if launch.raw.get(C.VERSION) != "1.3.0":
        raise _refuse(f"LTI version {quoted(launch.raw.get(C.VERSION))} is not 1.3.0")
    if launch.message_type not in C.KNOWN_MESSAGE_TYPES:
        raise _refuse(
            f"unknown message type {quoted(launch.message_type)}", "The tool does not know this kind of launch."
        )
    if not launch.deployment_id:
        raise _refuse("id_token has no deployment_id")
    if not registration.accepts_deployment(launch.deployment_id):
        raise _refuse(
            f"deployment {quoted(launch.deployment_id)} is not registered for {quoted(registration.issuer)}",
            "This deployment of the tool is not registered. Please ask your site administrator.",
            403,
        )
    if not isinstance(launch.raw.get(C.ROLES), list):
        raise _refuse("id_token has no roles claim")
    if not launch.sub:
        raise _refuse("anonymous launch (no sub): the tool needs to know who joins")
    if launch.message_type in C.LINK_MESSAGE_TYPES and not launch.resource_link.get("id"):
        raise _refuse(f"{launch.message_type} without resource_link.id")
    if launch.message_type == C.SUBMISSION_REVIEW_REQUEST and not launch.for_user_id:
        raise _refuse("submission review without for_user.user_id")


def _adopts_deployment(launch: C.LaunchClaims, registration: PlatformRegistration, store: RegistrationStore) -> bool:
    """Whether this launch brings the first deployment of a registration that has none yet (a
    dynamic registration answered without a deployment id). A deployment id names one tool of a
    platform, so one that another client id of the issuer has is refused."""
    if registration.has_deployment(launch.deployment_id):
        return False
    others = store.deployment_owners(registration.issuer, launch.deployment_id) - {registration.client_id}
    if others:
        raise _refuse(
            f"deployment {quoted(launch.deployment_id)} of {quoted(registration.issuer)} belongs to client id "
            f"{quoted(sorted(others)[0])}, not {quoted(registration.client_id)}",
            "This deployment of the tool is not registered. Please ask your site administrator.",
            403,
        )
    return True


def is_framed(fetch_dest: str) -> bool:
    """Whether the browser says the request loads a frame (Sec-Fetch-Dest); absent = unknown."""
    return fetch_dest in FRAMED_DESTINATIONS


def _browser_binding(login: Row, state: str, cookies, form, registration, framed: bool) -> str:
    """The browser's proof that it started this login: the state cookie, or, on platforms with
    LTI platform storage, the same secret read back from there by the launch page.

    Without either, a launch in a top-level window is posted again by a page of the tool: the
    platform's cross-site form POST cannot bring a SameSite=Lax cookie (plain http), the tool's
    own same-site POST does. That second POST is checked like the first; if it still comes
    without the cookie (or the launch is framed, where re-posting cannot help) it is refused."""
    secret = cookies.get(state_cookie_name(state))
    if secret is not None:
        return secret
    storage_target = (login.login_params or {}).get("lti_storage_target")
    if storage_target and form.get("lti_storage_binding"):
        return form["lti_storage_binding"]
    if storage_target and "lti_storage_binding" not in form:
        raise PlatformStorageNeeded(
            "state cookie missing: reading the binding from LTI platform storage",
            storage_target=storage_target,
            platform_origin=origin_of(registration.auth_login_url),
            state=state,
        )
    if not framed and RESUBMITTED not in form and "lti_storage_binding" not in form:
        raise ResubmitNeeded(
            "state cookie missing: the tool's page posts the launch again, same-site", state=state
        )
    raise _refuse(
        "state cookie missing: the browser did not send it "
        + ("(third-party cookies blocked?)" if framed else "(cookies refused for the tool's site?)"),
        "Your browser blocked the cookie this tool needs inside the course page.",
        403,
        relaunch=login.login_params,
        cookie_missing=True,
    )


STATE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


@cache
def _statements() -> _LoginStatements:
    """The launch's statements about its login, built once per process with bound parameters
    and on the tables (Core): building a statement and its cache key anew, and the ORM's
    identity map and unit of work around it, cost more worker CPU than the round trip (py-spy)."""
    logins, used = LoginState.__table__, UsedNonce.__table__
    spent = exists().where(used.c.issuer == bindparam("issuer"), used.c.nonce == logins.c.nonce)
    return _LoginStatements(
        login=select(logins, spent.label("used")).where(logins.c.state == bindparam("state")),
        spend=delete(logins).where(logins.c.state == bindparam("state")),
        # Its unique key refuses a replayed nonce on any worker (IntegrityError below).
        use_nonce=insert(used),
    )


@dataclass(frozen=True)
class _LoginStatements:
    login: Select
    spend: Delete
    use_nonce: Insert


def _check_state(state: str, body: dict, registration, cookies, form, framed: bool) -> Row:
    """The login row (a login_states row and `used`) this launch comes back to, when it is the browser's."""
    if not state:
        raise _refuse("launch without state", status=403)
    if not STATE_PATTERN.fullmatch(state):
        raise _refuse("state is not one the tool could have issued", status=403)
    # The login and whether its nonce was spent already, in one statement (checked in order below).
    login = db.session.execute(_statements().login, {"state": state, "issuer": registration.issuer}).first()
    if login is None or login.expires_at < utcnow():
        raise _refuse(f"state unknown or expired ({state[:8]}…)", RELAUNCH_FROM_COURSE, 403)
    if (login.issuer, login.client_id) != (registration.issuer, registration.client_id):
        raise _refuse("state was issued for another platform", status=403)
    secret = _browser_binding(login, state, cookies, form, registration, framed)
    if not hmac.compare_digest(binding_hash(secret), login.browser_binding):
        raise _refuse("browser binding (state cookie or platform storage) does not match this login", status=403)
    # Bytes: compare_digest refuses str holding non-ASCII characters (a TypeError, not a "no").
    if not hmac.compare_digest(body["nonce"].encode(), login.nonce.encode()):
        raise _refuse("nonce does not match the one issued at login", status=403)
    if login.used:
        raise _refuse("nonce replayed", status=403)
    return login


def validate_launch(
    form, cookies, store: RegistrationStore, key_cache: PlatformKeyCache, config, fetch_dest: str = ""
) -> ValidatedLaunch:
    if form.get("error"):
        raise _refuse(
            f"platform returned an error: {quoted(form.get('error'))} {quoted(form.get('error_description', ''))}",
            "The learning platform could not complete the launch. " + RELAUNCH_FROM_COURSE,
        )
    token = form.get("id_token")
    if not token:
        raise _refuse("launch without id_token", "This page must be opened from your course.")
    parsed = _unverified(token)
    registration = _find_registration(store, parsed.claims)
    leeway = float(config["JWT_LEEWAY_SECONDS"])
    body = _verify_signature(parsed, registration, key_cache, leeway)
    _check_lifetime(body, leeway)
    _check_claim_types(body)
    _check_azp(body, registration.client_id)
    launch = C.LaunchClaims(body)
    _check_lti_claims(launch, registration)
    _check_target(launch, config["TOOL_BASE_URL"])
    adopts = _adopts_deployment(launch, registration, store)
    _check_state(form.get("state", ""), body, registration, cookies, form, is_framed(fetch_dest))
    return ValidatedLaunch(registration=registration, claims=launch, state=form["state"], adopts_deployment=adopts)


def consume_login(validated: ValidatedLaunch) -> None:
    """Spend the state and nonce in the current transaction (the caller commits)."""
    statements = _statements()
    deleted = db.session.execute(statements.spend, {"state": validated.state}).rowcount
    if deleted != 1:
        raise _refuse("state already used by a concurrent launch", status=403)
    exp = datetime.fromtimestamp(int(validated.claims.raw["exp"]), tz=UTC)
    used = {"issuer": validated.registration.issuer, "nonce": validated.claims.raw["nonce"],
            "expires_at": exp + NONCE_KEEP}
    try:
        db.session.execute(statements.use_nonce, used)
    except IntegrityError as exc:
        raise _refuse("nonce replayed (concurrent launch)", status=403) from exc
