"""One error policy: every error becomes a page a person can read, or JSON for machines, never
a stack trace.

Who gets JSON is decided in one place (web.wants_json: /webhooks/…, the pages' own script, a
request asking for JSON first); JSON errors have one shape, `{"error": "<sentence>"}`. The
exceptions the tool raises on purpose (exceptions.py, providers' `ProviderError`) carry their
status and their sentence; HTTP errors get a friendly sentence; anything else is a bug: logged
with its traceback, answered with a plain 500. (Launch refusals have a page of their own,
registered by the LTI blueprint; it uses `new_reference` too.)

Every error page shows a way on (docs/pages.md):
- a **reference code** (`new_reference`: 8 random characters, e.g. `7KQ2-M9XD`), written in the
  error's log line with the reason (`ref=7KQ2-M9XD`), so support finds the cause from what the
  person quotes;
- **back to the course**: the person's own LMS return URL when the request identified them
  (a room ticket that was checked: `g.room_access`, set by rooms/access.py), never anyone
  else's; otherwise the page says to open the activity again from the course;
- **try again** when trying again can help (503, provider errors, 429, 409): the same address
  for a GET; the room's page (with a fresh page ticket of the person's own) after a form.
"""
from __future__ import annotations

import logging
import secrets

from flask import g, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from .access_log import redact_path
from .exceptions import ToolError
from .logsafe import quoted
from .providers.base import ProviderError
from .rooms.tickets import issue_page_ticket
from .web import wants_json

log = logging.getLogger(__name__)

FRIENDLY = {
    400: "The request could not be understood.",
    401: "You need to open this page from your course.",
    403: "You do not have access to this page.",
    404: "This page does not exist.",
    405: "This address does not accept that kind of request.",
    413: "The request is too large.",
    429: "Too many requests. Please wait a moment and try again.",
}
SOMETHING_WRONG = "Something went wrong on our side. Please try again; if it persists, tell your course's support."
# Statuses where the same request may work a moment later.
WORTH_RETRYING = {409, 429, 500, 502, 503, 504}
# Without ambiguous characters (0/O, 1/I/L): read aloud or typed from a screenshot.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_reference() -> str:
    """A short random code naming one error, for the page and its log line: `7KQ2-M9XD`."""
    code = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"


def _own_return_url() -> str | None:
    """The return URL of the person this request identified (their own checked ticket), if any."""
    access = g.get("room_access")
    return access.enrolment.return_url if access is not None else None


def _retry_url(status: int) -> str | None:
    """Where "Try again" goes, when trying again can help."""
    if status not in WORTH_RETRYING:
        return None
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    access = g.get("room_access")
    if access is None:
        return None
    ticket = issue_page_ticket(access.enrolment.id, access.room.id)
    return url_for("rooms.show", room_id=access.room.id, t=ticket)


def answer(status: int, message: str, reference: str = ""):
    """The error answer: JSON `{"error": message}` for machines, the error page for people."""
    if wants_json():
        return jsonify({"error": message}), status
    page = render_template(
        "errors/error.html", message=message, status=status, reference=reference,
        return_url=_own_return_url(), retry_url=_retry_url(status),
    )
    return page, status


def _logged_path() -> str:
    """The request's path for a log line: quoted, a calendar address's mac hidden."""
    return quoted(redact_path(request.path))


def handle_tool_error(error: ToolError):
    ref = new_reference()
    log.warning("%s %s refused (%s) ref=%s: %s", request.method, _logged_path(), error.status, ref, error.reason)
    return answer(error.status, error.message, ref)


def handle_provider_error(error: ProviderError):
    ref = new_reference()
    log.error("%s %s: video provider error ref=%s: %s: %s", request.method, _logged_path(), ref,
              error.__class__.__name__, quoted(error.detail))
    return answer(error.http_status, error.user_message, ref)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    ref = new_reference()
    if status >= 400:
        log.info("%s %s -> %s ref=%s: %s", request.method, _logged_path(), status, ref, quoted(error.description))
    return answer(status, FRIENDLY.get(status, error.description or "Error"), ref)


def handle_unexpected(error: Exception):
    ref = new_reference()
    log.exception("unexpected error on %s %s ref=%s", request.method, _logged_path(), ref)
    return answer(500, SOMETHING_WRONG, ref)


def init_app(app) -> None:
    app.register_error_handler(ToolError, handle_tool_error)
    app.register_error_handler(ProviderError, handle_provider_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
