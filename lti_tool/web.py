"""What every request and response goes through: body size limits and the security headers.

Body limits: a request announcing a body larger than its route accepts gets 413 before a byte
of the body is read; a body without a Content-Length (chunked) is cut off at the same limit
while it is read. Provider webhooks get `MAX_WEBHOOK_BYTES` (an analytics callback of a big
class is a few hundred kilobytes), everything else `MAX_REQUEST_BYTES`.

Room URLs carry a short-lived page ticket, so pages send `Referrer-Policy: no-referrer` (the
video server must not see the ticket) and `Cache-Control: no-store`. The tool is meant to be
framed by the LMS, so it sets no X-Frame-Options.
"""
from __future__ import annotations

import io

from flask import Flask, abort, current_app, request


def body_limit() -> int:
    """The most bytes this request's route accepts in a body."""
    config = current_app.config
    if request.path.startswith("/webhooks/"):
        return int(config["MAX_WEBHOOK_BYTES"])
    return int(config["MAX_REQUEST_BYTES"])


def _read_chunked_body(limit: int) -> None:
    """A body without a Content-Length (chunked): the server has decoded it, and Werkzeug would
    read it whole. Read at most `limit` + 1 bytes, refuse more, and hand the rest of the request
    what was read, now with its length."""
    environ = request.environ
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        abort(413)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)


def init_app(app: Flask) -> None:
    @app.before_request
    def limit_body_size():
        limit = body_limit()
        request.max_content_length = limit
        if request.content_length is not None:
            if request.content_length > limit:
                abort(413)
        elif "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            _read_chunked_body(limit)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response
