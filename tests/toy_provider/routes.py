"""The toy service's webhooks, at /webhooks/toy: a JSON list of events, signed with the secret
(`X-Toy-Signature`: HMAC-SHA256 of the body), read into the tool's `IncomingEvent`s."""
from __future__ import annotations

import hmac
import json

from flask import Blueprint, current_app, request

from lti_tool.attendance.events import MEETING_ENDED, MEETING_STARTED, USER_JOINED, USER_LEFT, Batch, IncomingEvent
from lti_tool.webhooks import accept, refuse

from .provider import sign

bp = Blueprint("toy", __name__, url_prefix="/webhooks/toy")
KINDS = {"started": MEETING_STARTED, "ended": MEETING_ENDED, "joined": USER_JOINED, "left": USER_LEFT}


@bp.post("")
def events():
    body = request.get_data(as_text=True)
    given = request.headers.get("X-Toy-Signature", "").encode()
    if not hmac.compare_digest(sign(current_app.config["TOY_SECRET"], body).encode(), given):
        return refuse(401, "bad signature", "toy webhook signature invalid")
    batch = Batch()
    for item in json.loads(body):
        try:
            batch.events.append(IncomingEvent(
                provider="toy", source="webhook", kind=KINDS[item["kind"]], meeting_id=item["room"],
                run_id=item["run"], occurred_at_ms=item["at"], run_started_at_ms=item.get("run_started"),
                external_user_id=item.get("user"), user_name=item.get("name", ""), connection=item.get("tab", ""),
            ))
        except (KeyError, TypeError) as exc:
            batch.refused.append(f"toy event without {exc}")
    return accept(batch, "toy webhook")
