"""Helpers the test modules share (fixtures live in conftest.py): a run of a BBB meeting that
sends what BBB would, the gradebook's scores for one person, signed callbacks, id_token claims.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
from html.parser import HTMLParser
from urllib.parse import urlencode

import jwt
import requests

from lti_tool.extensions import db
from lti_tool.models import Room
from tests.conftest import BBB_SECRET, LIVEKIT_KEY, LIVEKIT_SECRET, row_counts

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
# The tables a launch writes: "nothing written" checks compare their counts.
RECORDS = ("users", "courses", "resource_links", "rooms", "enrolments", "used_nonces")

MINUTE = 60_000


class ClassRun:
    """One run of a room's meeting at the fake BBB, with helpers to send what BBB would."""

    def __init__(self, live, teacher):
        self.live, self.bbb = live, live.bbb
        assert teacher.join().status_code == 302
        with live.app.app_context():
            self.meeting_id = db.session.get(Room, teacher.room_id).meeting_id
        meeting = self.bbb.meetings[self.meeting_id]
        self.t0, self.internal_id = meeting.create_time, meeting.internal_id
        self.hook = live.url + "/webhooks/bbb"

    def at(self, minutes: float) -> int:
        return self.t0 + int(minutes * MINUTE)

    def send(self, *events, **kw):
        response = self.bbb.send_webhook(self.hook, list(events), **kw)
        assert response is not None and response.status_code == 200, response and response.text
        return response

    def created(self):
        return self.bbb.event_meeting_created(self.meeting_id, self.t0, self.internal_id)

    def joined(self, user: str, minutes: float, role="VIEWER"):
        uid = self.live.public_id(user)
        return self.bbb.event_user_joined(self.meeting_id, uid, user, role, self.at(minutes), self.internal_id)

    def left(self, user: str, minutes: float):
        return self.bbb.event_user_left(self.meeting_id, self.live.public_id(user), self.at(minutes), self.internal_id)

    def ended(self, minutes: float):
        return self.bbb.event_meeting_ended(self.meeting_id, self.at(minutes), self.internal_id)


def scores_for(platform, sub: str) -> list[dict]:
    return [s for s in platform.scores if s.get("userId") == sub]


