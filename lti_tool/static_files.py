"""Static files (/static/…) served by WhiteNoise: compressed, cached, with the tool's security
headers.

- **Compressed**: at start, every text file (.js, .css, .svg, .json, .txt, .map) gets a gzip
  copy beside it (`name.gz`, written atomically, only when missing or older than the file and
  only when it saves at least 5 %); WhiteNoise sends it to browsers that accept gzip
  (`Vary: Accept-Encoding`). LiveKit's SDK goes from 610 KB to about 150 KB. A read-only static
  directory is logged and served uncompressed.
- **Cached**: `url_for('static', filename=…)` adds `?v=<hash of the file>`; a request carrying
  the file's current hash is answered `Cache-Control: public, max-age=31536000, immutable`
  (a new version of the file has a new address, so nothing stale is ever kept). Any other
  request for the file gets `public, max-age=STATIC_MAX_AGE` (5 minutes) and is revalidated
  with its ETag / Last-Modified (304).
- **Headers**: the same security headers as every other response (web.security_headers); no
  CSP, as before (it applies to HTML pages), and no `Access-Control-Allow-Origin`.

Files are read once at start (restart after changing them), except in debug mode, where
WhiteNoise looks at the disk on every request.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qs

from flask import Flask
from whitenoise import WhiteNoise

from .web import security_headers

log = logging.getLogger(__name__)

COMPRESSIBLE = {".js", ".css", ".svg", ".json", ".txt", ".map", ".html"}
IMMUTABLE = "public, max-age=31536000, immutable"
STATIC_MAX_AGE = 300


def _files(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix != ".gz" and not path.name.startswith("."):
            yield path


def compress(root: Path) -> None:
    """Write `name.gz` beside each compressible file whose copy is missing or stale."""
    for path in _files(root):
        target = path.with_name(path.name + ".gz")
        if path.suffix not in COMPRESSIBLE:
            continue
        if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
            continue
        data = path.read_bytes()
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        if len(packed) > len(data) * 0.95:
            continue
        try:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".gz-", delete=False) as out:
                out.write(packed)
            os.replace(out.name, target)  # atomic: another worker never reads half a file
        except OSError as exc:
            log.info("static files: cannot write %s (%s); serving it uncompressed", target, exc.strerror)
            return


def versions(root: Path) -> dict[str, str]:
    """Each static file's version (its content's hash), by file name under /static/."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in _files(root)
    }


class StaticFiles:
    """WSGI middleware in front of the app: WhiteNoise for /static/, the long cache for a
    request naming the file's current version."""

    def __init__(self, app: Flask, root: Path):
        headers = security_headers(app.config["TOOL_BASE_URL"])
        self.versions = versions(root)
        self.whitenoise = WhiteNoise(
            app.wsgi_app, root=str(root), prefix="/static/", max_age=STATIC_MAX_AGE,
            autorefresh=app.debug, allow_all_origins=False,
            add_headers_function=lambda h, path, url: [h.setdefault(k, v) for k, v in headers.items()],
        )

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        version = self.versions.get(path[len("/static/"):]) if path.startswith("/static/") else None
        if version is None or parse_qs(environ.get("QUERY_STRING", "")).get("v") != [version]:
            return self.whitenoise(environ, start_response)

        def kept_for_a_year(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != "cache-control"]
            return start_response(status, [*headers, ("Cache-Control", IMMUTABLE)], exc_info)

        return self.whitenoise(environ, kept_for_a_year)


def init_app(app: Flask) -> None:
    root = Path(app.static_folder)
    compress(root)
    static = StaticFiles(app, root)
    app.wsgi_app = static

    @app.url_defaults
    def static_version(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values:
            version = static.versions.get(values.get("filename", ""))
            if version:
                values["v"] = version
