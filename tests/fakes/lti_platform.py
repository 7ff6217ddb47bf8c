"""A fake LTI 1.3 platform that behaves like the Moodle 4.5 captured in tests/fixtures/moodle/.

It serves, over real HTTP on a loopback port, everything a tool talks to: the OIDC authorization
endpoint, the JWKS, the OAuth2 token endpoint, Assignment and Grade Services, Names and Role
Provisioning Services and the deep-linking return page, with Moodle's paths, payload shapes and
rules (60-second id_tokens, one-second score timestamps, short NRPS role names, ...), and the
OpenID configuration with LTI Dynamic Registration (tests/fakes/lti_registration.py) — as
Moodle 4.5 does, or as Canvas or Brightspace do with `FakePlatform(product="canvas")`.

    with FakePlatform(tool_base_url=tool.url, tool_jwks=tool.url + "/.well-known/jwks.json") as lms:
        fields = lms.login_initiation(user="student")   # what Moodle POSTs to the tool's login URL
        form = lms.authorize(tool_redirect_location)   # the browser following the tool's 302
        forged = lms.token_alg_none(user="admin")      # attacks for negative tests
        params = lms.start_registration()              # dynamic registration: the tool's URL's query
        lms.activate(client_id)                        # the administrator enables the new tool
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, request

from tests.fakes.http_server import ServedApp
from tests.fakes.lti_registration import PATHS, RegistrationDesk

MOODLE_CLIENT_ID = "0HhnTZLx91sBpA2"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
SUBMISSION_REVIEW_REQUEST = "LtiSubmissionReviewRequest"

_LTI = "https://purl.imsglobal.org/spec/lti/claim/"
CLAIM_DEPLOYMENT_ID = _LTI + "deployment_id"
CLAIM_TARGET_LINK_URI = _LTI + "target_link_uri"
CLAIM_LIS = _LTI + "lis"
CLAIM_ROLES = _LTI + "roles"
CLAIM_CONTEXT = _LTI + "context"
CLAIM_MESSAGE_TYPE = _LTI + "message_type"
CLAIM_RESOURCE_LINK = _LTI + "resource_link"
CLAIM_EXT = _LTI + "ext"
CLAIM_LAUNCH_PRESENTATION = _LTI + "launch_presentation"
CLAIM_TOOL_PLATFORM = _LTI + "tool_platform"
CLAIM_VERSION = _LTI + "version"
CLAIM_CUSTOM = _LTI + "custom"
CLAIM_BASIC_OUTCOME = "https://purl.imsglobal.org/spec/lti-bo/claim/basicoutcome"
CLAIM_AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
CLAIM_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
CLAIM_DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
CLAIM_DL_CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
CLAIM_DL_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
CLAIM_FOR_USER = _LTI + "for_user"

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTRUCTOR = MEMBERSHIP + "Instructor"
LEARNER = MEMBERSHIP + "Learner"
INSTITUTION_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
SYSTEM_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READ = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READ = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_SCOPES = [SCOPE_LINEITEM, SCOPE_LINEITEM_READ, SCOPE_RESULT_READ, SCOPE_SCORE]
# What Moodle granted the fixture tool: every AGS scope plus NRPS (access_token_response.json).
TOOL_SCOPES = AGS_SCOPES + [SCOPE_NRPS]
# IMS LTI Assignment and Grade Services set to "Use this service for grade sync only": Moodle's
# gradebookservices grants every AGS scope but the line-item one (column management).
GRADE_SYNC_ONLY_SCOPES = [SCOPE_LINEITEM_READ, SCOPE_RESULT_READ, SCOPE_SCORE, SCOPE_NRPS]
SUPPORTED_SCOPES = [
    "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome",
    SCOPE_LINEITEM_READ, SCOPE_RESULT_READ, SCOPE_SCORE, SCOPE_LINEITEM, SCOPE_NRPS,
    "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting",
    "openid",
]

# The custom-parameter substitutions Moodle 4.5 advertises (openid_configuration.json).
MOODLE_SUBSTITUTION_VARIABLES = [
    "basic-lti-launch-request", "ContentItemSelectionRequest", "ToolProxyRegistrationRequest",
    "Context.id", "Context.title", "Context.label", "Context.id.history", "Context.sourcedId",
    "Context.longDescription", "Context.timeFrame.begin", "CourseSection.title",
    "CourseSection.label", "CourseSection.sourcedId", "CourseSection.longDescription",
    "CourseSection.timeFrame.begin", "CourseSection.timeFrame.end", "ResourceLink.id",
    "ResourceLink.title", "ResourceLink.description", "User.id", "User.username",
    "Person.name.full", "Person.name.given", "Person.name.family", "Person.email.primary",
    "Person.sourcedId", "Person.name.middle", "Person.address.street1",
    "Person.address.locality", "Person.address.country", "Person.address.timezone",
    "Person.phone.primary", "Person.phone.mobile", "Person.webaddress", "Membership.role",
    "Result.sourcedId", "Result.autocreate", "BasicOutcome.sourcedId", "BasicOutcome.url",
    "Moodle.Person.userGroupIds",
]

LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP_CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LEGACY_MEMBERSHIP_CONTAINER = "application/vnd.ims.lis.v2.membershipcontainer+json"

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_SECONDS = 3600
ID_TOKEN_SECONDS = 60
# Client assertions from a tool whose clock runs a little ahead should still pass.
ASSERTION_LEEWAY_SECONDS = 5

_HASHES = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}


# --------------------------------------------------------------------------- the course
@dataclass
class User:
    """A Moodle account; `name` is the handle tests use ("teacher"), `sub` Moodle's user id."""

    name: str
    sub: str
    roles: list[str]  # full role URIs, as the id_token carries them
    given_name: str
    family_name: str
    email: str
    username: str
    enrolled: bool = True  # the site admin launches without being enrolled in the course

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def context_roles(self) -> list[str]:
        """Membership roles in NRPS's short form ("Learner", "Instructor")."""
        return [role[len(MEMBERSHIP):] for role in self.roles if role.startswith(MEMBERSHIP)]

    @property
    def gradable(self) -> bool:
        # Moodle grades users enrolled with a gradebook role (student), never teachers.
        return self.enrolled and "Learner" in self.context_roles


@dataclass
class Course:
    id: str
    label: str
    title: str


@dataclass
class ResourceLink:
    """An LTI activity placed in a course; Moodle's cmid is its course-module id."""

    id: str
    course_id: str
    title: str
    description: str = ""
    custom: dict = field(default_factory=dict)
    cmid: int = 0


@dataclass
class LineItem:
    """A grade item; `grades` maps a user's sub to {grade, comment, timestamp, ...}."""

    id: str
    course_id: str
    label: str
    score_maximum: float
    resource_id: str = ""
    tag: str = ""
    resource_link_id: str | None = None
    coupled: bool = False  # the activity's own grade item, which Moodle refuses to delete
    grades: dict = field(default_factory=dict)
    # The deep-linking lineItem's submissionReview: Moodle offers the gradebook's review launch
    # (LtiSubmissionReviewRequest) only for line items that have one.
    submission_review: dict | None = None


@dataclass
class Launch:
    """What Moodle remembers server-side between the login initiation and the auth request."""

    launch_id: str
    user: User
    message_type: str
    course_id: str
    resource_link_id: str | None
    custom: dict
    target_link_uri: str
    for_user: str | None = None  # submission review: whose submission (a user's handle)
    deep_linking: dict = field(default_factory=dict)  # deep_linking_settings overrides
    entry: str = "course"  # deep linking from the course ("Select content") or the activity form


@dataclass
class DeepLinkingRequest:
    """A content selection Moodle has sent and waits to hear back about (contentitem_return)."""

    course_id: str
    user: User
    entry: str  # "course" (the activity is made at once) or "activity_form" (made on saving)
    settings: dict  # the deep_linking_settings claim sent
    answered: bool = False


@dataclass
class AccessToken:
    value: str
    scopes: list[str]
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass(frozen=True)
class ServiceRule:
    """How Moodle admits a request to one services.php resource and method."""

    scopes: tuple[str, ...]  # any one of them will do
    accept: tuple[str, ...] = ()  # GET: Accept absent or exactly one of these
    wildcard_accept: bool = False  # GET: an Accept containing */* passes too
    content_type: tuple[str, ...] = ()  # other methods: the body's media type
    refusal_status: int = 401  # Moodle's answer to no token, a bad one or a missing scope
    needs_type_id: bool = True


