"""Who may open the administration pages, and what they see there.

Two ways in, both ending in an admin ticket (like the room tickets: no cookie, because the LMS
frames the tool and browsers drop third-party cookies):

- **a platform's administrator**: a launch whose own roles include institution or system
  Administrator (lti/roles.py `is_site_administrator`). Their room page shows an
  "Administration" control that trades the room ticket for an admin ticket
  (POST /admin/open). They see their platform only (its issuer): its registrations, its video
  servers, its deliveries and events. Every request checks again that the launch behind the
  ticket is still an administrator's and that the registration is still enabled;
- **the operator**: `ADMIN_TOKEN` (at least 32 characters; unset, this way is closed), typed
  into the sign-in form of /admin or sent as `Authorization: Bearer` to /admin/status. The
  operator sees every platform. Changing the token ends every operator ticket given out.

Tickets come in the same two kinds as the rooms': the admin ticket (ROOM_TICKET_SECONDS) lives
in the page's forms and the `X-Admin-Ticket` header of its script; the page ticket
(PAGE_TICKET_SECONDS) is what the /admin URL carries, and opens pages only.
"""
from __future__ import annotations

import functools
import hashlib
import hmac

from flask import current_app, g, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..exceptions import AccessDenied
from ..extensions import db
from ..lti.roles import is_site_administrator
from ..models import Enrolment
from ..rooms.access import check_origin
from .scope import AdminAccess

TICKET_HEADER = "X-Admin-Ticket"
ADMIN = "admin-ticket-v1"
ADMIN_PAGE = "admin-page-ticket-v1"
LIFETIMES = {ADMIN: "ROOM_TICKET_SECONDS", ADMIN_PAGE: "PAGE_TICKET_SECONDS"}
OPERATOR = "*"


class NotSignedIn(AccessDenied):
    """No admin ticket at all: the sign-in page, not an error page."""


# --- the operator's token ----------------------------------------------------------------------------
def token_fingerprint(token: str) -> str:
    """What an operator ticket remembers of the token (changing the token ends the tickets)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"admin-token:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def operator_token_matches(offered: str | None) -> bool:
    configured = current_app.config.get("ADMIN_TOKEN") or ""
    if not configured or not offered:
        return False
    return hmac.compare_digest(token_fingerprint(offered), token_fingerprint(configured))


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- tickets ---------------------------------------------------------------------------------------
def _serializer(kind: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=kind)


def issue_ticket(access: AdminAccess, kind: str = ADMIN) -> str:
    if access.is_operator:
        payload = {"s": OPERATOR, "k": token_fingerprint(current_app.config["ADMIN_TOKEN"])}
    else:
        payload = {"s": access.issuer, "e": access.enrolment_id}
    return _serializer(kind).dumps(payload)


def page_url(access: AdminAccess, endpoint: str = "admin.overview", **values) -> str:
    return url_for(endpoint, t=issue_ticket(access, ADMIN_PAGE), **values)


def _read_ticket(token: str, kind: str) -> dict:
    try:
        data = _serializer(kind).loads(token, max_age=current_app.config[LIFETIMES[kind]])
    except SignatureExpired as exc:
        raise AccessDenied(f"{kind} expired", "Your administration access has expired: open it again.", 401) from exc
    except BadSignature as exc:
        raise AccessDenied(f"{kind} signature invalid", "Open the administration pages again.", 401) from exc
    if not isinstance(data, dict):
        raise AccessDenied(f"{kind} payload malformed", "Open the administration pages again.", 401)
    return data


def _operator_from(data: dict) -> AdminAccess:
    configured = current_app.config.get("ADMIN_TOKEN") or ""
    if not configured or not hmac.compare_digest(str(data.get("k", "")), token_fingerprint(configured)):
        raise AccessDenied("operator ticket of a token that is no longer the ADMIN_TOKEN",
                           "The operator token has changed: sign in again.", 401)
    return AdminAccess(None, "operator")


def administrator_of(enrolment: Enrolment | None) -> AdminAccess:
    """The access of the person behind this enrolment, if their own latest launch made them a
    platform administrator and their registration is still enabled."""
    if enrolment is None or not is_site_administrator(enrolment.lti_roles or []):
        raise AccessDenied(
            "administration asked by a launch without an institution or system Administrator role",
            "Only the learning platform's administrators can open the tool's administration pages.",
        )
    course = enrolment.resource_link.course
    if current_app.extensions["registrations"].find(course.issuer, course.client_id, fresh=True) is None:
        raise AccessDenied("administrator of a registration that is disabled or deleted",
                           "This learning platform's registration with the tool is disabled.")
    return AdminAccess(course.issuer, enrolment.user.name or "administrator", enrolment.id)


def _access_from(data: dict) -> AdminAccess:
    if data.get("s") == OPERATOR:
        return _operator_from(data)
    try:
        enrolment = db.session.get(Enrolment, int(data.get("e", 0)))
    except (TypeError, ValueError) as exc:
        raise AccessDenied("admin ticket payload malformed", "Open the administration pages again.", 401) from exc
    access = administrator_of(enrolment)
    if access.issuer != data.get("s"):
        raise AccessDenied("admin ticket names another platform", "Open the administration pages again.", 401)
    return access


def _ticket_in_request() -> tuple[str | None, str]:
    header = request.headers.get(TICKET_HEADER)
    if header:
        return header, ADMIN
    if request.method in ("GET", "HEAD"):
        return request.args.get("t"), ADMIN_PAGE
    return request.form.get("t"), ADMIN


def authorise(allow_bearer: bool = False) -> AdminAccess:
    """The access of this request: its admin ticket, or (where allowed) the operator's token."""
    if allow_bearer and request.headers.get("Authorization"):
        if operator_token_matches(bearer_token()):
            return AdminAccess(None, "operator")
        raise AccessDenied("Authorization header that is not the ADMIN_TOKEN", "The operator token is not right.", 401)
    token, kind = _ticket_in_request()
    if not token:
        raise NotSignedIn("no admin ticket", "Sign in to the administration pages.", 401)
    return _access_from(_read_ticket(token, kind))


def admin_view(json: bool = False, bearer: bool = False):
    """The access rule of an admin view `view(access)`: a POST must come from the tool's own
    pages, and every request carries an admin ticket (or, with `bearer`, the operator token)."""

    def decorate(view):
        @functools.wraps(view)
        def checked(**kwargs):
            if request.method == "POST":
                check_origin()
            access = authorise(allow_bearer=bearer)
            g.admin_access = access
            g.admin_ticket = issue_ticket(access)
            return view(access, **kwargs)

        checked.answers_json = json
        return checked

    return decorate
