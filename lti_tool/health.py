"""Monitoring: GET /healthz, 200 when the database answers, 503 otherwise (for load balancers);
GET /metrics, Prometheus's text (lti_tool/metrics.py) for the operator's monitoring only.

/metrics is closed to the public: it answers a request bearing `METRICS_TOKEN`
(`Authorization: Bearer …`, compared in constant time) or coming from an address in
`METRICS_ALLOW` (loopback by default); everyone else gets the 404 of an address that does not
exist. Behind a reverse proxy the address is the client's only with `TRUSTED_PROXIES` set; a
request that came through a proxy the tool was not told to trust (it carries X-Forwarded-For)
never counts as local, or every visitor would look like the proxy's own loopback.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import metrics
from .admin.scope import AdminAccess
from .admin.service import backlog
from .extensions import db

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.error("health check: database unreachable: %s", exc)
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})


def _bearer_matches(expected: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode())


def _address_allowed(allowed: str) -> bool:
    if not current_app.config["TRUSTED_PROXIES"] and "X-Forwarded-For" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # a server bound to [::] sees ::ffff:127.0.0.1
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allowed.split())


def may_scrape() -> bool:
    config = current_app.config
    return _bearer_matches(config["METRICS_TOKEN"]) or _address_allowed(config["METRICS_ALLOW"])


@bp.get("/metrics")
def metrics_text():
    if not may_scrape():
        abort(404)
    body = metrics.exposition(lambda: backlog(AdminAccess(None, "metrics")))
    return Response(body, content_type=PROMETHEUS_TEXT)
