"""HTTP endpoints of LTI 1.3: /lti/login, /lti/launch, /lti/deep-link, /lti/register and
/.well-known/jwks.json.

Views parse the request and hand over to login.py, launch.py, launches.py and deep_linking.py
(a deep-linking request answers the set-up form; a submission review opens the reviewed
person's attendance; other launches open the room page); a refused launch
raises `LaunchError`, which errors.py turns into a readable page with its status. Two of them
are not refusals but a page that lets the browser finish the launch: `PlatformStorageNeeded`
(read the binding back from LTI platform storage) and `ResubmitNeeded` (post the launch to the
tool again, same-site, so the browser sends its state cookie).

`/lti/register` is LTI Dynamic Registration (dynamic_registration.py): GET checks the
platform's configuration and asks the administrator to confirm; the confirmation POSTs back and
registers. A refused registration raises `RegistrationError`, answered here with its own page.
"""
from __future__ import annotations

import json
import logging
import math
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for

from ..errors import new_reference
from ..logsafe import quoted
from ..request_log import note_launch, note_outcome
from ..rooms.access import check_origin
from ..rooms.tickets import issue_page_ticket
from ..web import allow_any_framer, browser_cookie_attributes, wants_json
from . import deep_linking
from . import dynamic_registration as registration
from .claims import DEEP_LINKING_REQUEST, SUBMISSION_REVIEW_REQUEST
from .errors import LaunchError, PlatformStorageNeeded, RegistrationError, ResubmitNeeded
from .launch import RESUBMITTED, is_framed, validate_launch
from .launches import check_review, record_launch, reviewed_person
from .login import origin_of, start_login, state_cookie_name, storage_key
from .platform_config import fetch_configuration

log = logging.getLogger(__name__)
bp = Blueprint("lti", __name__)


@bp.route("/lti/login", methods=["GET", "POST"])
def login():
    params = request.values.to_dict()
    login_redirect = start_login(params, current_app.extensions["registrations"], current_app.config)
    if login_redirect.storage_target:
        # The platform offers LTI platform storage (Canvas, D2L, Blackboard; Moodle does not):
        # put the binding there before going on, since the cookie may not come back.
        response = make_response(
            render_template(
                "lti/storage_login.html",
                redirect_url=login_redirect.url,
                storage_target=login_redirect.storage_target,
                platform_origin=login_redirect.platform_origin,
                key=storage_key(login_redirect.state),
                value=login_redirect.cookie_value,
            )
        )
    else:
        response = redirect(login_redirect.url, code=302)
    response.set_cookie(
        login_redirect.cookie_name,
        login_redirect.cookie_value,
        max_age=login_redirect.max_age,
        path="/lti/",
        **browser_cookie_attributes(),
    )
    return response


@bp.route("/lti/launch", methods=["POST"])
def launch():
    validated = validate_launch(
        request.form,
        request.cookies,
        current_app.extensions["registrations"],
        current_app.extensions["platform_keys"],
        current_app.config,
        fetch_dest=request.headers.get("Sec-Fetch-Dest", ""),
    )
    note_launch(validated.claims)
    if validated.claims.message_type == DEEP_LINKING_REQUEST:
        note_outcome("deep_linking")
        # The set-up form is this POST's answer: its token stays out of every URL.
        pending = deep_linking.start(validated)
        response = make_response(_deep_link_form(pending, deep_linking.form_defaults(pending), {}))
    else:
        response = _open_room(validated)
    response.delete_cookie(state_cookie_name(validated.state), path="/lti/", **browser_cookie_attributes())
    return response


def _open_room(validated):
    """A launch of one resource link: its room page, or for a submission review the reviewed
    person's attendance. One redirect to a GET page, so the waiting page can refresh itself."""
    claims = validated.claims
    reviewing = claims.message_type == SUBMISSION_REVIEW_REQUEST
    if reviewing:
        check_review(claims)
    recorded = record_launch(validated)
    note_launch(claims, recorded)
    note_outcome("review" if reviewing else "room")
    ticket = issue_page_ticket(recorded.enrolment.id, recorded.room.id)
    if reviewing:
        student = reviewed_person(claims)
        return redirect(url_for("rooms.review", room_id=recorded.room.id, t=ticket,
                                student=student.public_id if student else ""), code=303)
    return redirect(url_for("rooms.show", room_id=recorded.room.id, t=ticket), code=303)


def _deep_link_form(pending, values: dict, errors: dict):
    return render_template(
        "lti/deep_link_form.html", token=deep_linking.form_token(pending), values=values, errors=errors,
        providers=deep_linking.provider_options(pending), settings=deep_linking.FORM_SETTINGS,
    )


