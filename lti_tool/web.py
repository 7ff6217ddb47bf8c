"""Response headers every page needs: embeddable in the LMS, private, no referrer leaks.

Room URLs carry the room ticket, so pages send `Referrer-Policy: no-referrer` (the video
server must not see the ticket) and `Cache-Control: no-store`. The tool is meant to be framed
by the LMS, so it sets no X-Frame-Options.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response
