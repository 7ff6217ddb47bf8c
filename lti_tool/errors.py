"""Every error becomes a page a person can read (or JSON for machines), never a stack trace.

Machine endpoints (`/webhooks/…`, JSON requests) get `{"error": …}`; everything else gets the
error page with the status. Unexpected exceptions are logged with their traceback and shown as
a plain 500 page: that is a bug to fix, never something bad input can cause on purpose.
"""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .logsafe import quoted
from .lti.errors import LaunchError
from .lti.routes import render_launch_error
from .providers.base import ProviderError
from .rooms.access import RoomAccessDenied
from .rooms.routes import render_access_denied, render_provider_error
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


def _render(status: int, message: str):
    if wants_json():
        return jsonify({"error": message}), status
    return render_template("errors/error.html", message=message, status=status), status


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    if status >= 400 and status != 404:
        log.info("%s %s -> %s: %s", request.method, quoted(request.path), status, quoted(error.description))
    return _render(status, FRIENDLY.get(status, error.description or "Error"))


def handle_unexpected(error: Exception):
    log.exception("unexpected error on %s %s", request.method, quoted(request.path))
    return _render(500, "Something went wrong on our side. Please try again; if it persists, tell your site administrator.")


def init_app(app) -> None:
    app.register_error_handler(LaunchError, render_launch_error)
    app.register_error_handler(RoomAccessDenied, render_access_denied)
    app.register_error_handler(ProviderError, render_provider_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
