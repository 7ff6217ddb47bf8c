"""Names of the LTI 1.3 claims the tool reads, the check of their types and shapes, and a typed
view of a validated launch.

`check_claims()` runs once the signature is verified and before anything is written: every
claim the tool reads must have the type it needs, or the launch is refused (`ClaimError`).
Identifiers (sub, deployment id, context id, resource link id, nonce) are stored and compared as
they are, so one over 255 characters, holding NUL or an unpaired surrogate is refused: cutting
or cleaning it could make two different ids one. Display values (names, email, titles, labels)
are cleaned by `clean_display()` instead. URLs the tool keeps must be http(s) and fit their
1024-character columns.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
RESOURCE_LINK = LTI + "resource_link"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
CUSTOM = LTI + "custom"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
FOR_USER = LTI + "for_user"
TOOL_PLATFORM = LTI + "tool_platform"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
DEEP_LINKING_SETTINGS = DL + "deep_linking_settings"
DL_CONTENT_ITEMS = DL + "content_items"
DL_DATA = DL + "data"

RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
SUBMISSION_REVIEW_REQUEST = "LtiSubmissionReviewRequest"
KNOWN_MESSAGE_TYPES = {RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST, SUBMISSION_REVIEW_REQUEST}
# Messages that launch one resource link (its room): they need resource_link.id and a
# target_link_uri on this tool.
LINK_MESSAGE_TYPES = {RESOURCE_LINK_REQUEST, SUBMISSION_REVIEW_REQUEST}


# The identifier columns (users.sub, courses.context_id, resource_links.resource_link_id, …)
# and the URL columns (rooms.return_url, courses.memberships_url, …) of lti_tool/models.py.
MAX_IDENTIFIER_LENGTH = 255
MAX_URL_LENGTH = 1024

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")  # NUL (PostgreSQL), unpaired surrogates (UTF-8)
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class ClaimError(ValueError):
    """A verified id_token whose claims the tool cannot use as they are; the message says which."""


def clean_display(value) -> str:
    """A display value as the tool stores and shows it: line breaks become spaces, other
    control characters (NUL included) and unpaired surrogates are removed, ends trimmed."""
    if not isinstance(value, str):
        return ""
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", value)).strip()


# --- the checks -----------------------------------------------------------------------------
def _identifier_problem(value) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_IDENTIFIER_LENGTH})"
    if _UNSTORABLE.search(value):
        return "holds NUL or an unpaired surrogate"
    return None


def _text_problem(value) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def url_problem(value) -> str | None:
    problem = _text_problem(value)
    if problem or value == "":
        return problem
    if len(value) > MAX_URL_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_URL_LENGTH})"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.netloc or _CONTROLS.search(value):
        return "is not an http(s) URL"
    return None


def _bool_problem(value) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {type(value).__name__}"


def _object_problem(value) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, not {type(value).__name__}"


def _strings_problem(value, each=_text_problem) -> str | None:
    if not isinstance(value, list):
        return f"must be a list, not {type(value).__name__}"
    problems = (each(entry) for entry in value)
    return next((f"has an entry that {p}" for p in problems if p), None)


def _role_problem(value) -> str | None:
    """A string stored as it is (a role, a scope, deep linking's data): no NUL, no surrogates."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    return "holds NUL or an unpaired surrogate" if _UNSTORABLE.search(value) else None


# What each claim the tool reads must be when present (null counts as absent), objects before
# their members. Presence of the required ones is checked afterwards (launch.py).
CHECKS = [
    (("sub",), _identifier_problem),
    (("nonce",), _identifier_problem),
    (("azp",), _text_problem),
    (("name",), _text_problem),
    (("given_name",), _text_problem),
    (("family_name",), _text_problem),
    (("email",), _text_problem),
    ((VERSION,), _text_problem),
    ((MESSAGE_TYPE,), _text_problem),
    ((DEPLOYMENT_ID,), _identifier_problem),
    ((TARGET_LINK_URI,), _text_problem),
    ((ROLES,), lambda value: _strings_problem(value, _role_problem)),
    ((CONTEXT,), _object_problem),
    ((CONTEXT, "id"), _identifier_problem),
    ((CONTEXT, "label"), _text_problem),
    ((CONTEXT, "title"), _text_problem),
    ((RESOURCE_LINK,), _object_problem),
    ((RESOURCE_LINK, "id"), _identifier_problem),
    ((RESOURCE_LINK, "title"), _text_problem),
    ((LAUNCH_PRESENTATION,), _object_problem),
    # A string, but not necessarily http(s): another scheme is ignored (launches.own_return_url),
    # not a reason to lock the person out.
    ((LAUNCH_PRESENTATION, "return_url"), _text_problem),
    ((LAUNCH_PRESENTATION, "document_target"), _text_problem),
    ((CUSTOM,), _object_problem),
    ((CUSTOM, "provider"), _text_problem),
    ((AGS_ENDPOINT,), _object_problem),
    ((AGS_ENDPOINT, "lineitem"), url_problem),
    ((AGS_ENDPOINT, "lineitems"), url_problem),
    ((AGS_ENDPOINT, "scope"), lambda value: _strings_problem(value, _role_problem)),
    ((NRPS,), _object_problem),
    ((NRPS, "context_memberships_url"), url_problem),
    ((FOR_USER,), _object_problem),
    ((FOR_USER, "user_id"), _identifier_problem),
    ((DEEP_LINKING_SETTINGS,), _object_problem),
    ((DEEP_LINKING_SETTINGS, "deep_link_return_url"), url_problem),
    ((DEEP_LINKING_SETTINGS, "accept_types"), _strings_problem),
    ((DEEP_LINKING_SETTINGS, "accept_presentation_document_targets"), _strings_problem),
    ((DEEP_LINKING_SETTINGS, "accept_multiple"), _bool_problem),
    # Kept until the answer and echoed in it as it came: refused, never cleaned.
    ((DEEP_LINKING_SETTINGS, "data"), _role_problem),
    ((DEEP_LINKING_SETTINGS, "title"), _text_problem),
]


def _read(body: dict, path: tuple[str, ...]):
    value = body
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def check_claims(body: dict) -> None:
    """Raise ClaimError naming the first claim the tool reads that has the wrong type or shape."""
    for path, check in CHECKS:
        value = _read(body, path)
        problem = None if value is None else check(value)
        if problem:
            raise ClaimError(f"claim {'.'.join(path)} {problem}")


def seconds_until(timestamp, now: float) -> float:
    """Seconds from now to a NumericDate claim (exp); infinite when it is not a usable number."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return math.inf
    try:
        return float(timestamp) - now
    except OverflowError:  # an integer too large for a float
        return math.inf


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class LaunchClaims:
    """The parts of a verified id_token the tool uses, with defaults for absent claims."""

    raw: dict

    @property
    def issuer(self) -> str:
        return self.raw["iss"]

    @property
    def sub(self) -> str:
        return self.raw.get("sub") or ""

    @property
    def message_type(self) -> str:
        return self.raw.get(MESSAGE_TYPE) or ""

    @property
    def deployment_id(self) -> str:
        return self.raw.get(DEPLOYMENT_ID) or ""

    def display(self, name: str) -> str:
        """A person's display claim (name, given_name, family_name, email), cleaned."""
        return clean_display(self.raw.get(name))

    @property
    def roles(self) -> list[str]:
        roles = self.raw.get(ROLES)
        return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []

    @property
    def context(self) -> dict:
        return _dict(self.raw.get(CONTEXT))

    @property
    def resource_link(self) -> dict:
        return _dict(self.raw.get(RESOURCE_LINK))

    @property
    def custom(self) -> dict:
        return _dict(self.raw.get(CUSTOM))

    @property
    def context_id(self) -> str:
        return self.context.get("id") or ""

    @property
    def resource_link_id(self) -> str:
        return self.resource_link.get("id") or ""

    @property
    def provider(self) -> str:
        return self.custom.get("provider") or ""

    @property
    def return_url(self) -> str:
        return _dict(self.raw.get(LAUNCH_PRESENTATION)).get("return_url") or ""

    @property
    def document_target(self) -> str:
        return _dict(self.raw.get(LAUNCH_PRESENTATION)).get("document_target") or ""

    @property
    def ags(self) -> dict:
        return _dict(self.raw.get(AGS_ENDPOINT))

    @property
    def ags_scopes(self) -> list[str] | None:
        """The AGS scopes the platform says it grants (the claim's `scope`); None: not said."""
        scopes = self.ags.get("scope")
        return [s for s in scopes if isinstance(s, str)][:20] if isinstance(scopes, list) else None

    @property
    def memberships_url(self) -> str:
        return _dict(self.raw.get(NRPS)).get("context_memberships_url") or ""

    @property
    def product_family(self) -> str:
        """The platform's product (tool_platform's `product_family_code`: "moodle", "canvas", …),
        lower case; "" when the launch does not say (or says it as something else than text)."""
        code = _dict(self.raw.get(TOOL_PLATFORM)).get("product_family_code")
        return clean_display(code).lower()[:64] if isinstance(code, str) else ""

    @property
    def for_user_id(self) -> str:
        """Submission review: the `sub` of the person whose submission is reviewed."""
        return _dict(self.raw.get(FOR_USER)).get("user_id") or ""

    @property
    def deep_linking_settings(self) -> dict:
        return _dict(self.raw.get(DEEP_LINKING_SETTINGS))
