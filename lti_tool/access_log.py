"""Access logs that never write the secrets some URLs must carry.

Some secrets can only travel in a URL, because the other side decides so: the page ticket of a
room page (`?t=`), bbb-webhooks' `checksum`, the end callback's `sig`, LTI Dynamic
Registration's `registration_token`, and a calendar address's token (in its path: `/calendar/<feed
id>.<mac>.ics`). Access logs keep URLs for months, so on the tool's own routes (`/rooms/`,
`/webhooks/`, `/lti/`, `/calendar/`) every query value is written as `…`, and a calendar
address's mac too: the log still shows which parameters came (and which feed), never their
values. The Referer header gets the same treatment (the tool's pages send their own address,
page ticket included, to the tool's own routes).

    gunicorn: `gunicorn.conf.py` at the project root sets `logger_class` to `GunicornLogger`;
    `flask --app wsgi serve`: uses `QuietRequestHandler`.

Operators with a proxy in front (nginx, a load balancer) log there too: docs/security.md shows
a format that leaves query strings out.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from werkzeug.serving import WSGIRequestHandler

SENSITIVE_PREFIXES = ("/rooms/", "/webhooks/", "/lti/", "/calendar/")
HIDDEN = "…"
# A calendar address carries its credential in the path (`/calendar/<user id>.<room id>.<mac>.ics`,
# for calendar applications that drop query strings): the mac is hidden, the ids stay.
CALENDAR_TOKEN = re.compile(r"(/calendar/[0-9]+(?:\.[0-9]+)?)\.[A-Za-z0-9_-]+")


def redact_path(path: str) -> str:
    """A path (or URL) with a calendar address's mac hidden: `/calendar/12.3.….ics`."""
    return CALENDAR_TOKEN.sub(rf"\1.{HIDDEN}", path) if "/calendar/" in path else path


def redact_target(target: str) -> str:
    """A request target (`/path?query`) or URL with the query values of sensitive routes hidden
    (and a calendar address's mac)."""
    if not target:
        return target
    target = redact_path(target)
    if "?" not in target:
        return target
    parts = urlsplit(target)
    if not parts.path.startswith(SENSITIVE_PREFIXES):
        return target
    names = [quote(name[:40], safe="") for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    hidden = "&".join(f"{name}={HIDDEN}" for name in names) if names else HIDDEN
    return urlunsplit(parts._replace(query=hidden, fragment=""))


def redact_request_line(line: str) -> str:
    """`GET /rooms/1?t=… HTTP/1.1` with the target redacted."""
    words = line.split(" ")
    if len(words) >= 2:
        words[1] = redact_target(words[1])
    return " ".join(words)


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover - gunicorn is a runtime requirement, but not on every laptop
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger whose access-log atoms carry no secret query values."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = environ.get("PATH_INFO") or ""
        if path.startswith(SENSITIVE_PREFIXES):
            atoms["r"] = redact_request_line(atoms.get("r") or "")
            if atoms.get("q"):
                atoms["q"] = redact_target(f"{path}?{atoms['q']}").partition("?")[2]
            for name in ("{raw_uri}e", "{request_uri}e"):
                if name in atoms:
                    atoms[name] = redact_target(atoms[name])
            if "{query_string}e" in atoms:
                atoms["{query_string}e"] = atoms["q"]
            if atoms.get("U"):
                atoms["U"] = redact_path(atoms["U"])
        for name in ("f", "{referer}i", "{http_referer}e"):
            if name in atoms:
                atoms[name] = redact_target(atoms[name])
        if "{location}o" in atoms:  # a join's redirect carries the video server's join URL
            atoms["{location}o"] = HIDDEN
        return atoms


class QuietRequestHandler(WSGIRequestHandler):
    """The embedded server's request log, with the same redaction."""

    def log_request(self, code="-", size="-"):
        original = getattr(self, "path", None)
        if original is not None:
            self.path = redact_target(original)
        try:
            super().log_request(code, size)
        finally:
            if original is not None:
                self.path = original
