"""Deep linking (LTI Deep Linking 2.0): a teacher's "Select content" becomes the tool's set-up
form, and the form's answer a signed `LtiDeepLinkingResponse` holding one `ltiResourceLink`.

1. `start(validated)` runs after every check of the launch (launch.py). Only a teacher may
   place the activity (roles.room_role: moderator), and the request's deep_linking_settings
   must allow an LTI link (`accept_types`), a place to show it
   (`accept_presentation_document_targets`) and an http(s) `deep_link_return_url`. Then, in
   one transaction, the login's state and nonce are spent and a `DeepLinkRequest` row keeps
   what the answer must go back with: the return URL, the deployment, the `data` claim.
2. The form carries `form_token(row)`: signed with SECRET_KEY under its own salt (never taken
   for a room ticket), naming that row, good for `DEEP_LINK_FORM_SECONDS`. It lives in the
   form only, never in a URL.
3. `open_request(token)` reads it back; `parse_choices(pending, form)` checks the answers field by
   field; `answer(row, choices)` signs the response (RS256 with the tool's newest key and its
   kid) and spends the row with a conditional UPDATE: one request gives at most one response,
   to its own platform, deployment and return URL.

The choices travel as the link's custom parameters (rooms/setup.py) and, with grading on, a
`lineItem` so the platform makes the activity's own grade column.
"""
from __future__ import annotations

import logging
import secrets
import time
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock
from functools import lru_cache

import jwt
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, update

from ..exceptions import AccessDenied
from ..extensions import db
from ..grades.policy import plain_number
from ..logsafe import quoted
from ..models import DeepLinkRequest, utcnow
from ..providers import is_ready, provider_names
from ..providers.base import RoomSettings
from ..rooms import setup as room_setup
from ..rooms.settings_form import contradictions
from . import claims as C
from .errors import LaunchError
from .launch import ValidatedLaunch, consume_login
from .platform_settings import settings_for
from .roles import MODERATOR, room_role

log = logging.getLogger(__name__)

FORM_SALT = "deep-link-form-v1"
RESPONSE_SECONDS = 600
LINK_TYPE = "ltiResourceLink"
SHOWN_IN = ("iframe", "window", "frame")  # where a live-class page can be shown
# The room settings the form offers (RoomSettings names); the rest stay in the room page.
FORM_SETTINGS = ("wait_for_moderator", "everyone_moderator", "record", "auto_start_recording", "mute_on_start",
                 "webcams_only_for_moderator")
MAX_TITLE = 255
LINE_ITEM_TAG = "attendance"
LINE_ITEM_RESOURCE_ID = "live-class"
TRY_AGAIN = "Please close this window and choose “Select content” in your course again."


# --- the request ------------------------------------------------------------------------------
def _refuse(reason: str, message: str, status: int = 400) -> LaunchError:
    return LaunchError(reason, message, status)


def check_request(claims: C.LaunchClaims) -> dict:
    """The deep_linking_settings of a request a teacher may answer; LaunchError otherwise."""
    if room_role(claims.roles) != MODERATOR:
        raise _refuse(
            f"deep linking request by a non-teacher (roles {quoted(claims.roles)})",
            "Only the teachers of this course can add a live class to it.", 403,
        )
    settings = claims.deep_linking_settings
    if not settings:
        raise _refuse("deep linking request without deep_linking_settings", "The learning platform "
                      "sent an incomplete request. " + TRY_AGAIN)
    if LINK_TYPE not in (settings.get("accept_types") or []):
        raise _refuse(f"deep linking accept_types {quoted(settings.get('accept_types'))} lack {LINK_TYPE}",
                      "Here the learning platform accepts other content than a link to a live class. "
                      "Add the live class from the course's “Add an activity or resource” instead.")
    targets = settings.get("accept_presentation_document_targets") or []
    if not set(targets) & set(SHOWN_IN):
        raise _refuse(f"deep linking presentation targets {quoted(targets)} offer none of {SHOWN_IN}",
                      "The learning platform can show this content in no way a live class can use.")
    if not settings.get("deep_link_return_url"):  # its type and scheme: claims.check_claims
        raise _refuse("deep linking request without deep_link_return_url",
                      "The learning platform did not say where to send your choice. " + TRY_AGAIN)
    return settings


