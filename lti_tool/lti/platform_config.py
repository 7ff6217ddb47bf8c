"""A platform's OpenID configuration, as LTI Dynamic Registration 1.0 hands it to the tool.

The platform opens `/lti/register?openid_configuration=<URL>[&registration_token=<JWT>]`. The
URL is whatever the request says, so it is checked before anything is fetched (an http(s) URL;
one of `REGISTRATION_ORIGINS` when the operator lists them), fetched within bounds
(lti/fetch.py: `REGISTRATION_FETCH_SECONDS`, `MAX_CONFIGURATION_BYTES`, same-origin redirects),
and its answer is used only when it is a configuration the tool can register with:

* `issuer` is on the same origin (scheme, host, port) as the configuration's own URL, as the
  specification requires (section 3.5.1), so a page anyone can publish cannot speak for a
  platform on another host;
* the endpoints the tool needs — `authorization_endpoint`, `token_endpoint`, `jwks_uri`,
  `registration_endpoint` — are http(s) URLs that fit their columns;
* the platform launches `LtiResourceLinkRequest`, signs with RS256, takes `private_key_jwt` and
  answers `id_token` (the last three checked when the platform lists what it supports).

A configuration that fails any of these raises `RegistrationError` (502: the platform's answer
cannot be used), naming the reason in the log and in plain words on the page.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import requests

from ..logsafe import quoted, quoted_url
from ..models import Platform, fits
from .claims import RESOURCE_LINK_REQUEST, url_problem
from .errors import RegistrationError
from .fetch import FetchError, Limits, fetch
from .registrations import web_origin

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
MAX_CONFIGURATION_BYTES = 512 * 1024  # Moodle's is 4 KB; Canvas lists many variables and placements
MAX_CONFIGURATION_URL = 2048
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint")
# What the tool needs of the platform, when the platform lists what it supports.
REQUIRED_SUPPORT = (
    ("id_token_signing_alg_values_supported", "RS256", "signs launches with RS256"),
    ("token_endpoint_auth_methods_supported", "private_key_jwt", "accepts private_key_jwt client assertions"),
    ("response_types_supported", "id_token", "answers with an id_token"),
)
START_AGAIN = "Start the registration again from your learning platform."


@dataclass(frozen=True)
class PlatformConfig:
    """What the tool keeps of a platform's OpenID configuration."""

    url: str  # where it was fetched
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    audience: str | None = None  # `authorization_server`, when it is a URL: the token's aud
    product: str = ""  # product_family_code: "moodle", "canvas", "desire2learn", …
    version: str = ""
    messages: dict[str, list[str]] = field(default_factory=dict)  # message type → its placements
    scopes: list[str] | None = None  # scopes_supported, when listed

    @property
    def origin(self) -> str:
        return web_origin(self.url) or ""


def _unusable(reason: str, message: str) -> RegistrationError:
    return RegistrationError(reason, message, 502)


def check_configuration_url(url, allowed_origins: list[str]) -> str:
    """The `openid_configuration` parameter, when the tool may fetch it; RegistrationError if not."""
    if not url:
        raise RegistrationError(
            "registration without openid_configuration",
            "This address is where a learning platform registers the tool (LTI Dynamic Registration): "
            "paste it into your platform's tool registration page instead of opening it here.",
        )
    problem = url_problem(url) if len(url) <= MAX_CONFIGURATION_URL else "is too long"
    origin = web_origin(url)
    if problem or origin is None:
        raise RegistrationError(
            f"openid_configuration {quoted_url(url)} {problem or 'is not an http(s) URL'}",
            "The learning platform sent an address for its configuration that is not a web address. " + START_AGAIN,
        )
    if allowed_origins and origin not in {allowed.rstrip("/").lower() for allowed in allowed_origins}:
        raise RegistrationError(
            f"openid_configuration {quoted_url(url)}: {origin} is not in REGISTRATION_ORIGINS",
            "This tool accepts registrations only from the learning platforms its administrator "
            "listed. Ask the tool's administrator to add yours.",
            403,
        )
    return url


