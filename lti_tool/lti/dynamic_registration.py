"""LTI Dynamic Registration 1.0, the tool's side: what the tool asks each platform for, sending
it, reading the platform's answer and keeping the registration.

`register_tool()` runs the whole of it for `POST /lti/register`: the platform's OpenID
configuration (platform_config.py), the client registration request (`registration_request`),
one bounded POST to the platform's `registration_endpoint` with the registration token as a
Bearer token — and no Authorization header at all when the platform sent no token
(Brightspace) —, then the answer's `client_id` and `deployment_id` stored in one transaction
(registrations.save_dynamic_registration). Any failure raises `RegistrationError`, and the
tool then stores nothing. The registration token is a credential: it goes to the platform's
own configuration and registration endpoints and nowhere else, and is never logged (even when
a refusing platform echoes it: `platform_message`).

What differs per platform (docs/decisions.md, "Dynamic registration"): the messages offered are
those the platform lists in `messages_supported` (Canvas refuses unknown message types and
placements with 422), with the placements each platform knows (Canvas: its own placement
names; others: the standard "ContentArea" when listed); Canvas also gets its privacy level
extension. Scopes are those the platform lists, when it lists them (Canvas refuses unknown ones).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from ..logsafe import quoted, quoted_url
from ..models import Deployment, Platform, fits
from .claims import DEEP_LINKING_REQUEST, RESOURCE_LINK_REQUEST, clean_display
from .errors import RegistrationError
from .fetch import FetchError, Limits, fetch
from .platform_config import START_AGAIN, PlatformConfig, fetch_configuration
from .registrations import RegistrationConflict, RegistrationStore, save_dynamic_registration

log = logging.getLogger(__name__)

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
SUBMISSION_REVIEW_REQUEST = "LtiSubmissionReviewRequest"
CLIENT_NAME = "Live class"
DESCRIPTION = "Live classes for a course, with attendance sent to the gradebook."
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)
SERVICE_NAMES = {
    SCOPES[0]: "Assignment and Grade Services: create and manage grade columns",
    SCOPES[1]: "Assignment and Grade Services: read grade columns",
    SCOPES[2]: "Assignment and Grade Services: read results",
    SCOPES[3]: "Assignment and Grade Services: send grades",
    SCOPES[4]: "Names and Role Provisioning Services: read course members",
}
CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")
TOOL_MESSAGES = (RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST, SUBMISSION_REVIEW_REQUEST)
# Placements per message type. Canvas names its own (lib/schemas/lti/ims/lti_tool_configuration.rb
# refuses others); every placement may be used by one message only (Canvas keeps the first).
CANVAS = "canvas"
CANVAS_PLACEMENTS = {
    RESOURCE_LINK_REQUEST: ("course_navigation",),
    DEEP_LINKING_REQUEST: ("link_selection", "assignment_selection"),
}
STANDARD_PLACEMENTS = {DEEP_LINKING_REQUEST: ("ContentArea",)}
CANVAS_EXTENSION = "https://canvas.instructure.com/lti/"
MAX_ANSWER_BYTES = 256 * 1024
# RFC 6750's b64token: what a Bearer token may hold (a JWT does); anything else cannot be a header.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MAX_TOKEN_LENGTH = 8192
MAX_PLATFORM_MESSAGE = 500


PRODUCT_NAMES = {"moodle": "Moodle", "canvas": "Canvas", "desire2learn": "Brightspace"}
NEXT_STEPS = {
    "moodle": "Next, in Moodle: Site administration → Plugins → Activity modules → External tool → Manage "
              "tools lists the tool as pending: activate it there.",
    "canvas": "Next, Canvas shows the registration: review it and enable the tool.",
    "desire2learn": "Next, in Brightspace: Manage Extensibility → LTI Advantage lists the registration, disabled "
                    "until you enable it; add a deployment there if you did not let the tool have one.",
}
MESSAGE_NAMES = {
    RESOURCE_LINK_REQUEST: "Live class activities (resource links)",
    DEEP_LINKING_REQUEST: "Choosing the live class when adding content (deep linking)",
    SUBMISSION_REVIEW_REQUEST: "Opening a student's attendance from the gradebook (submission review)",
}


def product_name(product: str) -> str:
    return PRODUCT_NAMES.get(product, "Your learning platform")


def next_step(product: str) -> str:
    return NEXT_STEPS.get(product, "Next, enable the tool in your learning platform.")


@dataclass(frozen=True)
class Preview:
    """What the confirmation page tells the administrator the tool will ask for."""

    messages: list[str]
    services: list[str]


def preview(platform: PlatformConfig, base_url: str) -> Preview:
    request = registration_request(platform, base_url)
    messages = []
    for message in request[TOOL_CONFIGURATION]["messages"]:
        where = ", ".join(message.get("placements", ()))
        messages.append(MESSAGE_NAMES[message["type"]] + (f" — placements: {where}" if where else ""))
    return Preview(messages, [SERVICE_NAMES[scope] for scope in request["scope"].split()])


@dataclass(frozen=True)
class Registered:
    """What the administrator is shown once the platform and the tool both hold the registration."""

    issuer: str
    client_id: str
    deployment_id: str | None
    services: list[str]
    product: str
    created: bool
    active: bool
    platform_origin: str


def check_token(token) -> str | None:
    """The registration token from the request, or None when the platform sent none."""
    if token in (None, ""):
        return None
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not TOKEN_PATTERN.fullmatch(token):
        raise RegistrationError(
            f"registration_token unusable ({len(str(token))} characters, not a Bearer token)",
            "The registration token your learning platform sent cannot be used. " + START_AGAIN,
        )
    return token


# --- the request ------------------------------------------------------------------------------
def _placements(platform: PlatformConfig, message_type: str) -> list[str]:
    """The placements wanted for this message that the platform offers for it."""
    table = CANVAS_PLACEMENTS if platform.product == CANVAS else STANDARD_PLACEMENTS
    offered = platform.messages.get(message_type, [])
    return [placement for placement in table.get(message_type, ()) if placement in offered]


def _messages(platform: PlatformConfig, launch_url: str) -> list[dict]:
    messages = []
    for message_type in TOOL_MESSAGES:
        if message_type not in platform.messages:
            continue  # Canvas answers 422 to a message type it does not know
        message = {"type": message_type, "target_link_uri": launch_url, "label": CLIENT_NAME}
        placements = _placements(platform, message_type)
        if placements:
            message["placements"] = placements
        if platform.product == CANVAS and "course_navigation" in placements:
            # Teachers turn the course menu entry on in the courses that want it.
            message[CANVAS_EXTENSION + "course_navigation/default_enabled"] = False
        messages.append(message)
    return messages


def registration_request(platform: PlatformConfig, base_url: str) -> dict:
    """The client registration the tool sends (OpenID Connect Dynamic Client Registration with
    the LTI tool configuration claim), for this platform."""
    launch_url = base_url + "/lti/launch"
    scopes = [scope for scope in SCOPES if platform.scopes is None or scope in platform.scopes]
    tool = {
        "domain": urlsplit(base_url).netloc,
        "target_link_uri": launch_url,
        "description": DESCRIPTION,
        "claims": list(CLAIMS),
        "messages": _messages(platform, launch_url),
    }
    if platform.product == CANVAS:
        tool[CANVAS_EXTENSION + "privacy_level"] = "public"  # names and email: who attended
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": base_url + "/lti/login",
        "redirect_uris": [launch_url],
        "client_name": CLIENT_NAME,
        "jwks_uri": base_url + "/.well-known/jwks.json",
        "logo_uri": base_url + "/static/icon.svg",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIGURATION: tool,
    }


# --- sending it -------------------------------------------------------------------------------
def platform_message(body: bytes, token: str | None = None) -> str:
    """What a refusing platform said, for the page and the log: its JSON error fields, or its
    text, cleaned of control characters and cut — without the registration token, should the
    platform echo it."""
    text = body.decode("utf-8", "replace")
    if token:
        text = text.replace(token, "[registration token]")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        fields = {k: data[k] for k in ("error", "error_description", "errorMessage", "message", "errors") if k in data}
        text = json.dumps(fields or data, ensure_ascii=False)
    text = clean_display(text)
    return text if len(text) <= MAX_PLATFORM_MESSAGE else text[:MAX_PLATFORM_MESSAGE] + "…"


def _refused(platform: PlatformConfig, status: int, body: bytes, token: str | None) -> RegistrationError:
    said = platform_message(body, token)
    endpoint = quoted_url(platform.registration_endpoint)
    reason = f"the platform's registration endpoint {endpoint} answered HTTP {status}: "
    if status in (401, 403):
        return RegistrationError(
            reason + quoted(said),
            "Your learning platform refused the registration token: it has expired or was used already. "
            + START_AGAIN, 403, platform_message=said)
    if 400 <= status < 500:
        return RegistrationError(reason + quoted(said), "Your learning platform refused the registration.",
                                 400, platform_message=said)
    return RegistrationError(reason + quoted(said), "Your learning platform could not complete the registration "
                             f"(HTTP {status}). Try again later.", 502, platform_message=said or None)


def post_registration(platform: PlatformConfig, token: str | None, request: dict, config) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:  # Brightspace sends no token: then no Authorization header at all
        headers["Authorization"] = f"Bearer {token}"
    limits = Limits(deadline_seconds=float(config["REGISTRATION_FETCH_SECONDS"]), max_bytes=MAX_ANSWER_BYTES,
                    redirects=0)
    try:
        with requests.Session() as session:
            answer = fetch(session, platform.registration_endpoint, what="the platform's registration endpoint",
                           limits=limits, method="POST", headers=headers, data=json.dumps(request).encode())
    except FetchError as exc:
        raise RegistrationError(str(exc), "The tool could not read your learning platform's answer to the "
                                "registration: the platform could not be reached, answered too slowly or sent "
                                "too much. " + START_AGAIN, 502) from exc
    if answer.status not in (200, 201):
        raise _refused(platform, answer.status, answer.body, token)
    try:
        data = json.loads(answer.body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise RegistrationError(
            f"the platform's registration endpoint {quoted_url(platform.registration_endpoint)} answered "
            f"{answer.status} without a JSON object: {quoted(platform_message(answer.body, token))}",
            "Your learning platform's answer to the registration could not be read.", 502)
    return data


# --- the answer -------------------------------------------------------------------------------
def _identifier(value, column) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an id sent as a number (the specification says string)
    return value if isinstance(value, str) and value and fits(value, column) else None


def read_answer(platform: PlatformConfig, answer: dict, request: dict) -> tuple[str, str | None, list[str]]:
    """client_id, deployment_id (None when the platform gives none yet) and the scopes granted."""
    client_id = _identifier(answer.get("client_id"), Platform.client_id)
    tool = answer.get(TOOL_CONFIGURATION)
    raw_deployment = tool.get("deployment_id") if isinstance(tool, dict) else None
    deployment_id = _identifier(raw_deployment, Deployment.deployment_id)
    if client_id is None or (raw_deployment not in (None, "") and deployment_id is None):
        raise RegistrationError(
            f"registration answer from {quoted(platform.issuer)}: client_id {quoted(answer.get('client_id'))} "
            f"deployment_id {quoted(raw_deployment)} unusable",
            "Your learning platform's answer to the registration has no usable client id or deployment id.", 502)
    scope = answer.get("scope")
    granted = scope.split() if isinstance(scope, str) else request["scope"].split()
    return client_id, deployment_id, granted


def register_tool(openid_configuration, registration_token, store: RegistrationStore, config) -> Registered:
    """The whole registration: platform configuration, request, answer, stored registration."""
    token = check_token(registration_token)
    platform = fetch_configuration(openid_configuration, token, config)
    request = registration_request(platform, config["TOOL_BASE_URL"])
    client_id, deployment_id, granted = read_answer(platform, post_registration(platform, token, request, config),
                                                    request)
    try:
        row, created = save_dynamic_registration(
            store, issuer=platform.issuer, client_id=client_id, deployment_id=deployment_id,
            auth_login_url=platform.authorization_endpoint, auth_token_url=platform.token_endpoint,
            key_set_url=platform.jwks_uri, auth_audience=platform.audience)
    except RegistrationConflict as exc:
        raise RegistrationError(f"registration of {quoted(platform.issuer)} / {quoted(client_id)} not stored: {exc}",
                                f"The platform registered the tool, but the tool cannot keep this registration: "
                                f"{exc}", 409) from exc
    log.info("dynamic registration: iss=%s client_id=%s deployment_id=%s product=%s %s", quoted(platform.issuer),
             quoted(client_id), quoted(deployment_id), quoted(platform.product), "created" if created else "updated")
    return Registered(
        issuer=platform.issuer, client_id=client_id, deployment_id=deployment_id,
        services=[SERVICE_NAMES.get(scope, scope) for scope in granted if scope in SERVICE_NAMES],
        product=platform.product, created=created, active=row.active, platform_origin=platform.origin)