# Moodle's resources differ: lineitems and results want their exact container type (not */*),
# and results and memberships answer an authorisation failure with 403 where the others use 401.
LINEITEMS_GET = ServiceRule((SCOPE_LINEITEM, SCOPE_LINEITEM_READ), accept=(LINEITEM_CONTAINER,))
LINEITEMS_POST = ServiceRule((SCOPE_LINEITEM,), content_type=(LINEITEM,))
LINEITEM_GET = ServiceRule((SCOPE_LINEITEM, SCOPE_LINEITEM_READ), accept=(LINEITEM,),
                           wildcard_accept=True)
LINEITEM_PUT = ServiceRule((SCOPE_LINEITEM,), content_type=(LINEITEM,))
LINEITEM_DELETE = ServiceRule((SCOPE_LINEITEM,))
SCORES_POST = ServiceRule((SCOPE_SCORE,), content_type=(SCORE,))
RESULTS_GET = ServiceRule((SCOPE_RESULT_READ,), accept=(RESULT_CONTAINER,), refusal_status=403)
MEMBERSHIPS_GET = ServiceRule((SCOPE_NRPS,),
                              accept=(MEMBERSHIP_CONTAINER, LEGACY_MEMBERSHIP_CONTAINER),
                              wildcard_accept=True, refusal_status=403, needs_type_id=False)


# --------------------------------------------------------------------------- keys and JWTs
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(value: dict) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _b64url_uint(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def encode_jws(header: dict, payload: dict, sign: Callable[[bytes], bytes] | None) -> str:
    """Compact JWS with the header exactly as given: forged tokens need what PyJWT won't write."""
    signing_input = f"{_b64url_json(header)}.{_b64url_json(payload)}"
    signature = sign(signing_input.encode("ascii")) if sign else b""
    return f"{signing_input}.{_b64url(signature)}"


class SigningKey:
    """An RSA 2048 key pair with a Moodle-style kid (20 hex digits)."""

    def __init__(self, kid: str | None = None):
        self.kid = kid or secrets.token_hex(10)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_key(self):
        return self.private_key.public_key()

    @property
    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwk(self) -> dict:
        """The public key with moodle_jwks.json's fields, in its order."""
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA", "alg": "RS256", "kid": self.kid,
            "e": _b64url_uint(numbers.e), "n": _b64url_uint(numbers.n), "use": "sig",
        }

    def signer(self, alg: str = "RS256") -> Callable[[bytes], bytes]:
        digest = _HASHES.get(alg, hashes.SHA256)()
        return lambda data: self.private_key.sign(data, padding.PKCS1v15(), digest)


# --------------------------------------------------------------------------- refusals
class ServiceRefusal(Exception):
    """An HTTP refusal from a platform endpoint: status, a reason for the body, extra headers."""

    def __init__(self, status: int, reason: str, headers: dict | None = None):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or {}


class OAuthError(Exception):
    """A token endpoint refusal, answered as OAuth JSON (`{"error": ...}`)."""

    def __init__(self, error: str, description: str):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class AuthorizationRefused(Exception):
    """The auth endpoint said no; `status` and `message` are what it answered."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _AutoSubmitForm(HTMLParser):
    """Reads the form Moodle's auth.php answers with: its action and hidden fields."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action")
        elif tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""


def auto_submit_form(action: str, fields: dict) -> str:
    inputs = "\n".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}"/>'
        for name, value in fields.items()
    )
    return (
        f'<form action="{html.escape(action)}" name="ltiAuthForm" id="ltiAuthForm" '
        f'method="post" enctype="application/x-www-form-urlencoded">\n{inputs}\n</form>\n'
        '<script type="text/javascript">\n//<![CDATA[\ndocument.ltiAuthForm.submit();\n'
        "//]]>\n</script>\n"
    )


def _json_answer(body, status: int = 200, media_type: str = "application/json",
                 headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers or {},
                    content_type=f"{media_type}; charset=utf-8")


def _number(value):
    """PHP's json_encode writes whole floats like 100.0 as 100: so do we."""
    return int(value) if float(value).is_integer() else value


def _is_numeric(value) -> bool:
    # Moodle tests scores with PHP's is_numeric, which accepts numeric strings too.
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _parse_timestamp(text) -> int | None:
    """Seconds since the epoch, truncated like PHP's strtotime; None when not ISO 8601."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Moodle's server runs in UTC here
    return math.floor(moment.timestamp())


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _media_type(header_value: str | None) -> str:
    return (header_value or "").split(";", 1)[0].strip()


def _check_media_types(rule: ServiceRule) -> None:
    """Moodle's services.php compares the whole Accept or Content-Type header: 400 otherwise."""
    if request.method == "GET":
        asked = (request.headers.get("Accept") or "").strip()
        wildcard = rule.wildcard_accept and "*/*" in asked
        if asked and asked not in rule.accept and not wildcard:
            raise ServiceRefusal(400, f"Unsupported Accept header {asked!r}")
    elif rule.content_type and _media_type(request.content_type) not in rule.content_type:
        raise ServiceRefusal(400, f"Unsupported Content-Type {request.content_type!r}")


def _browser_post(browser, url: str, data: dict):
    """POST a form as a browser would, not following redirects (requests or Flask client)."""
    if isinstance(browser, requests.Session):
        return browser.post(url, data=data, allow_redirects=False)
    return browser.post(url, data=data)


