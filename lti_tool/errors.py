"""One error policy: every error becomes a page a person can read, or JSON for machines, never
a stack trace.

Who gets JSON is decided in one place (web.wants_json: /webhooks/…, the pages' own script, a
request asking for JSON first); JSON errors have one shape, `{"error": "<sentence>"}`. The
exceptions the tool raises on purpose (exceptions.py, providers' `ProviderError`) carry their
status and their sentence; HTTP errors get a friendly sentence; anything else is a bug: logged
with its traceback, answered with a plain 500. (Launch refusals have a page of their own,
registered by the LTI blueprint.)
"""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .access_log import redact_path
from .exceptions import ToolError
from .logsafe import quoted
from .providers.base import ProviderError
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
SOMETHING_WRONG = "Something went wrong on our side. Please try again; if it persists, tell your site administrator."


def answer(status: int, message: str):
    """The error answer: JSON `{"error": message}` for machines, the error page for people."""
    if wants_json():
        return jsonify({"error": message}), status
    return render_template("errors/error.html", message=message, status=status), status


def _logged_path() -> str:
    """The request's path for a log line: quoted, a calendar address's mac hidden."""
    return quoted(redact_path(request.path))


def handle_tool_error(error: ToolError):
    log.warning("%s %s refused (%s): %s", request.method, _logged_path(), error.status, error.reason)
    return answer(error.status, error.message)


def handle_provider_error(error: ProviderError):
    log.error("video provider error: %s: %s", error.__class__.__name__, quoted(error.detail))
    return answer(error.http_status, error.user_message)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    if status >= 400 and status != 404:
        log.info("%s %s -> %s: %s", request.method, _logged_path(), status, quoted(error.description))
    return answer(status, FRIENDLY.get(status, error.description or "Error"))


def handle_unexpected(error: Exception):
    log.exception("unexpected error on %s %s", request.method, _logged_path())
    return answer(500, SOMETHING_WRONG)


def init_app(app) -> None:
    app.register_error_handler(ToolError, handle_tool_error)
    app.register_error_handler(ProviderError, handle_provider_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
