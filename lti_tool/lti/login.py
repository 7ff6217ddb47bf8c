"""OIDC third-party login initiation: the first leg of every LTI 1.3 launch.

The platform sends the browser here with its issuer and a login hint; the tool answers with a
302 to the platform's authorization endpoint carrying a fresh `state` and `nonce`. Both are
stored server-side (any worker can check the launch) and the state is bound to this browser by
a cookie holding a random secret whose hash only the database knows. Anyone can start a login,
so each parameter is capped (`MAX_LOGIN_PARAM_BYTES`) and only the ones the tool uses are kept.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from flask import current_app
from sqlalchemy import delete

from ..extensions import db
from ..logsafe import quoted
from ..models import LoginState, UsedNonce, utcnow
from .errors import LaunchError
from .registrations import RegistrationStore

log = logging.getLogger(__name__)

STATE_COOKIE_PREFIX = "lti_state_"
LOGIN_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "client_id",
    "lti_deployment_id",
    "lti_storage_target",
)
# Anyone can start logins and each one is stored until it expires: every parameter is an issuer,
# a URL, an id or a short hint (Moodle's lti_message_hint is about 60 bytes), so 4 KB is plenty.
MAX_LOGIN_PARAM_BYTES = 4096
REGISTRATION_DISABLED = (
    "The live-class tool is turned off for this learning platform. "
    "Please ask your site administrator."
)


def state_cookie_name(state: str) -> str:
    return STATE_COOKIE_PREFIX + state


def binding_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def storage_key(state: str) -> str:
    """The key under which the state's binding is kept in LTI platform storage."""
    return STATE_COOKIE_PREFIX + state


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class LoginRedirect:
    url: str
    state: str
    cookie_name: str
    cookie_value: str
    max_age: int
    # Set when the platform offers LTI platform storage (`lti_storage_target`): the binding is
    # then also put there, in case the browser drops the cookie.
    storage_target: str | None = None
    platform_origin: str | None = None


def same_origin(url, base_url: str) -> bool:
    """Whether `url` (from a request or a token: anything) is on the origin of `base_url`."""
    if not isinstance(url, str):
        return False
    try:
        a, b = urlsplit(url), urlsplit(base_url)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 host
        return False
    return bool(a.scheme and a.netloc) and (a.scheme, a.netloc) == (b.scheme, b.netloc)


# Expired login states and used nonces are deleted at most this often per process, not at every
# login: two DELETEs per login were a third of its statements. An expired state is refused by
# its expiry time whether it is still stored or not; what is left waits a minute at most.
PURGE_EVERY_SECONDS = 60.0
_purge_lock = threading.Lock()


def _purge_due() -> bool:
    """Whether this process's turn to purge has come (and take it)."""
    now = time.monotonic()
    with _purge_lock:
        last = current_app.extensions.get("login_purged_at")
        if last is not None and now - last < PURGE_EVERY_SECONDS:
            return False
        current_app.extensions["login_purged_at"] = now
        return True


def _purge_expired() -> None:
    if not _purge_due():
        return
    now = utcnow()
    db.session.execute(delete(LoginState).where(LoginState.expires_at < now))
    db.session.execute(delete(UsedNonce).where(UsedNonce.expires_at < now))


def _login_params(request_params: dict) -> dict:
    """The login parameters the tool uses (and stores, to restart the login), each bounded."""
    params = {name: request_params.get(name) for name in LOGIN_PARAMS if request_params.get(name)}
    too_large = [
        name for name, value in params.items() if len(value.encode("utf-8", "replace")) > MAX_LOGIN_PARAM_BYTES
    ]
    if too_large:
        raise LaunchError(
            f"login parameters too large: {', '.join(too_large)} (at most {MAX_LOGIN_PARAM_BYTES} bytes each)",
            "This login request is too large for the tool. "
            "Please go back to your course and open the activity again.",
        )
    return params


def start_login(request_params: dict, store: RegistrationStore, config: dict) -> LoginRedirect:
    """Check the login initiation, store its state and nonce, and say where the browser goes."""
    params = _login_params(request_params)
    registration = _registration_for(params, store, config)
    state, nonce, secret = (secrets.token_urlsafe(32) for _ in range(3))
    lifetime = int(config["LOGIN_STATE_SECONDS"])
    _store_login(state, nonce, secret, registration, params, lifetime)
    log.info(
        "login: iss=%s client_id=%s -> authorization request", quoted(params["iss"]), quoted(registration.client_id)
    )
    return LoginRedirect(
        url=_authorization_url(registration, params, state, nonce, config["TOOL_BASE_URL"]),
        state=state,
        cookie_name=state_cookie_name(state),
        cookie_value=secret,
        max_age=lifetime,
        storage_target=params.get("lti_storage_target"),
        platform_origin=origin_of(registration.auth_login_url),
    )


def _registration_for(params: dict, store: RegistrationStore, config: dict):
    """The registration the login names, once issuer, client, deployment and target check out."""
    issuer = params.get("iss")
    if not issuer or not params.get("login_hint"):
        raise LaunchError(
            "login initiation without iss or login_hint",
            "This link must be opened from your course in the learning platform.",
        )
    registration = store.find(issuer, params.get("client_id"))
    if registration is None:
        if params.get("client_id") and store.disabled(issuer, [params["client_id"]]):
            raise LaunchError(
                f"login from disabled registration iss={quoted(issuer)} client_id={quoted(params['client_id'])}",
                REGISTRATION_DISABLED,
                status=403,
            )
        raise LaunchError(
            f"login from unregistered platform iss={quoted(issuer)} client_id={quoted(params.get('client_id'))}",
            "This learning platform is not registered with the live-class tool. "
            "Please ask your site administrator to register it.",
            status=403,
        )
    deployment_id = params.get("lti_deployment_id")
    if deployment_id and not registration.accepts_deployment(deployment_id):
        raise LaunchError(
            f"login for unknown deployment {quoted(deployment_id)} of {quoted(issuer)}",
            "This deployment of the tool is not registered. Please ask your site administrator.",
            status=403,
        )
    target = params.get("target_link_uri") or ""
    if not same_origin(target, config["TOOL_BASE_URL"]):
        raise LaunchError(
            f"target_link_uri {quoted(target)} is not on this tool ({config['TOOL_BASE_URL']})",
            "This launch is meant for another tool.",
        )
    return registration


def _store_login(state: str, nonce: str, secret: str, registration, params: dict, lifetime: int) -> None:
    _purge_expired()
    db.session.add(
        LoginState(
            state=state,
            nonce=nonce,
            browser_binding=binding_hash(secret),
            issuer=params["iss"],
            client_id=registration.client_id,
            login_params=params,
            expires_at=utcnow() + timedelta(seconds=lifetime),
        )
    )
    db.session.commit()


def _authorization_url(registration, params: dict, state: str, nonce: str, base_url: str) -> str:
    """The platform's authorization request (OIDC implicit flow, form_post), hints echoed."""
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": registration.client_id,
        "redirect_uri": base_url + "/lti/launch",
        "login_hint": params["login_hint"],
        "state": state,
        "nonce": nonce,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    separator = "&" if "?" in registration.auth_login_url else "?"
    return registration.auth_login_url + separator + urlencode(query)