def fetch_configuration(url: str, token: str | None, config) -> PlatformConfig:
    """Fetch and check the platform's OpenID configuration (the token, when there is one, goes
    in the Authorization header: Canvas asks for it there, Moodle ignores it)."""
    url = check_configuration_url(url, config["REGISTRATION_ORIGINS"].split())
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    limits = Limits(deadline_seconds=float(config["REGISTRATION_FETCH_SECONDS"]), max_bytes=MAX_CONFIGURATION_BYTES)
    try:
        with requests.Session() as session:
            fetched = fetch(session, url, what="the platform's OpenID configuration", limits=limits, headers=headers)
    except FetchError as exc:
        raise _unusable(str(exc), "The tool could not read your learning platform's configuration: the "
                                  "platform could not be reached, answered too slowly or sent too much. "
                                  + START_AGAIN) from exc
    if fetched.status != 200:
        raise _unusable(
            f"the platform's OpenID configuration at {quoted_url(url)} answered HTTP {fetched.status}",
            f"Your learning platform answered the tool's request for its configuration with an error "
            f"(HTTP {fetched.status}). The registration link may have expired. " + START_AGAIN,
        )
    return parse_configuration(url, fetched.body)


def _json_object(url: str, body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _unusable(f"the platform's OpenID configuration at {quoted_url(url)} is not JSON: {quoted(str(exc))}",
                        "Your learning platform's configuration could not be read (it is not JSON).") from exc
    if not isinstance(data, dict):
        raise _unusable(f"the platform's OpenID configuration at {quoted_url(url)} is not a JSON object",
                        "Your learning platform's configuration could not be read (it is not a JSON object).")
    return data


def _issuer(url: str, data: dict) -> str:
    issuer = data.get("issuer")
    if not isinstance(issuer, str) or not issuer or not fits(issuer, Platform.issuer):
        raise _unusable(f"OpenID configuration at {quoted_url(url)}: issuer {quoted(issuer)} is missing or unusable",
                        "Your learning platform's configuration names no usable issuer.")
    if web_origin(issuer) != web_origin(url):
        raise _unusable(
            f"OpenID configuration at {quoted_url(url)}: issuer {quoted(issuer)} is not on the configuration's origin",
            f"Your learning platform's configuration says it is {issuer}, but it was served from "
            f"{web_origin(url)}: the two must be the same site. Check the platform's own address "
            "(Moodle: $CFG->wwwroot) and start the registration again.",
        )
    return issuer


def _endpoints(url: str, data: dict) -> dict[str, str]:
    endpoints = {}
    for name in ENDPOINTS:
        value = data.get(name)
        problem = "is missing" if not value else url_problem(value)
        if problem:
            raise _unusable(f"OpenID configuration at {quoted_url(url)}: {name} {quoted(value)} {problem}",
                            f"Your learning platform's configuration has no usable {name}: it may not "
                            "support LTI Dynamic Registration.")
        endpoints[name] = value
    return endpoints


def _messages(url: str, data: dict) -> tuple[dict, dict[str, list[str]]]:
    platform = data.get(PLATFORM_CONFIGURATION)
    platform = platform if isinstance(platform, dict) else {}
    supported = platform.get("messages_supported")
    messages = {}
    for entry in supported if isinstance(supported, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            placements = entry.get("placements")
            messages[entry["type"]] = [p for p in placements if isinstance(p, str)] if isinstance(
                placements, list) else []
    if RESOURCE_LINK_REQUEST not in messages:
        raise _unusable(f"OpenID configuration at {quoted_url(url)} offers no {RESOURCE_LINK_REQUEST}",
                        "Your learning platform's configuration does not offer LTI resource link launches, "
                        "which the tool needs.")
    return platform, messages


def _check_support(url: str, data: dict) -> None:
    for name, needed, meaning in REQUIRED_SUPPORT:
        listed = data.get(name)
        if isinstance(listed, list) and needed not in listed:
            raise _unusable(f"OpenID configuration at {quoted_url(url)}: {name} lacks {needed}",
                            f"Your learning platform's configuration says it no longer {meaning}, which the "
                            "tool needs.")


def _audience(data: dict, token_endpoint: str) -> str | None:
    """`authorization_server` is the aud of the tool's client assertions when the platform names
    one (spec 3.5.1; Brightspace's differs from its token endpoint). Only a URL is taken: Canvas
    puts a bare host name there and expects the token endpoint as aud, as the tool sends anyway."""
    server = data.get("authorization_server")
    if isinstance(server, str) and server != token_endpoint and url_problem(server) is None and server:
        return server
    return None


def parse_configuration(url: str, body: bytes) -> PlatformConfig:
    data = _json_object(url, body)
    issuer = _issuer(url, data)
    endpoints = _endpoints(url, data)
    platform, messages = _messages(url, data)
    _check_support(url, data)
    scopes = data.get("scopes_supported")
    return PlatformConfig(
        url=url,
        issuer=issuer,
        **endpoints,
        audience=_audience(data, endpoints["token_endpoint"]),
        product=str(platform.get("product_family_code") or "")[:64],
        version=str(platform.get("version") or "")[:64],
        messages=messages,
        scopes=[s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else None,
    )