def start(validated: ValidatedLaunch) -> DeepLinkRequest:
    """Check the request, spend the login and keep the request, in one transaction."""
    claims = validated.claims
    settings = check_request(claims)
    lifetime = timedelta(seconds=float(current_app.config["DEEP_LINK_FORM_SECONDS"]))
    try:
        consume_login(validated)
        db.session.execute(delete(DeepLinkRequest).where(DeepLinkRequest.expires_at < utcnow() - timedelta(days=1)))
        pending = DeepLinkRequest(
            issuer=claims.issuer, client_id=validated.registration.client_id, deployment_id=claims.deployment_id,
            context_id=claims.context_id, sub=claims.sub, return_url=settings["deep_link_return_url"],
            data=settings.get("data"), title=C.clean_display(settings.get("title"))[:MAX_TITLE],
            expires_at=utcnow() + lifetime,
        )
        db.session.add(pending)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("deep linking request %s: iss=%s sub=%s context=%s", pending.id, quoted(claims.issuer),
             quoted(claims.sub), quoted(claims.context_id))
    return pending


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=FORM_SALT)


def form_token(pending: DeepLinkRequest) -> str:
    return _serializer().dumps({"r": pending.id})


def open_request(token: str | None) -> DeepLinkRequest:
    """The unanswered, unexpired request a form token names; AccessDenied otherwise."""
    gone = "This form has expired. " + TRY_AGAIN
    try:
        data = _serializer().loads(token or "", max_age=current_app.config["DEEP_LINK_FORM_SECONDS"])
        pending = db.session.get(DeepLinkRequest, int(data["r"]))
    except SignatureExpired as exc:
        raise AccessDenied("deep-link form token expired", gone, 401) from exc
    except (BadSignature, KeyError, TypeError, ValueError) as exc:
        raise AccessDenied("deep-link form token missing or forged",
                           "This form did not come from the tool. " + TRY_AGAIN, 403) from exc
    if pending is None or pending.expires_at < utcnow():
        raise AccessDenied("deep-link request unknown or expired", gone, 401)
    if pending.used_at is not None:
        raise AccessDenied(f"deep-link request {pending.id} already answered",
                           "This choice has already been sent to your course. " + TRY_AGAIN, 409)
    return pending


# --- the form ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choices:
    title: str
    setup: room_setup.RoomSetup  # provider None: VIDEO_PROVIDER decides


def provider_options(pending: DeepLinkRequest) -> dict[str, str]:
    """The providers a teacher may choose among, name → label: those configured for this
    platform (its own video settings over the environment's), and only when there is more than
    one to choose from."""
    labels = current_app.extensions["provider_labels"]
    settings = settings_for(pending.issuer, pending.client_id)
    ready = {name: labels.get(name, name) for name in provider_names() if is_ready(name, settings)}
    return ready if len(ready) > 1 else {}


def form_defaults(pending: DeepLinkRequest) -> dict:
    """The form as it first shows: the platform's title, the room settings' defaults, the
    platform's own video service first."""
    defaults, options = RoomSettings(), provider_options(pending)
    provider = settings_for(pending.issuer, pending.client_id).get("VIDEO_PROVIDER") or current_app.config[
        "VIDEO_PROVIDER"]
    values = {"title": pending.title or "Live class", "minutes": "60", "weeks": "1", "grading": True,
              "points": "100", "provider": provider if provider in options or not options else next(iter(options))}
    values.update({name: getattr(defaults, name) for name in FORM_SETTINGS})
    return values


def form_values(form) -> dict:
    """What the person sent, to show again beside the errors."""
    values = {name: (form.get(name) or "").strip() for name in
              ("title", "provider", "date", "time", "timezone", "minutes", "weeks", "points")}
    values.update({name: form.get(name) in ("on", "true", "1") for name in (*FORM_SETTINGS, "grading")})
    return values


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone(name: str) -> tzinfo:
    """The browser's IANA time zone; UTC when the page's script could not say (no script)."""
    return zoneinfo.ZoneInfo(name) if name in _time_zones() else UTC


def _whole(values: dict, name: str, low: int, high: int, errors: dict, what: str) -> int | None:
    try:
        return room_setup.whole_number(values[name], low, high)
    except ValueError:
        errors[name] = f"{what} must be a whole number from {low} to {high}."
        return None


def _parsed(parse, values: dict, name: str, errors: dict, message: str):
    try:
        return parse(values[name])
    except ValueError:
        errors[name] = message
        return None


def _schedule(values: dict, errors: dict) -> dict:
    """The first session from the date, time and time zone fields; none when both are empty."""
    if not values["date"] and not values["time"]:
        return {}
    if values["timezone"] not in ("", "UTC") and values["timezone"] not in _time_zones():
        # Not silently UTC: the page said the browser's zone. Shown again, it says UTC.
        errors["time"] = (f"The tool does not know the time zone {values['timezone']}: the time will be read as "
                          "UTC. Check it and send the form again.")
        values["timezone"] = "UTC"
    day = _parsed(date.fromisoformat, values, "date", errors, "Give the date of the first session (YYYY-MM-DD).")
    at = _parsed(clock.fromisoformat, values, "time", errors, "Give the time the first session starts (HH:MM).")
    minutes = _whole(values, "minutes", 1, room_setup.MAX_SESSION_MINUTES, errors, "The length")
    weeks = _whole(values, "weeks", 1, room_setup.MAX_WEEKS, errors, "The number of weekly sessions")
    if day is None or at is None:
        return {}
    start = datetime.combine(day, at.replace(second=0, microsecond=0), tzinfo=time_zone(values["timezone"]))
    if not room_setup.EARLIEST_YEAR <= start.year <= room_setup.LATEST_YEAR:
        errors["date"] = f"Give a date between {room_setup.EARLIEST_YEAR} and {room_setup.LATEST_YEAR}."
    return {"schedule_start": start, "schedule_minutes": minutes, "schedule_weeks": weeks}