def post_bbb_events(live, events: list) -> requests.Response:
    """A bbb-webhooks 3.4 delivery of `events` (anything JSON), checksummed like the server does."""
    body = urlencode({"domain": "bbb.example.com", "event": json.dumps(events), "timestamp": "1"}).encode()
    hook = live.url + "/webhooks/bbb"
    checksum = hashlib.sha1(hook.encode() + body + BBB_SECRET.encode()).hexdigest()
    return requests.post(f"{hook}?checksum={checksum}", data=body, timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"})


def analytics_token() -> str:
    """BBB's analytics callback token: a Bearer JWT (HS512) signed with the shared secret."""
    with warnings.catch_warnings():  # BBB's 32-character secret is short for HS512: its choice
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode({"exp": int(time.time()) + 3600}, BBB_SECRET, algorithm="HS512")


def livekit_signed(live, body: bytes) -> requests.Response:
    """POST `body` to the tool's LiveKit webhook, signed as LiveKit signs (sha256 claim)."""
    now = int(time.time())
    token = jwt.encode({"iss": LIVEKIT_KEY, "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
                        "nbf": now, "iat": now, "exp": now + 300}, LIVEKIT_SECRET, algorithm="HS256")
    return requests.post(live.url + "/webhooks/livekit", data=body, timeout=30,
                         headers={"Authorization": token, "Content-Type": "application/webhook+json"})


def claims_of(id_token: str) -> dict:
    """The payload of a JWT, unverified (the test made it, or checks what the tool was sent)."""
    return jwt.decode(id_token, options={"verify_signature": False})


def hour_long_class(live):
    teacher = live.launch("teacher")
    live.launch("student")  # sub 4: present the whole class
    live.launch("student5")  # sub 5: present in two pieces
    # student6 (sub 6) never launches: only the roster knows them.
    run = ClassRun(live, teacher)
    run.send(run.created(), run.joined("teacher", 0, "MODERATOR"), run.joined("student", 0))
    run.send(run.joined("student5", 5))
    run.send(run.left("student5", 20))
    run.send(run.joined("student5", 30))
    run.send(run.left("student5", 60), run.left("student", 60), run.left("teacher", 60))
    run.send(run.ended(60))
    return teacher, run


def grades_given_up(live) -> None:
    """An hour-long class whose grades the platform never takes: the platform is down through
    every retry (each backoff let pass at once), so every delivery ends failed. The platform
    stays down; the caller brings it back."""
    from sqlalchemy import update

    from lti_tool.grades import delivery
    from lti_tool.models import ScoreDelivery

    live.platform.down = True
    hour_long_class(live)
    for _ in range(delivery.MAX_ATTEMPTS + 1):
        live.run_worker(passes=1)
        with live.app.app_context():
            db.session.execute(update(ScoreDelivery).where(ScoreDelivery.status == "pending")
                               .values(next_attempt_at=ScoreDelivery.created_at))
            db.session.commit()


def post_analytics(live, body) -> requests.Response:
    return requests.post(live.url + "/webhooks/bbb/analytics", data=json.dumps(body).encode(), timeout=10,
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {analytics_token()}"})


def analytics_body(run: ClassRun, attendees: list[dict]) -> dict:
    def iso(ms):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}+00:00"

    return {
        "version": "1.0", "meeting_id": run.meeting_id, "internal_meeting_id": run.internal_id,
        "data": {"metadata": {}, "duration": 3600, "start": iso(run.at(0)), "finish": iso(run.at(60)),
                 "attendees": [{"name": "X", "moderator": False, "joins": [iso(run.at(a.pop("from")))],
                                "leaves": [iso(run.at(a.pop("to")))], **a} for a in attendees]},
    }


class LaunchAttempt:
    """A real login (state, nonce, cookie) whose id_token the test may swap before posting."""

    def __init__(self, app, lms, as_="teacher", **login):
        self.app, self.lms = app, lms
        self.client = app.test_client()
        self.form = lms.start_login(self.client, as_=as_, **login)
        self.claims = claims_of(self.form["id_token"])
        self.before = row_counts(app)

    def resign(self, claims=None, header=None, **kw) -> str:
        """The platform's own token for this login, with claims changed and signed again."""
        payload = {**self.claims}
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return self.lms.platform.sign_jwt(payload, header=header, **kw)

    def post(self, id_token=None, state=None, headers=None, client=None, **extra):
        data = {
            "id_token": id_token if id_token is not None else self.form["id_token"],
            "state": state if state is not None else self.form["state"],
            **extra,
        }
        data = {k: v for k, v in data.items() if v != ""}
        return (client or self.client).post("/lti/launch", data=data, headers=headers or {})

    def assert_refused(self, response, status=None, text=None):
        body = response.get_data(as_text=True)
        if status:
            assert response.status_code == status, body
        else:
            assert 400 <= response.status_code < 500, (response.status_code, body)
        assert "<h1" in body and "Traceback" not in body
        if text:
            assert text in body
        after = row_counts(self.app)
        for table in RECORDS:
            assert after[table] == self.before[table], f"{table} was written"
        assert after["login_states"] == self.before["login_states"], "the state was spent"


class _Forms(HTMLParser):
    """Every form of a page: its id, action and the values a browser would send as they stand."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"id": attributes.get("id"), "action": attributes.get("action"), "fields": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            kind = attributes.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            default = "on" if kind == "checkbox" else ""
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value") or default


def page_form(html: str, form_id: str | None = None) -> tuple[str, dict]:
    """(action, fields) of a page's form (the first, or the one with this id), as a browser
    would send it without changes: hidden fields, text, ticked boxes and chosen radios."""
    parser = _Forms()
    parser.feed(html)
    form = next(f for f in parser.forms if form_id is None or f["id"] == form_id)
    return form["action"], dict(form["fields"])