# --------------------------------------------------------------------------- the platform
class FakePlatform:
    """Moodle 4.5 as an LTI 1.3 platform, served on 127.0.0.1 for one test."""

    def __init__(self, tool_base_url: str = "http://localhost", client_id: str = MOODLE_CLIENT_ID,
                 deployment_id: str = "1", tool_jwks=None, signing_key: SigningKey | None = None,
                 product: str = "moodle"):
        # "moodle", or "canvas" / "brightspace": their paths, OpenID configuration and dynamic
        # registration (tests/fakes/lti_registration.py); launches and services stay Moodle's.
        self.product = product
        self.tool_base_url = tool_base_url  # also sets the tool's login and launch URLs
        self.client_id = client_id
        self.deployment_id = deployment_id  # in Moodle also the tool type id (`type_id=`)
        self.tool_jwks = tool_jwks  # URL, zero-argument callable or dict
        self.permitted_scopes = list(TOOL_SCOPES)

        # A suite may pass one pre-made key to every platform: RSA generation costs ~0.1 s.
        self.keys = [signing_key or SigningKey()]
        self.signing_key = self.keys[0]
        self._published_kids: list[str] | None = None

        self.users: dict[str, User] = {}
        self.courses: dict[str, Course] = {}
        self.resource_links: dict[str, ResourceLink] = {}
        self.line_items: dict[str, LineItem] = {}
        self._next_line_item_id = 2
        self._next_cmid = 2
        self._seed_moodle_course()

        self.launches: dict[str, Launch] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.issued_tokens: list[dict] = []
        self.issued_id_tokens: list[str] = []
        self.used_jtis: set[str] = set()
        self.scores: list[dict] = []
        self.deep_link_responses: list[dict] = []
        self.deep_linking_requests: list[DeepLinkingRequest] = []
        self.used_response_nonces: set[str] = set()
        # The administrator's "Accept grades from the tool" for this tool: "never", "always" or
        # "delegate" (Moodle's default, "Delegate to teacher": a deep-linking lineItem decides).
        self.accept_grades = "delegate"
        # Activity forms filled by "Select content" from the activity form, not saved yet.
        self.pending_activity_forms: list[dict] = []
        self.created_activities: list[ResourceLink] = []
        self.requests_log: list[dict] = []
        self.jwks_requests = 0
        self.token_requests = 0
        self.down = False
        self.score_delay_seconds = 0.0
        self.score_requests_started = 0
        self._failures: dict[str, list[tuple[int, int | None]]] = {}
        self.sesskey = secrets.token_urlsafe(8)[:10]
        self.platform_guid = secrets.token_hex(16)
        # The activity page (Moodle's mod/lti/view.php) browser tests open: a function of the
        # query's arguments answering HTML. It is on the platform's own origin, as in Moodle, so
        # the tool's frame-ancestors (the registered platforms) allow it to frame the tool.
        self.activity_page: Callable[[dict], bytes | str] | None = None
        self._lock = threading.RLock()

        self.registration_desk = RegistrationDesk(self)
        self._server = ServedApp(self._build_app())
        self.issuer = self.url = self._server.url
        paths = PATHS[product]
        self.auth_login_url = self.issuer + paths["auth"]
        self.auth_token_url = self.issuer + paths["token"]
        self.key_set_url = self.issuer + paths["jwks"]
        self.openid_configuration_url = self.registration_desk.configuration_url()
        # The aud the token endpoint wants in client assertions: Brightspace names its own in the
        # OpenID configuration (authorization_server); Moodle and Canvas take the token URL.
        self.token_audience = self.issuer + "/d2l/auth/token" if product == "brightspace" else None

    @property
    def tool_base_url(self) -> str:
        return self._tool_base_url

    @tool_base_url.setter
    def tool_base_url(self, url: str) -> None:
        """Point the platform at the tool; the registered redirect URIs start over from it."""
        self._tool_base_url = url.rstrip("/")
        self.tool_login_url = self._tool_base_url + "/lti/login"
        self.default_target_link_uri = self._tool_base_url + "/lti/launch"
        self.redirect_uris = [self.default_target_link_uri]

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakePlatform:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def registration_args(self) -> dict:
        """This platform as one client entry of pylti1p3's tool config (TOOL_CONFIG)."""
        return {
            "client_id": self.client_id,
            "auth_login_url": self.auth_login_url,
            "auth_token_url": self.auth_token_url,
            "key_set_url": self.key_set_url,
            "deployment_ids": [self.deployment_id],
            "default": True,
        }

    def openid_configuration(self) -> dict:
        """The OpenID configuration this product serves (Moodle: openid_configuration.json)."""
        return self.registration_desk.configuration()

    def start_registration(self, **kwargs) -> dict:
        """What the platform adds to the tool's registration URL when an administrator pastes
        it: `openid_configuration` and (not Brightspace) `registration_token`."""
        return self.registration_desk.start(**kwargs)

    def activate(self, client_id: str) -> str:
        """The administrator enables a dynamically registered tool and teachers use it: from now
        on launches and services are this tool's (client id, deployment, redirect URIs, keys,
        scopes granted). Canvas creates the deployment now; returns the deployment id."""
        tool = self.registration_desk.tools[client_id]
        if tool.deployment_id is None:
            tool.deployment_id = (f"{secrets.randbelow(900) + 100}:{secrets.token_hex(20)}" if self.product == "canvas"
                                  else secrets.token_hex(16))
        tool.state = "configured"
        self.client_id, self.deployment_id = tool.client_id, tool.deployment_id
        self.redirect_uris = list(tool.request["redirect_uris"])
        self.tool_login_url = tool.request["initiate_login_uri"]
        self.default_target_link_uri = tool.configuration.get("target_link_uri") or self.default_target_link_uri
        self.tool_jwks = tool.request["jwks_uri"]
        self.permitted_scopes = list(tool.scopes)
        return tool.deployment_id

    def moodle_openid_configuration(self) -> dict:
        """Moodle's openid-configuration.php answer (openid_configuration.json) for this issuer."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.auth_token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "jwks_uri": self.key_set_url,
            "authorization_endpoint": self.auth_login_url,
            "registration_endpoint": self.issuer + "/mod/lti/openid-registration.php",
            "scopes_supported": list(SUPPORTED_SCOPES),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": "moodle",
                "version": "4.5.6 (Build: 20250811)",
                "messages_supported": [
                    {"type": RESOURCE_LINK_REQUEST},
                    {"type": DEEP_LINKING_REQUEST, "placements": ["ContentArea"]},
                ],
                "variables": list(MOODLE_SUBSTITUTION_VARIABLES),
            },
        }

    # ----------------------------------------------------------------- course set-up
    def _seed_moodle_course(self) -> None:
        """The course, people and graded activity of the captured Moodle site."""
        self.add_course("2", "LIVE101", "LTI Live 101")
        self.add_user("teacher", "3", ["Instructor"], "Terry", "Teacher", "teacher1@example.com",
                      username="teacher1")
        self.add_user("student", "4", ["Learner"], "Sam", "Student", "student1@example.com",
                      username="student1")
        self.add_user("student5", "5", ["Learner"], "Sally", "Student", "student2@example.com",
                      username="student2")
        self.add_user("student6", "6", ["Learner"], "Steve", "Student", "student3@example.com",
                      username="student3")
        self.add_user("admin", "2", [INSTITUTION_ADMIN, INSTRUCTOR, SYSTEM_ADMIN], "Admin", "User",
                      "admin@example.com", username="admin", enrolled=False)
        self.add_resource_link("1", "LTI Live Activity", "LTI 1.3 activity for acceptance tests")

    def add_user(self, name: str, sub: str, roles: list[str], given_name: str, family_name: str,
                 email: str, username: str | None = None, enrolled: bool = True) -> User:
        """A person of the site; short role names ("Learner") mean course membership roles."""
        full_roles = [role if "://" in role else MEMBERSHIP + role for role in roles]
        user = User(name, str(sub), full_roles, given_name, family_name, email,
                    username or name, enrolled)
        self.users[name] = user
        return user

    def user(self, name_or_sub: str) -> User:
        """A user by test handle ("student") or, failing that, by Moodle id ("4")."""
        if name_or_sub in self.users:
            return self.users[name_or_sub]
        user = self.user_by_sub(name_or_sub)
        if user is None:
            raise KeyError(f"no user {name_or_sub!r} on the fake platform")
        return user

    def user_by_sub(self, sub) -> User | None:
        return next((user for user in self.users.values() if user.sub == str(sub)), None)

    def add_course(self, course_id: str, label: str, title: str) -> Course:
        course = Course(str(course_id), label, title)
        self.courses[course.id] = course
        return course

    def add_resource_link(self, link_id: str, title: str, description: str = "",
                          course_id: str = "2", custom: dict | None = None,
                          graded: bool = True, score_maximum: float = 100) -> ResourceLink:
        """An activity; a graded one gets its own line item, as Moodle makes one per activity."""
        link = ResourceLink(str(link_id), str(course_id), title, description, dict(custom or {}),
                            self._next_cmid)
        self._next_cmid += 1
        self.resource_links[link.id] = link
        if graded:
            self.add_line_item(title, score_maximum, course_id, resource_link_id=link.id,
                               coupled=True)
        return link

    def add_line_item(self, label: str, score_maximum: float, course_id: str = "2",
                      resource_link_id: str | None = None, resource_id: str = "", tag: str = "",
                      coupled: bool = False) -> LineItem:
        item = LineItem(str(self._next_line_item_id), str(course_id), label, float(score_maximum),
                        resource_id, tag, resource_link_id, coupled)
        self._next_line_item_id += 1
        self.line_items[item.id] = item
        return item

    @property
    def gradebook(self) -> dict:
        """Grades of the default activity's line item (id "2"): sub → {grade, comment, ...}."""
        return self.line_items["2"].grades

    # ----------------------------------------------------------------- URLs
    def lineitems_url(self, course_id: str = "2") -> str:
        return f"{self._lineitems_base(course_id)}?type_id={self.deployment_id}"

    def lineitem_url(self, item_id: str = "2") -> str:
        return f"{self._lineitem_base(item_id)}?type_id={self.deployment_id}"

    def scores_url(self, item_id: str = "2") -> str:
        return f"{self._lineitem_base(item_id)}/scores?type_id={self.deployment_id}"

    def results_url(self, item_id: str = "2") -> str:
        return f"{self._lineitem_base(item_id)}/results?type_id={self.deployment_id}"

    def memberships_url(self, course_id: str = "2") -> str:
        return (f"{self.issuer}/mod/lti/services.php/CourseSection/{course_id}"
                f"/bindings/{self.deployment_id}/memberships")

    def _lineitems_base(self, course_id: str) -> str:
        return f"{self.issuer}/mod/lti/services.php/{course_id}/lineitems"

    def _lineitem_base(self, item_id: str) -> str:
        item = self.line_items.get(str(item_id))
        course_id = item.course_id if item else "2"
        return f"{self._lineitems_base(course_id)}/{item_id}/lineitem"

    # ----------------------------------------------------------------- keys
    def rotate_key(self) -> str:
        """Add a key, sign with it from now on, publish old and new; returns the new kid."""
        with self._lock:
            key = SigningKey()
            self.keys.append(key)
            self.signing_key = key
            return key.kid

    def serve_keys(self, kids: list[str] | None) -> None:
        """Publish only these kids from now on (None: every key)."""
        self._published_kids = None if kids is None else list(kids)

    def jwks(self) -> dict:
        published = [key for key in self.keys
                     if self._published_kids is None or key.kid in self._published_kids]
        return {"keys": [key.jwk() for key in published]}

    def key(self, kid: str) -> SigningKey:
        return next(key for key in self.keys if key.kid == kid)

    # ----------------------------------------------------------------- test controls
    def fail_next(self, n: int = 1, status: int = 503, retry_after: int | None = None,
                  endpoint: str = "services") -> None:
        """Answer the next n requests to `endpoint` ("services", "token" or "jwks") with status."""
        with self._lock:
            self._failures.setdefault(endpoint, []).extend([(status, retry_after)] * n)

    def expire_access_tokens(self) -> None:
        """Make every access token handed out so far expired, as an hour passing would."""
        with self._lock:
            for token in self.access_tokens.values():
                token.expires_at = 0

    def grade_sync_only(self) -> None:
        """The administrator sets IMS LTI Assignment and Grade Services to "Use this service for
        grade sync only": launches list, and tokens carry, no line-item scope."""
        self.permitted_scopes = list(GRADE_SYNC_ONLY_SCOPES)

    # ----------------------------------------------------------------- launching
    def login_initiation(self, user: str = "teacher", resource_link_id: str = "1",
                         context_id: str = "2", message_type: str = RESOURCE_LINK_REQUEST,
                         custom: dict | None = None, target_link_uri: str | None = None,
                         for_user: str | None = None, deep_linking: dict | None = None,
                         entry: str = "course") -> dict:
        """The form fields Moodle POSTs to the tool's login URL; the launch is remembered here.

        Deep linking (`message_type=DEEP_LINKING_REQUEST`): `entry` is where the teacher pressed
        "Select content" ("course" or "activity_form"), `deep_linking` overrides settings of the
        claim (`{"data": "…"}`). Submission review (`SUBMISSION_REVIEW_REQUEST`): `for_user` is
        whose grade was opened; Moodle offers it only for a line item with a submissionReview."""
        account = self.user(user)
        is_deep_link = message_type == DEEP_LINKING_REQUEST
        link = None if is_deep_link else self.resource_links[str(resource_link_id)]
        if message_type == SUBMISSION_REVIEW_REQUEST:
            target_link_uri = target_link_uri or self._review_target(link, for_user)
        launch_id = (f"ltilaunch_ContentItemSelectionRequest{secrets.randbelow(2**31)}"
                     if is_deep_link else f"ltilaunch{link.id}_{secrets.randbelow(2**31)}")
        with self._lock:
            self.launches[launch_id] = Launch(
                launch_id, account, message_type, str(context_id), link.id if link else None,
                dict(custom or {}), target_link_uri or self.default_target_link_uri,
                for_user, dict(deep_linking or {}), entry)
        hint = ({"launchid": launch_id} if is_deep_link
                else {"cmid": link.cmid, "launchid": launch_id})
        return {
            "iss": self.issuer,
            "target_link_uri": target_link_uri or self.default_target_link_uri,
            "login_hint": account.sub,
            "lti_message_hint": json.dumps(hint, separators=(",", ":")),
            "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id,
        }

    def _review_target(self, link: ResourceLink, for_user: str | None) -> str:
        """Moodle shows a grade's review link only when its line item has a submissionReview;
        the launch goes to its url, or ("DEFAULT") to the tool's own launch URL."""
        item = self._line_item_of(link)
        if for_user is None or item is None or item.submission_review is None:
            raise ValueError("Moodle offers no submission review for this activity and user")
        self.user(for_user)
        return item.submission_review.get("url") or self.default_target_link_uri

    def authorize(self, query) -> dict:
        """Be the browser at auth.php: `query` is the tool's redirect (a dict or the Location URL).

        Returns {"id_token", "state", "action"} read from the auto-submitting form; raises
        AuthorizationRefused when the platform refuses.
        """
        if isinstance(query, str):
            answer = requests.get(query, allow_redirects=False, timeout=10)
        else:
            answer = requests.get(self.auth_login_url, params=query, allow_redirects=False,
                                  timeout=10)
        if answer.status_code != 200:
            raise AuthorizationRefused(answer.status_code, answer.text)
        form = _AutoSubmitForm()
        form.feed(answer.text)
        return {"id_token": form.fields.get("id_token"), "state": form.fields.get("state"),
                "action": form.action}

    def launch(self, browser, user: str = "teacher", login_url: str | None = None, **login):
        """A whole launch as a browser makes it; returns the tool's answer to the id_token POST.

        `browser` is a requests.Session (tool served over HTTP) or a Flask test client. Redirects
        are not followed, so the caller sees the tool's own answer.
        """
        fields = self.login_initiation(user=user, **login)
        login_url = login_url or self.tool_login_url
        answer = _browser_post(browser, login_url, fields)
        location = answer.headers.get("Location")
        if answer.status_code not in (302, 303) or not location:
            raise AssertionError(f"tool login answered {answer.status_code} without a redirect")
        form = self.authorize(urljoin(login_url, location))
        return _browser_post(browser, form["action"],
                             {"id_token": form["id_token"], "state": form["state"]})

    # ----------------------------------------------------------------- id_tokens
    def id_token_claims(self, user: str = "teacher", nonce: str | None = None,
                        exp_in: int = ID_TOKEN_SECONDS, iat_offset: int = 0,
                        message_type: str = RESOURCE_LINK_REQUEST, resource_link_id: str = "1",
                        context_id: str = "2",
                        custom: dict | None = None, target_link_uri: str | None = None,
                        for_user: str | None = None, deep_linking: dict | None = None,
                        entry: str = "course") -> dict:
        """The id_token payload Moodle would send, in Moodle's claim order."""
        account = self.user(user)
        course = self.courses[str(context_id)]
        link = (None if message_type == DEEP_LINKING_REQUEST
                else self.resource_links[str(resource_link_id)])
        iat = int(time.time()) + iat_offset
        claims = {
            "nonce": nonce if nonce is not None else secrets.token_hex(32),
            "iat": iat,
            "exp": iat + exp_in,
            "iss": self.issuer,
            "aud": self.client_id,
            CLAIM_DEPLOYMENT_ID: self.deployment_id,
            CLAIM_TARGET_LINK_URI: target_link_uri or self.default_target_link_uri,
            "sub": account.sub,
            CLAIM_LIS: {"person_sourcedid": "", "course_section_sourcedid": ""},
            CLAIM_ROLES: list(account.roles),
            CLAIM_CONTEXT: {"id": course.id, "label": course.label, "title": course.title,
                            "type": ["CourseSection"]},
            CLAIM_MESSAGE_TYPE: message_type,
        }
        if link:
            claims.update(self._resource_link_claims(link, account))
        if for_user is not None:  # Moodle's for_user names the user by id only
            claims[CLAIM_FOR_USER] = {"user_id": self.user(for_user).sub}
        claims.update(self._person_claims(account))
        claims[CLAIM_LAUNCH_PRESENTATION] = self._launch_presentation(course, link, account)
        claims[CLAIM_TOOL_PLATFORM] = {
            "product_family_code": "moodle", "version": "2024100706", "guid": self.platform_guid,
            "name": "harness", "description": "LTI Harness Moodle",
        }
        claims[CLAIM_VERSION] = "1.3.0"
        ags = self._ags_claim(course, link)
        if ags is not None:
            claims[CLAIM_AGS] = ags
        claims[CLAIM_CUSTOM] = {**(link.custom if link else {}), **(custom or {}),
                                "context_memberships_url": self.memberships_url(course.id)}
        claims[CLAIM_NRPS] = {"context_memberships_url": self.memberships_url(course.id),
                              "service_versions": ["1.0", "2.0"]}
        if not link:
            claims[CLAIM_DL_SETTINGS] = _overridden(self._deep_linking_settings(course, entry),
                                                    deep_linking)
        return claims

    def make_id_token(self, user: str = "teacher", nonce: str | None = None,
                      claims: dict | None = None, header: dict | None = None,
                      key: SigningKey | None = None, sign: bool = True,
                      exp_in: int = ID_TOKEN_SECONDS, iat_offset: int = 0,
                      message_type: str = RESOURCE_LINK_REQUEST, resource_link_id: str = "1",
                      context_id: str = "2", custom: dict | None = None,
                      target_link_uri: str | None = None, for_user: str | None = None,
                      deep_linking: dict | None = None, entry: str = "course") -> str:
        """A signed id_token; `claims`/`header` override (a None value deletes the entry)."""
        payload = self.id_token_claims(user, nonce, exp_in, iat_offset, message_type,
                                       resource_link_id, context_id, custom, target_link_uri,
                                       for_user, deep_linking, entry)
        return self.sign_jwt(_overridden(payload, claims), header=header, key=key, sign=sign)

    def sign_jwt(self, payload: dict, header: dict | None = None, key: SigningKey | None = None,
                 sign: bool = True) -> str:
        """Sign like Moodle (header typ, alg, kid); sign=False leaves the signature empty."""
        key = key or self.signing_key
        final_header = _overridden({"typ": "JWT", "alg": "RS256", "kid": key.kid}, header)
        signer = key.signer(final_header.get("alg", "RS256")) if sign else None
        return encode_jws(final_header, payload, signer)

    def token_alg_none(self, **id_token_args) -> str:
        """An unsigned id_token that says so (alg "none"): must never be accepted."""
        payload = self.id_token_claims(**_launch_args(id_token_args))
        header = {"typ": "JWT", "alg": "none"}
        return encode_jws(header, _overridden(payload, id_token_args.get("claims")), None)

    def token_hs256_with_public_key(self, **id_token_args) -> str:
        """The algorithm-confusion attack: HMAC-SHA256 keyed with the platform's public PEM."""
        payload = self.id_token_claims(**_launch_args(id_token_args))
        secret = self.signing_key.public_pem
        header = {"typ": "JWT", "alg": "HS256", "kid": self.signing_key.kid}
        return encode_jws(header, _overridden(payload, id_token_args.get("claims")),
                          lambda data: hmac.new(secret, data, hashlib.sha256).digest())

    def token_signed_by_unknown_key(self, reuse_kid: bool = False, **id_token_args) -> str:
        """Signed by a key the JWKS never publishes; reuse_kid=True claims the real kid."""
        stranger = SigningKey(kid=self.signing_key.kid if reuse_kid else None)
        payload = self.id_token_claims(**_launch_args(id_token_args))
        return self.sign_jwt(_overridden(payload, id_token_args.get("claims")),
                             header=id_token_args.get("header"), key=stranger)

    def _resource_link_claims(self, link: ResourceLink, account: User) -> dict:
        claims = {CLAIM_RESOURCE_LINK: {"title": link.title, "description": link.description,
                                        "id": link.id}}
        if self._line_item_of(link):
            claims[CLAIM_BASIC_OUTCOME] = {
                "lis_result_sourcedid": self._result_sourcedid(link, account),
                "lis_outcome_service_url": self.issuer + "/mod/lti/service.php",
            }
        return claims

    def _result_sourcedid(self, link: ResourceLink, account: User) -> str:
        data = {"instanceid": link.id, "userid": account.sub, "typeid": self.deployment_id,
                "launchid": secrets.randbelow(2**31)}
        digest = hashlib.sha256(json.dumps(data).encode() + self.sesskey.encode()).hexdigest()
        return json.dumps({"data": data, "hash": digest}, separators=(",", ":"))

    @staticmethod
    def _person_claims(account: User) -> dict:
        return {
            "given_name": account.given_name,
            "family_name": account.family_name,
            "name": account.full_name,
            CLAIM_EXT: {"user_username": account.username, "lms": "moodle-2"},
            "email": account.email,
        }

    def _launch_presentation(self, course: Course, link: ResourceLink | None, account: User) -> dict:
        if link is None:  # deep linking opens in Moodle's own dialog: no return URL
            return {"locale": "en"}
        return_url = (f"{self.issuer}/mod/lti/return.php?course={course.id}&launch_container=3"
                      f"&instanceid={link.id}&sesskey={self.sesskey_of(account)}")
        return {"locale": "en", "document_target": "iframe", "return_url": return_url}

    def sesskey_of(self, account: User) -> str:
        """Each person's own Moodle session key, as their launches carry it in return URLs."""
        return hmac.new(self.sesskey.encode(), account.sub.encode(), hashlib.sha256).hexdigest()[:10]

    def _ags_claim(self, course: Course, link: ResourceLink | None) -> dict | None:
        """Moodle's AGS claim lists the scopes the tool's settings grant ("grade sync only":
        no line-item scope); with the service off there is no claim at all."""
        scopes = [scope for scope in AGS_SCOPES if scope in self.permitted_scopes]
        if not scopes:
            return None
        claim = {"scope": scopes, "lineitems": self.lineitems_url(course.id)}
        item = self._line_item_of(link) if link else None
        if item:
            claim["lineitem"] = self.lineitem_url(item.id)
        return claim

    def _line_item_of(self, link: ResourceLink) -> LineItem | None:
        """The activity's line item, when it has exactly one (Moodle sends `lineitem` only then)."""
        items = [item for item in self.line_items.values()
                 if item.resource_link_id == link.id and item.course_id == link.course_id]
        return items[0] if len(items) == 1 else None

    def _deep_linking_settings(self, course: Course, entry: str = "course") -> dict:
        """As the two captured requests: "Select content" from the course
        (id_token_teacher_deeplink.json) or from the activity form, which sends the activity's
        name as typed so far and an empty text (…_from_activity_form.json)."""
        title, text = (("Harness LTI 1.3 Tool", "") if entry == "activity_form"
                       else ("Deep linked item", "from harness"))
        return {
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["frame", "iframe", "window"],
            "accept_copy_advice": False,
            "accept_multiple": True,
            "accept_unsigned": False,
            "auto_create": False,
            "can_confirm": False,
            "deep_link_return_url": self.deep_link_return_url(course.id),
            "title": title,
            "text": text,
        }

    def deep_link_return_url(self, course_id: str = "2") -> str:
        return (f"{self.issuer}/mod/lti/contentitem_return.php?course={course_id}"
                f"&id={self.deployment_id}&sesskey={self.sesskey}")

    # ----------------------------------------------------------------- HTTP app
    def _build_app(self) -> Flask:
        app = Flask(f"fake_lti_platform_{id(self)}")
        app.before_request(self._log_request)
        app.register_error_handler(ServiceRefusal, self._refusal_answer)
        desk = self.registration_desk
        routes = [
            *((paths["jwks"], self._jwks_endpoint, ["GET"]) for paths in PATHS.values()),
            *((paths["auth"], self._authorization_endpoint, ["GET", "POST"]) for paths in PATHS.values()),
            *((paths["token"], self._token_endpoint, ["POST"]) for paths in PATHS.values()),
            *((paths["configuration"], desk.configuration_endpoint, ["GET"]) for paths in PATHS.values()),
            *((paths["registration"], desk.endpoint, ["POST"]) for paths in PATHS.values()),
            ("/mod/lti/contentitem_return.php", self._deep_link_return_endpoint, ["POST"]),
            ("/mod/lti/view.php", self._activity_page_endpoint, ["GET"]),
            ("/mod/lti/services.php/<course_id>/lineitems", self._lineitems_endpoint,
             ["GET", "POST"]),
            ("/mod/lti/services.php/<course_id>/lineitems/<item_id>/lineitem",
             self._lineitem_endpoint, ["GET", "PUT", "DELETE"]),
            ("/mod/lti/services.php/<course_id>/lineitems/<item_id>/lineitem/scores",
             self._scores_endpoint, ["POST"]),
            ("/mod/lti/services.php/<course_id>/lineitems/<item_id>/lineitem/results",
             self._results_endpoint, ["GET"]),
            ("/mod/lti/services.php/CourseSection/<course_id>/bindings/<type_id>/memberships",
             self._memberships_endpoint, ["GET"]),
        ]
        for rule, view, methods in routes:
            endpoint = f"{view.__name__}:{rule}"
            app.add_url_rule(rule, endpoint, self._serialised(view), methods=methods)
        return app

    def _serialised(self, view):
        # The server is threaded; one request at a time keeps counters and gradebook consistent.
        def serialised_view(**kwargs):
            with self._lock:
                return view(**kwargs)
        return serialised_view

    def _log_request(self) -> None:
        self.requests_log.append({
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(),
            "headers": dict(request.headers),
            "body": request.get_data(as_text=True),  # cached, so form parsing still works
        })

    @staticmethod
    def _refusal_answer(refusal: ServiceRefusal) -> Response:
        return Response(refusal.reason, refusal.status, headers=refusal.headers,
                        content_type="text/plain; charset=utf-8")

    def _take_failure(self, endpoint: str) -> None:
        pending = self._failures.get(endpoint)
        if pending:
            status, retry_after = pending.pop(0)
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            raise ServiceRefusal(status, "Injected failure", headers)

    # ----------------------------------------------------------------- JWKS, configuration
    def _activity_page_endpoint(self):
        if self.activity_page is None:
            return Response("no activity page set", status=404)
        return Response(self.activity_page(request.args.to_dict()), mimetype="text/html")

    def activity_url(self, **query) -> str:
        return f"{self.url}/mod/lti/view.php" + (f"?{urlencode(query)}" if query else "")

    def _jwks_endpoint(self):
        self.jwks_requests += 1
        self._take_failure("jwks")
        return _json_answer(self.jwks())

    # ----------------------------------------------------------------- OIDC auth
    def _authorization_endpoint(self):
        params = request.values
        try:
            launch = self._check_auth_request(params)
        except OAuthError as refusal:
            return Response(f"{refusal.error}: {refusal.description}", 400,
                            content_type="text/plain; charset=utf-8")
        claims = self.id_token_claims(
            user=launch.user.name, nonce=params["nonce"], message_type=launch.message_type,
            resource_link_id=launch.resource_link_id, context_id=launch.course_id,
            custom=launch.custom, target_link_uri=launch.target_link_uri,
            for_user=launch.for_user, deep_linking=launch.deep_linking, entry=launch.entry)
        if launch.message_type == DEEP_LINKING_REQUEST:
            self.deep_linking_requests.append(DeepLinkingRequest(
                launch.course_id, launch.user, launch.entry, claims[CLAIM_DL_SETTINGS]))
        id_token = self.sign_jwt(claims)
        self.issued_id_tokens.append(id_token)
        fields = {"id_token": id_token}
        if "state" in params:
            fields["state"] = params["state"]
        return Response(auto_submit_form(params["redirect_uri"], fields),
                        content_type="text/html; charset=utf-8")

    def _check_auth_request(self, params) -> Launch:
        """Moodle's auth.php checks, in its order; the launch id is single-use like its session."""
        for name in ("scope", "response_type", "client_id", "redirect_uri", "login_hint", "nonce"):
            if not params.get(name):
                raise OAuthError("invalid_request", f"missing {name}")
        launch_id = _launch_id_from_hint(params.get("lti_message_hint", ""))
        if params["scope"] != "openid":
            raise OAuthError("invalid_scope", "scope must be openid")
        if params["response_type"] != "id_token":
            raise OAuthError("unsupported_response_type", "response_type must be id_token")
        launch = self.launches.pop(launch_id, None)
        if launch is None:
            raise OAuthError("invalid_request", "unknown or already used lti_message_hint")
        if params["client_id"] != self.client_id:
            raise OAuthError("unauthorized_client", "unknown client_id")
        if params["login_hint"] != launch.user.sub:
            raise OAuthError("access_denied", "login_hint is not the user who launched")
        if params["redirect_uri"] not in self.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this tool")
        if params.get("response_mode") != "form_post":
            raise OAuthError("invalid_request", "Invalid response_mode")
        if params.get("prompt") not in (None, "", "none"):
            raise OAuthError("invalid_request", "Invalid prompt")
        return launch

    # ----------------------------------------------------------------- OAuth2 token
    def _token_endpoint(self):
        self.token_requests += 1
        self._take_failure("token")
        try:
            token = self._grant_access_token()
        except OAuthError as refusal:
            # Moodle answers every token refusal with 400 and a one-field JSON body.
            return _json_answer({"error": refusal.error, "error_description": refusal.description},
                                400, media_type="text/html")
        # Moodle really labels this JSON text/html (access_token_response.json).
        return _json_answer({"access_token": token.value, "token_type": "Bearer",
                             "expires_in": ACCESS_TOKEN_SECONDS, "scope": " ".join(token.scopes)},
                            media_type="text/html")

    def _grant_access_token(self) -> AccessToken:
        if _media_type(request.content_type) != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "the body must be form-urlencoded")
        form = request.form
        for name in ("client_assertion", "client_assertion_type", "grant_type", "scope"):
            if not form.get(name):
                raise OAuthError("invalid_request", f"missing {name}")
        if (form["grant_type"] != "client_credentials"
                or form["client_assertion_type"] != JWT_BEARER):
            raise OAuthError("unsupported_grant_type", "client_credentials with a JWT bearer only")
        self._verify_client_assertion(form["client_assertion"])
        requested = form["scope"].split()
        # Like Moodle, grant what was asked and is permitted; refuse only when nothing is left.
        scopes = [scope for scope in dict.fromkeys(requested) if scope in self.permitted_scopes]
        if not scopes:
            raise OAuthError("invalid_scope", "none of the requested scopes is granted")
        return self._issue_access_token(scopes)

    def _issue_access_token(self, scopes: list[str]) -> AccessToken:
        token = AccessToken(secrets.token_hex(16), scopes, time.time() + ACCESS_TOKEN_SECONDS)
        self.access_tokens[token.value] = token
        self.issued_tokens.append({"access_token": token.value, "scopes": list(scopes),
                                   "expires_at": token.expires_at})
        return token

    def _verify_client_assertion(self, assertion: str) -> dict:
        """RFC 7523 client authentication: the tool's key, iss = sub = client_id, aud, exp, jti."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise OAuthError("invalid_request", f"malformed client_assertion: {error}") from error
        if unverified.get("sub") != self.client_id:
            raise OAuthError("invalid_client", "no tool with this client id (assertion sub)")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_client", "client_assertion must be signed with RS256")
        audiences = [self.token_audience] if self.token_audience else [self.auth_token_url, self.issuer]
        claims = self._decode_tool_jwt(assertion, header, audiences)
        if claims["iss"] != self.client_id:
            raise OAuthError("invalid_client", "assertion iss must be the client id")
        if claims["jti"] in self.used_jtis:
            raise OAuthError("invalid_client", "client_assertion jti already used")
        self.used_jtis.add(claims["jti"])
        return claims

    def _decode_tool_jwt(self, token: str, header: dict, audiences: list[str]) -> dict:
        key = self._tool_public_key(header.get("kid"))
        try:
            return jwt.decode(token, key, algorithms=["RS256"], audience=audiences,
                              leeway=ASSERTION_LEEWAY_SECONDS,
                              options={"require": ["exp", "iss", "aud", "jti"]})
        except jwt.PyJWTError as error:
            raise OAuthError("invalid_client", f"client_assertion rejected: {error}") from error

    def _tool_public_key(self, kid: str | None):
        keys = self._tool_keys()
        matching = [jwk for jwk in keys if kid is None or jwk.get("kid") == kid]
        if kid is None and len(matching) != 1:
            raise OAuthError("invalid_client", "assertion has no kid and the tool has several keys")
        if not matching:
            raise OAuthError("invalid_client", f"no key {kid!r} in the tool's JWKS")
        return jwt.PyJWK(matching[0], algorithm="RS256").key

    def _tool_keys(self) -> list[dict]:
        source = self.tool_jwks
        if source is None:
            raise OAuthError("invalid_client", "the platform knows no public key for this tool")
        try:
            if callable(source):
                jwks = source()
            elif isinstance(source, str):
                jwks = requests.get(source, timeout=5).json()
            else:
                jwks = source
        except (requests.RequestException, ValueError) as error:
            raise OAuthError("invalid_client", f"could not fetch the tool's JWKS: {error}") from error
        return list(jwks.get("keys", []))

    # ----------------------------------------------------------------- deep linking return
    def _deep_link_return_endpoint(self):
        """Where the tool POSTs its LtiDeepLinkingResponse (form field JWT), in the teacher's
        browser. Moodle's contentitem_return.php: the course and tool type of the URL, the
        teacher's sesskey, the JWT verified with the tool's keys (iss = its client id), then
        the content items made into an activity. The fake checks more than Moodle does where
        the specification requires it: aud, nonce (once only), deployment, message type,
        version, the items' shapes, and the `data` of the request echoed."""
        try:
            claims, pending = self._accepted_deep_link_response()
        except ServiceRefusal as refusal:
            return Response(f"Invalid deep linking response: {refusal.reason}", refusal.status,
                            content_type="text/plain; charset=utf-8")
        pending.answered = True
        self.deep_link_responses.append(claims)
        titles = [self._add_content_item(item, pending) for item in claims[CLAIM_DL_CONTENT_ITEMS]]
        done = ("Activity added" if pending.entry == "course"
                else "Content selected: save the activity form to add it")
        items = "".join(f"<li>{html.escape(title)}</li>" for title in titles)
        return Response(f"<!doctype html><title>{done}</title><h1>{done}</h1><ul>{items}</ul>",
                        content_type="text/html; charset=utf-8")

    def _accepted_deep_link_response(self) -> tuple[dict, DeepLinkingRequest]:
        args = request.args
        if args.get("id") != self.deployment_id or args.get("course") not in self.courses:
            raise ServiceRefusal(400, "unknown tool type or course")
        if args.get("sesskey") != self.sesskey:
            raise ServiceRefusal(403, "invalid sesskey")
        token = request.form.get("JWT", "")
        try:
            header = jwt.get_unverified_header(token)
            if not header.get("kid"):
                raise ServiceRefusal(400, "the JWT header has no kid")
            claims = self._decode_tool_jwt_without_jti(token, header)
        except (OAuthError, jwt.PyJWTError) as refusal:
            raise ServiceRefusal(400, str(refusal)) from refusal
        problem = self._deep_link_problem(claims)
        if problem:
            raise ServiceRefusal(400, problem)
        self.used_response_nonces.add(claims["nonce"])
        return claims, self._answered_request(args["course"], claims)

    def _answered_request(self, course_id: str, claims: dict) -> DeepLinkingRequest:
        """The teacher's open content selection this answers: same course, same `data`."""
        sent = claims.get(CLAIM_DL_DATA)
        for pending in self.deep_linking_requests:
            if pending.answered or pending.course_id != course_id:
                continue
            if pending.settings.get("data") == sent:
                self._check_items_fit(pending.settings, claims[CLAIM_DL_CONTENT_ITEMS])
                return pending
        raise ServiceRefusal(400, f"no open content selection in course {course_id} with data {sent!r}")

    @staticmethod
    def _check_items_fit(settings: dict, items: list) -> None:
        if len(items) > 1 and not settings.get("accept_multiple"):
            raise ServiceRefusal(400, "several content items, but accept_multiple was false")
        for item in items:
            if item["type"] not in settings.get("accept_types", []):
                raise ServiceRefusal(400, f"content item type {item['type']!r} was not accepted")

    def _deep_link_problem(self, claims: dict) -> str | None:
        if claims.get(CLAIM_MESSAGE_TYPE) != DEEP_LINKING_RESPONSE:
            return "message_type must be LtiDeepLinkingResponse"
        if claims.get(CLAIM_VERSION) != "1.3.0":
            return "version must be 1.3.0"
        if claims.get(CLAIM_DEPLOYMENT_ID) != self.deployment_id:
            return "unknown deployment_id"
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            return "nonce missing"
        if nonce in self.used_response_nonces:
            return "nonce already used: a replayed response"
        items = claims.get(CLAIM_DL_CONTENT_ITEMS)
        if not isinstance(items, list):
            return "content_items must be a list"
        return next((p for p in map(self._content_item_problem, items) if p), None)

    def _content_item_problem(self, item) -> str | None:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return "a content item without a type"
        if item["type"] != "ltiResourceLink":
            return None
        url = item.get("url")
        if url is not None and not str(url).startswith(self.tool_base_url + "/"):
            return f"the item's url {url!r} is not on the tool"
        custom = item.get("custom", {})
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            # LTI-DL 2.0: custom values are strings (Moodle would store PHP's string of them).
            return "custom must map names to strings"
        line_item = item.get("lineItem")
        if line_item is not None:
            if not isinstance(line_item, dict) or not _is_numeric(line_item.get("scoreMaximum")):
                return "lineItem needs a numeric scoreMaximum"
            if float(line_item["scoreMaximum"]) <= 0:
                return "lineItem scoreMaximum must be more than 0"
            if any(not isinstance(line_item.get(k, ""), str) for k in ("label", "resourceId", "tag")):
                return "lineItem label, resourceId and tag must be strings"
        return None

    def _add_content_item(self, item: dict, pending: DeepLinkingRequest) -> str:
        """Moodle's content_item_to_form: the activity's name, custom parameters and grading
        (a lineItem counts unless the administrator never accepts grades from the tool)."""
        form = {"name": item.get("title") or "Harness LTI 1.3 Tool", "course_id": pending.course_id,
                "custom": dict(item.get("custom") or {}), "line_item": None}
        line_item = item.get("lineItem")
        if self.accept_grades == "always" or (self.accept_grades == "delegate" and line_item):
            form["line_item"] = {"scoreMaximum": 100, **(line_item or {})}
        if pending.entry == "activity_form":
            self.pending_activity_forms.append(form)
        else:
            self._create_activity(form)
        return form["name"]

    def save_activity_form(self) -> ResourceLink:
        """The teacher saves the activity form "Select content" filled in."""
        return self._create_activity(self.pending_activity_forms.pop(0))

    def _create_activity(self, form: dict) -> ResourceLink:
        link_id = str(max(int(k) for k in self.resource_links if k.isdigit()) + 1)
        line_item = form["line_item"]
        link = self.add_resource_link(link_id, form["name"], course_id=form["course_id"],
                                      custom=form["custom"], graded=line_item is not None,
                                      score_maximum=float((line_item or {}).get("scoreMaximum", 100)))
        item = self._line_item_of(link)
        if item is not None:
            item.resource_id = line_item.get("resourceId", "")
            item.tag = line_item.get("tag", "")
            item.submission_review = line_item.get("submissionReview")
        self.created_activities.append(link)
        return link

    def _decode_tool_jwt_without_jti(self, token: str, header: dict) -> dict:
        key = self._tool_public_key(header.get("kid"))
        try:
            return jwt.decode(token, key, algorithms=["RS256"], audience=[self.issuer],
                              issuer=self.client_id, leeway=ASSERTION_LEEWAY_SECONDS,
                              options={"require": ["exp", "iat", "iss", "aud", "nonce"]})
        except jwt.PyJWTError as error:
            raise OAuthError("invalid_client", str(error)) from error

    # ----------------------------------------------------------------- services: admission
    def _admit(self, rule: ServiceRule) -> AccessToken:
        """What every services.php request goes through before its resource runs."""
        self._take_failure("services")
        if self.down:
            raise ServiceRefusal(503, "Service Unavailable")
        _check_media_types(rule)
        if rule.needs_type_id and request.args.get("type_id") != self.deployment_id:
            # Without type_id Moodle takes the request for LTI 2 and finds no tool proxy.
            raise ServiceRefusal(rule.refusal_status, "type_id missing or unknown")
        return self._check_bearer(rule)

    def _check_bearer(self, rule: ServiceRule) -> AccessToken:
        authorization = request.headers.get("Authorization", "")
        token = None
        if authorization.startswith("Bearer "):
            token = self.access_tokens.get(authorization[len("Bearer "):].strip())
        if token is None or token.expired:
            raise ServiceRefusal(rule.refusal_status, "Missing, unknown or expired access token")
        if not set(rule.scopes) & set(token.scopes):
            raise ServiceRefusal(rule.refusal_status, "The access token lacks the scope needed")
        return token

    def _course(self, course_id: str) -> Course:
        if course_id not in self.courses:
            raise ServiceRefusal(404, f"Not Found: Course {course_id} doesn't exist")
        return self.courses[course_id]

    def _line_item(self, course_id: str, item_id: str) -> LineItem:
        self._course(course_id)
        item = self.line_items.get(item_id)
        if item is None or item.course_id != course_id:
            raise ServiceRefusal(404, f"Not Found: Grade item {item_id} doesn't exist")
        return item

    def _json_body(self) -> dict:
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServiceRefusal(400, "The body must be a JSON object")
        return body

    # ----------------------------------------------------------------- AGS: line items
    def _lineitems_endpoint(self, course_id: str):
        if request.method == "POST":
            self._admit(LINEITEMS_POST)
            return self._create_line_item(self._course(course_id))
        self._admit(LINEITEMS_GET)
        self._course(course_id)
        items = [item for item in self.line_items.values()
                 if item.course_id == course_id and _line_item_matches(item, request.args)]
        page, link = self._page(items, self.lineitems_url(course_id), request.args,
                                ("resource_link_id", "resource_id", "tag"))
        return _json_answer([self.line_item_json(item) for item in page], 200, LINEITEM_CONTAINER,
                            link)

    def _create_line_item(self, course: Course):
        body = self._json_body()
        if "label" not in body or not _is_numeric(body.get("scoreMaximum")):
            raise ServiceRefusal(400, "No label or Score Maximum")
        link_id = body.get("resourceLinkId") or body.get("ltiLinkId")
        if link_id is not None and self._link_in_course(str(link_id), course.id) is None:
            raise ServiceRefusal(403, "Invalid LTI id supplied.")
        item = self.add_line_item(body["label"], float(body["scoreMaximum"]), course.id,
                                  str(link_id) if link_id is not None else None,
                                  body.get("resourceId", ""), body.get("tag", ""))
        # Moodle echoes the posted line item with its new id.
        return _json_answer({**body, "id": self.lineitem_url(item.id)}, 201, LINEITEM)

    def _link_in_course(self, link_id: str, course_id: str) -> ResourceLink | None:
        link = self.resource_links.get(link_id)
        return link if link and link.course_id == course_id else None

    def _lineitem_endpoint(self, course_id: str, item_id: str):
        if request.method == "GET":
            self._admit(LINEITEM_GET)
            return _json_answer(self.line_item_json(self._line_item(course_id, item_id)), 200,
                                LINEITEM)
        if request.method == "PUT":
            self._admit(LINEITEM_PUT)
            return self._update_line_item(self._line_item(course_id, item_id))
        self._admit(LINEITEM_DELETE)
        return self._delete_line_item(self._line_item(course_id, item_id))

    def _update_line_item(self, item: LineItem):
        body = self._json_body()
        if "label" not in body or not _is_numeric(body.get("scoreMaximum")):
            raise ServiceRefusal(400, "No label or Score Maximum")
        item.label = body["label"]
        item.score_maximum = float(body["scoreMaximum"])
        item.resource_id = body.get("resourceId", item.resource_id)
        item.tag = body.get("tag", item.tag)
        return _json_answer(self.line_item_json(item), 200, LINEITEM)

    def _delete_line_item(self, item: LineItem):
        if item.coupled:
            raise ServiceRefusal(403, "Cannot delete the line item of an activity")
        del self.line_items[item.id]
        return Response(status=204)

    def line_item_json(self, item: LineItem) -> dict:
        """A line item as Moodle's AGS writes it (ags_lineitem_get.json)."""
        body = {"id": self.lineitem_url(item.id), "label": item.label,
                "scoreMaximum": _number(item.score_maximum), "resourceId": item.resource_id or "",
                "tag": item.tag or ""}
        if item.resource_link_id is not None:
            body["resourceLinkId"] = item.resource_link_id
            body["ltiLinkId"] = item.resource_link_id
        return body

    # ----------------------------------------------------------------- AGS: scores and results
    def _scores_endpoint(self, course_id: str, item_id: str):
        self.score_requests_started += 1
        # A slow gradebook (tests kill workers meanwhile); setting the delay back to 0 releases it.
        waited = 0.0
        while waited < self.score_delay_seconds:
            time.sleep(0.05)
            waited += 0.05
        self._admit(SCORES_POST)
        item = self._line_item(course_id, item_id)
        score = self._json_body()
        problem = _score_problem(score)
        if problem or not self._gradable(score["userId"]):
            raise ServiceRefusal(400, f"Incorrect score received: {problem or 'user not gradable'}")
        self._record_score(item, score)
        # Moodle answers an accepted score with 200 and an empty body.
        return Response(b"", 200, content_type=f"{SCORE}; charset=utf-8")

    def _gradable(self, user_id) -> bool:
        user = self.user_by_sub(user_id)
        return user is not None and user.gradable

    def _record_score(self, item: LineItem, score: dict) -> None:
        """Moodle's rules: later timestamps only (to the second), rescaled, graded only if final."""
        sub = str(score["userId"])
        seconds = _parse_timestamp(score["timestamp"])
        stored = item.grades.get(sub)
        if stored and stored["timemodified"] >= seconds:
            raise ServiceRefusal(409, f"Refusing score with an earlier timestamp for item "
                                      f"{item.id} and user {sub}")
        item.grades[sub] = {
            "grade": self._final_grade(item, score),
            "comment": score.get("comment") or "",
            "timestamp": score["timestamp"],
            "timemodified": seconds,
            "activityProgress": score["activityProgress"],
            "gradingProgress": score["gradingProgress"],
        }
        self.scores.append({"lineitem_id": item.id, **score})

    @staticmethod
    def _final_grade(item: LineItem, score: dict) -> float | None:
        if "scoreGiven" not in score or score["gradingProgress"] != "FullyGraded":
            return None
        given = float(score["scoreGiven"])
        maximum = float(score.get("scoreMaximum", 1))  # Moodle's default when none is sent
        if maximum not in (0.0, item.score_maximum):
            given = given * item.score_maximum / maximum
        # The gradebook bounds a grade to the item's range, to five decimals.
        return round(min(max(given, 0.0), item.score_maximum), 5)

    def _results_endpoint(self, course_id: str, item_id: str):
        self._admit(RESULTS_GET)
        item = self._line_item(course_id, item_id)
        user_filter = request.args.get("user_id")
        entries = [(sub, entry) for sub, entry in item.grades.items()
                   if not user_filter or sub == user_filter]
        page, link = self._page(entries, self.results_url(item.id), request.args, ("user_id",))
        return _json_answer([self._result_json(item, sub, entry) for sub, entry in page], 200,
                            RESULT_CONTAINER, link)

    def _result_json(self, item: LineItem, sub: str, entry: dict) -> dict:
        result = {"id": f"{self.results_url(item.id)}&user_id={sub}", "userId": sub}
        # PHP's empty(): a grade of 0 is reported without score, like an ungraded one.
        if entry["grade"]:
            result["resultScore"] = _number(entry["grade"])
            result["resultMaximum"] = _number(item.score_maximum)
            if entry["comment"]:
                result["comment"] = entry["comment"]
            result["scoreOf"] = self.lineitem_url(item.id)
            result["timestamp"] = _iso(entry["timemodified"])
        return result

    # ----------------------------------------------------------------- NRPS
    def _memberships_endpoint(self, course_id: str, type_id: str):
        self._admit(MEMBERSHIPS_GET)
        course = self._course(course_id)
        if type_id != self.deployment_id:
            raise ServiceRefusal(404, f"Not Found: tool type {type_id}")
        members = [user for user in self._members_of(course)
                   if _has_role(user, request.args.get("role"))]
        page, link = self._page(members, self.memberships_url(course.id), request.args, ("role",))
        body = {"id": self.memberships_url(course.id),
                "context": {"id": course.id, "label": course.label, "title": course.title},
                "members": [_member_json(user) for user in page]}
        return _json_answer(body, 200, MEMBERSHIP_CONTAINER, link)

    def _members_of(self, course: Course) -> list[User]:
        # Every enrolled user is a member of every course of the fake; Moodle lists by name.
        enrolled = [user for user in self.users.values() if user.enrolled]
        return sorted(enrolled, key=lambda user: (user.family_name, user.given_name, user.sub))

    @staticmethod
    def _page(rows: list, base_url: str, args, kept: tuple[str, ...]):
        """Moodle's `limit`/`from` paging: one page and a Link header to the next, if any."""
        try:
            limit = int(args.get("limit", 0))
            start = int(args.get("from", 0)) if limit > 0 else 0
        except ValueError as error:
            raise ServiceRefusal(400, "limit and from must be integers") from error
        if limit <= 0:
            return rows, {}
        page = rows[start:start + limit]
        if start + limit >= len(rows):
            return page, {}
        query = {name: args[name] for name in kept if args.get(name)}
        query.update({"limit": limit, "from": start + limit})
        joiner = "&" if "?" in base_url else "?"
        return page, {"Link": f'<{base_url}{joiner}{urlencode(query)}>; rel="next"'}