def _grading(values: dict, errors: dict) -> dict:
    if not values["grading"]:
        return {"graded": False}
    try:
        return {"graded": True, "score_maximum": room_setup.parse_points(values["points"])}
    except ValueError:
        errors["points"] = f"Points must be a number above 0, at most {plain_number(room_setup.MAX_POINTS)}."
        return {"graded": True}


def parse_choices(pending: DeepLinkRequest, form) -> tuple[Choices | None, dict, dict]:
    """(choices, errors by field, the values sent): choices is None when errors is not empty."""
    values, errors = form_values(form), {}
    title = C.clean_display(values["title"])
    if not title:
        errors["title"] = "Give the activity a title."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"The title is {len(title)} characters long; at most {MAX_TITLE}."
    options = provider_options(pending)
    if options and values["provider"] not in options:
        errors["provider"] = "Choose one of the video services."
    settings = RoomSettings(**{name: values[name] for name in FORM_SETTINGS})
    for problem in contradictions(settings, frozenset(FORM_SETTINGS)):  # as the room page refuses them
        errors["auto_start_recording"] = problem
    setup = room_setup.RoomSetup(provider=values["provider"] if options else None, settings=settings,
                                 **_schedule(values, errors), **_grading(values, errors))
    return (None if errors else Choices(title, setup)), errors, values


# --- the answer -------------------------------------------------------------------------------
def content_item(choices: Choices) -> dict:
    """The one ltiResourceLink: the choices as custom parameters; with grading on, a lineItem so
    the platform makes the activity's own grade column (and offers submission review)."""
    item = {
        "type": LINK_TYPE,
        "title": choices.title,
        "url": current_app.config["TOOL_BASE_URL"] + "/lti/launch",
        "custom": room_setup.custom_parameters(choices.setup, FORM_SETTINGS),
    }
    if choices.setup.graded:
        item["lineItem"] = {
            "scoreMaximum": choices.setup.score_maximum, "label": choices.title,
            "resourceId": LINE_ITEM_RESOURCE_ID, "tag": LINE_ITEM_TAG,
            "submissionReview": {"reviewableStatus": ["Completed"]},
        }
    return item


def response_claims(pending: DeepLinkRequest, choices: Choices) -> dict:
    now = int(time.time())
    claims = {
        "iss": pending.client_id,
        "aud": pending.issuer,
        "iat": now,
        "exp": now + RESPONSE_SECONDS,
        "nonce": secrets.token_urlsafe(24),
        C.DEPLOYMENT_ID: pending.deployment_id,
        C.MESSAGE_TYPE: C.DEEP_LINKING_RESPONSE,
        C.VERSION: "1.3.0",
        C.DL_CONTENT_ITEMS: [content_item(choices)],
    }
    if pending.data is not None:  # echoed only when the request had it (Moodle sends none)
        claims[C.DL_DATA] = pending.data
    return claims


def answer(pending: DeepLinkRequest, choices: Choices) -> str:
    """The signed response for this request, which is spent by it (AccessDenied when another
    answer came first)."""
    store = current_app.extensions["registrations"]
    registration = store.find(pending.issuer, pending.client_id)
    if registration is None:
        raise AccessDenied(f"deep-link answer: {quoted(pending.issuer)} no longer registered",
                           "This learning platform is no longer registered with the tool.", 403)
    key = store.signing_key_for(registration)
    token = jwt.encode(response_claims(pending, choices), key.private_pem, algorithm="RS256",
                       headers={"kid": key.kid, "typ": "JWT"})
    spent = db.session.execute(
        update(DeepLinkRequest)
        .where(DeepLinkRequest.id == pending.id, DeepLinkRequest.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    db.session.commit()
    if spent != 1:
        raise AccessDenied(f"deep-link request {pending.id} answered concurrently",
                           "This choice has already been sent to your course. " + TRY_AGAIN, 409)
    log.info("deep linking request %s answered: title=%s provider=%s graded=%s", pending.id, quoted(choices.title),
             quoted(choices.setup.provider), choices.setup.graded)
    return token
