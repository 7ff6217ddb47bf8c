"""What every request and response goes through: body size limits and the security headers.

Body limits: a request announcing a body larger than its route accepts gets 413 before a byte
of the body is read; a body without a Content-Length (chunked) is cut off at the same limit
while it is read. Provider webhooks get `MAX_WEBHOOK_BYTES` (an analytics callback of a big
class is a few hundred kilobytes), everything else `MAX_REQUEST_BYTES`.

Room URLs carry a short-lived page ticket, so pages send `Referrer-Policy: same-origin`: no other
site (the video server, the LMS) ever sees a page's address, while the tool's own forms and
script still send a real `Origin` (under `no-referrer` browsers send `Origin: null`, which the
tool refuses). Pages are `Cache-Control: no-store`. The tool is meant to be framed by the LMS,
so it sets no X-Frame-Options; `frame-ancestors` names who may frame it.
"""
from __future__ import annotations

import io
import secrets

from flask import Flask, abort, current_app, request

from .lti.platform_settings import every_platform_settings
from .providers import all_providers, provider_for

PERMISSIONS_POLICY = (
    # The classroom page uses camera, microphone and screen share; nothing else does, and nothing
    # the tool frames or loads may use them (the LMS's iframe must allow them too).
    "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self), autoplay=(self), "
    "geolocation=(), payment=(), usb=(), serial=(), midi=(), hid=()"
)
HSTS = "max-age=31536000"


def body_limit() -> int:
    """The most bytes this request's route accepts in a body."""
    config = current_app.config
    if request.path.startswith("/webhooks/"):
        return int(config["MAX_WEBHOOK_BYTES"])
    return int(config["MAX_REQUEST_BYTES"])


def wants_json() -> bool:
    """Machines get JSON, people get pages — decided here only: provider callbacks, views that
    speak JSON only, and the pages' own script (it sends the room ticket header or asks for JSON
    first)."""
    # A view that speaks JSON only says so (rooms.access.room_view(json=True)).
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if getattr(view, "answers_json", False) or request.path.startswith("/webhooks/"):
        return True
    if request.headers.get("X-Room-Ticket") or request.headers.get("X-Admin-Ticket"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def browser_cookie_attributes() -> dict:
    """Inside the LMS's iframe the tool's cookies are third-party: over https they must be
    SameSite=None; Secure, and Partitioned (CHIPS) so browsers that block third-party cookies
    still keep them for this LMS. Over plain http (a laptop) browsers refuse SameSite=None."""
    if current_app.config["TOOL_BASE_URL"].startswith("https://"):
        return {"secure": True, "samesite": "None", "partitioned": True, "httponly": True}
    return {"secure": False, "samesite": "Lax", "httponly": True}


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


def csp_nonce() -> str:
    """This response's script nonce: an inline <script nonce="{{ csp_nonce() }}"> runs, no other."""
    # Kept with the request, not `g`: one app context may serve several requests (tests).
    return request.environ.setdefault("lti_tool.csp_nonce", secrets.token_urlsafe(18))


ANY_FRAMER = "lti_tool.any_framer"


def allow_any_framer() -> None:
    """Let any site frame this request's answer, error pages included: the dynamic registration
    pages, which the platform's administration page frames before the platform is registered
    (Canvas frames them from the school's own domain). They hold no credential of anyone's and
    act only on what the platform named in the request answers, so framing them gains nothing."""
    request.environ[ANY_FRAMER] = True


def frame_ancestors() -> list[str]:
    """Who may frame the tool: itself, the registered platforms, and the operator's additions
    (`FRAME_ANCESTORS`, e.g. a Canvas school's own domain, which no registration names)."""
    if request.environ.get(ANY_FRAMER):
        return ["*"]
    extra = current_app.config["FRAME_ANCESTORS"].split()
    return ["'self'", *current_app.extensions["registrations"].platform_origins(), *extra]


def provider_page_sources() -> list[str]:
    """Where the provider pages may connect: the environment's servers and every platform's own
    (platform `set` may name another LiveKit server). Deduplicated, in a stable order."""
    providers = list(all_providers())
    for settings in every_platform_settings():
        providers += [provider_for(name, settings) for name in current_app.extensions["providers"]]
    return list(dict.fromkeys(source for provider in providers for source in provider.page_sources()))


def security_headers(base_url: str) -> dict[str, str]:
    """The headers every response carries, static files included (static_files.py)."""
    headers = {
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def content_security_policy() -> str:
    connect = ["'self'", *provider_page_sources()]
    script = ["'self'", f"'nonce-{csp_nonce()}'"]
    return "; ".join([
        "default-src 'self'",
        f"script-src {' '.join(script)}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        f"connect-src {' '.join(connect)}",
        f"frame-ancestors {' '.join(frame_ancestors())}",
        "base-uri 'none'",
        "object-src 'none'",
    ])


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

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
    def add_security_headers(response):
        headers = response.headers
        for name, value in security_headers(current_app.config["TOOL_BASE_URL"]).items():
            headers.setdefault(name, value)
        if request.endpoint != "static":
            # Pages, JSON and files name people and grades: never kept by a browser or a proxy.
            headers.setdefault("Cache-Control", "no-store")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", content_security_policy())
        return response