# --------------------------------------------------------------------------- small rules
def _overridden(base: dict, overrides: dict | None) -> dict:
    """`base` with `overrides` merged in; an override of None removes the entry."""
    merged = dict(base)
    for name, value in (overrides or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _launch_args(id_token_args: dict) -> dict:
    """The arguments of id_token_claims() among those given to a forging helper."""
    ignored = {"claims", "header", "key", "sign"}
    return {name: value for name, value in id_token_args.items() if name not in ignored}


def _launch_id_from_hint(hint: str) -> str:
    try:
        launch_id = json.loads(hint).get("launchid")
    except (ValueError, AttributeError):
        launch_id = None
    if not launch_id:
        raise OAuthError("invalid_request", "No launch id in LTI hint")
    return launch_id


def _line_item_matches(item: LineItem, args) -> bool:
    link_id = args.get("resource_link_id") or args.get("lti_link_id")
    return ((link_id is None or item.resource_link_id == link_id)
            and (args.get("resource_id") is None or item.resource_id == args["resource_id"])
            and (args.get("tag") is None or item.tag == args["tag"]))


def _score_problem(score: dict) -> str | None:
    """Why Moodle would refuse this score body with 400, or None."""
    for name in ("userId", "timestamp", "gradingProgress", "activityProgress"):
        if score.get(name) is None:
            return f"missing {name}"
    if _parse_timestamp(score["timestamp"]) is None:
        return "timestamp is not ISO 8601"
    for name in ("scoreGiven", "scoreMaximum"):
        if name in score and not _is_numeric(score[name]):
            return f"{name} is not a number"
    return None


def _has_role(user: User, role: str | None) -> bool:
    if not role:
        return True
    short = role[len(MEMBERSHIP):] if role.startswith(MEMBERSHIP) else role
    return short in user.context_roles


def _member_json(user: User) -> dict:
    """One NRPS member, shaped like nrps_context_memberships.json (short role names)."""
    return {
        "status": "Active",
        "roles": user.context_roles,
        "user_id": user.sub,
        "lis_person_sourcedid": "",
        "name": user.full_name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "email": user.email,
        "ext_user_username": user.username,
    }


def query_of(url: str) -> dict:
    """The query of a URL as a flat dict: handy for a tool's redirect Location."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