@bp.route("/lti/deep-link", methods=["POST"])
def deep_link_answer():
    """The set-up form's answer: the signed LtiDeepLinkingResponse, posted to the platform by
    the browser (a self-submitting form)."""
    check_origin()
    pending = deep_linking.open_request(request.form.get("dl"))
    choices, errors, values = deep_linking.parse_choices(pending, request.form)
    if errors:
        log.info("deep-link form %s refused: %s", pending.id, quoted(errors, 400))
        return _deep_link_form(pending, values, errors), 400
    response_jwt = deep_linking.answer(pending, choices)
    return render_template("lti/deep_link_return.html", return_url=pending.return_url, response_jwt=response_jwt,
                           title=choices.title)


@bp.route("/lti/register", methods=["GET", "POST"])
def register():
    allow_any_framer()  # the platform's administration page frames it (web.allow_any_framer)
    values = request.form if request.method == "POST" else request.args
    url, token = values.get("openid_configuration", ""), values.get("registration_token")
    config = current_app.config
    if request.method == "POST":
        registered = registration.register_tool(url, token, current_app.extensions["registrations"], config)
        return render_template(
            "lti/registered.html",
            registered=registered,
            platform_name=registration.product_name(registered.product),
            next_step=registration.next_step(registered.product),
        )
    platform = fetch_configuration(url, registration.check_token(token), config)
    return render_template(
        "lti/register.html",
        platform=platform,
        platform_name=registration.product_name(platform.product),
        preview=registration.preview(platform, config["TOOL_BASE_URL"]),
        tool_url=config["TOOL_BASE_URL"],
        openid_configuration=url,
        registration_token=token,
    )


@bp.errorhandler(RegistrationError)
def render_registration_error(error: RegistrationError):
    log.warning("registration refused (%s): %s", error.status, error.reason)
    if wants_json():
        return jsonify({"error": error.message, "platform_message": error.platform_message}), error.status
    return render_template(
        "lti/register_error.html", message=error.message, platform_message=error.platform_message,
        status=error.status,
    ), error.status


@bp.route("/.well-known/jwks.json")
def jwks():
    response = jsonify(current_app.extensions["key_ring"].jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _moodle_activity_launch(login_params: dict) -> str | None:
    """Moodle's `lti_message_hint` is single-use, so a second login with it fails; but it names
    the course module (`{"cmid": 2, …}`), and Moodle's own launch page for that module starts a
    fresh launch — in a new window, where cookies are first-party."""
    try:
        hint = json.loads(login_params.get("lti_message_hint") or "")
    except (ValueError, RecursionError):  # any string a login brought (4 KB of "[" recurses)
        return None
    cmid = hint.get("cmid") if isinstance(hint, dict) else None
    issuer = str(login_params.get("iss") or "").rstrip("/")
    if isinstance(cmid, int) and issuer.startswith(("https://", "http://")):
        return f"{issuer}/mod/lti/launch.php?id={cmid}"
    return None


def relaunch_url(login_params: dict) -> str:
    """Where the "open in a new window" button goes: Moodle's launch page for the activity, or
    else the login URL with the original parameters (platforms whose hints can be reused). A new
    window has no platform frame around it, so platform storage is left out there."""
    moodle = _moodle_activity_launch(login_params)
    if moodle:
        return moodle
    params = {k: v for k, v in login_params.items() if k != "lti_storage_target"}
    return url_for("lti.login", _external=False) + "?" + urlencode(params)


def _framing(fetch_dest: str) -> str:
    """What the browser said about the page it loads: "framed", "window" or "unknown" (no
    Sec-Fetch-Dest: older browsers). The page's script checks for itself in any case."""
    if is_framed(fetch_dest):
        return "framed"
    return "window" if fetch_dest == "document" else "unknown"


@bp.errorhandler(LaunchError)
def render_launch_error(error: LaunchError):
    if isinstance(error, PlatformStorageNeeded):
        log.info("launch: %s", error.reason)
        return render_template(
            "lti/storage_launch.html",
            fields={"id_token": request.form.get("id_token", ""), "state": error.state},
            storage_target=error.storage_target,
            platform_origin=error.platform_origin,
            key=storage_key(error.state),
        )
    if isinstance(error, ResubmitNeeded):
        log.info("launch: %s", error.reason)
        return render_template(
            "lti/resubmit_launch.html",
            fields={"id_token": request.form.get("id_token", ""), "state": error.state, RESUBMITTED: "1"},
        )
    reference = new_reference()
    log.warning("launch refused (%s) ref=%s: %s", error.status, reference, error.reason)
    new_window = relaunch_url(error.relaunch) if error.relaunch else None
    response = make_response(
        render_template(
            "errors/launch.html",
            message=error.user_message,
            new_window_url=new_window,
            cookie_missing=error.cookie_missing,
            framing=_framing(request.headers.get("Sec-Fetch-Dest", "")),
            tool_site=origin_of(current_app.config["TOOL_BASE_URL"]),
            reference=reference,
        ),
        error.status,
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response
