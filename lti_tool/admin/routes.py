"""The administration views (/admin): access.py decides who gets in, service.py what they see."""
from __future__ import annotations

import logging
from dataclasses import asdict

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request

from ..exceptions import AccessDenied, InvalidInput
from ..logsafe import quoted
from ..rooms import access as room_access
from ..rooms.access import check_origin
from . import service
from .access import (
    NotSignedIn,
    admin_view,
    administrator_of,
    authorise,
    issue_ticket,
    operator_token_matches,
    page_url,
)
from .scope import AdminAccess

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("")
def overview():
    try:
        access = authorise()
    except NotSignedIn:
        return _sign_in_page()
    g.admin_access, g.admin_ticket = access, issue_ticket(access)
    return render_template("admin/overview.html", **_page_values(access))


def _page_values(access: AdminAccess) -> dict:
    found = service.registrations(access)
    total_failed, failed = service.failed_deliveries(access)
    return {
        "access": access,
        "ticket": g.admin_ticket,
        "registrations": found,
        "servers": service.server_health(access, found),
        "total_failed": total_failed,
        "failed": failed,
        "backlog": service.backlog(access),
        "retried": request.args.get("retried", type=int),
    }


def _sign_in_page(problem: str = "", status: int = 200):
    token_enabled = bool(current_app.config.get("ADMIN_TOKEN"))
    return render_template("admin/sign_in.html", token_enabled=token_enabled, problem=problem), status


@bp.post("/sign-in")
def sign_in():
    """The operator's way in: ADMIN_TOKEN typed into the form."""
    check_origin()
    if not current_app.config.get("ADMIN_TOKEN"):
        raise AccessDenied("operator sign-in while ADMIN_TOKEN is not set",
                           "Signing in with a token is turned off on this installation.")
    if not operator_token_matches(request.form.get("token")):
        log.warning("POST /admin/sign-in refused (401): the token is not the ADMIN_TOKEN")
        return _sign_in_page("That token is not right.", 401)
    log.info("operator signed in to the administration pages")
    return redirect(page_url(AdminAccess(None, "operator")), code=303)


@bp.post("/open")
def open_from_room():
    """A platform administrator's way in: the room page's "Administration" control trades the
    room ticket (a form field) for an admin ticket, if their own launch is an administrator's."""
    check_origin()
    room_id = request.form.get("room", type=int)
    if room_id is None:
        raise InvalidInput(f"no room in the form ({quoted(request.form.get('room'), 40)})",
                           "Open the administration pages from a room page.")
    access = administrator_of(room_access.authorise(room_id).enrolment)
    log.info("administrator of %s opened the administration pages", quoted(access.issuer))
    return redirect(page_url(access), code=303)


@bp.get("/live")
@admin_view()
def live_sections(access: AdminAccess):
    """The parts of the page that change (the page's script fetches them every minute)."""
    return render_template("admin/_live.html", **_page_values(access))


@bp.post("/retry")
@admin_view()
def retry_failed(access: AdminAccess):
    count = service.retry_failed_deliveries(access)
    log.info("%s put %d failed grade deliveries back in the queue", access.who, count)
    return redirect(page_url(access, retried=count), code=303)


@bp.get("/status")
@admin_view(json=True, bearer=True)
def status(access: AdminAccess):
    """The same as the page, for monitoring: `Authorization: Bearer <ADMIN_TOKEN>`."""
    found = service.registrations(access)
    total_failed, failed = service.failed_deliveries(access)
    backlog = service.backlog(access)
    return jsonify({
        "scope": "all platforms" if access.is_operator else access.issuer,
        "registrations": [asdict(r) for r in found],
        "servers": [{"provider": s.provider, "settings_of": s.settings_of, "used_by": s.used_by,
                     "ok": s.health.ok, **asdict(s.health)} for s in service.server_health(access, found)],
        "failed_deliveries": {"total": total_failed, "latest": [asdict(f) for f in failed]},
        "backlog": {**asdict(backlog), "events_waiting": backlog.events_waiting},
    })
