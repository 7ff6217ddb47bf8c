"""A fake BigBlueButton server that behaves like bbb-web (2.5+/3.0) over real HTTP, for tests.

It checks checksums the way bbb-web does (over the raw query string), keeps meetings, joins,
recordings and bbb-webhooks hooks in memory, answers with XML shaped like the documented
samples, and redirects join errors. Tests steer it with a few controls:

    with FakeBigBlueButton(SECRET) as bbb:
        bbb.fail_next(2)            # the next two API requests answer HTTP 500
        bbb.delay_seconds = 1.0     # a slow server
        bbb.enter("room-1", "u1")   # someone opens the client: the meeting runs
        bbb.count("create")         # how many create requests arrived (failed ones too)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from urllib.parse import quote, quote_plus, urlsplit

import jwt
import requests
import xmltodict
from flask import Flask, Response, redirect, request

from .http_server import ServedApp

ALGORITHM_BY_LENGTH = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}
NAME_MIN, NAME_MAX = 2, 64
MEETING_ID_MIN, MEETING_ID_MAX = 2, 256


class BBBError(Exception):
    """A FAILED answer; `redirect` for join errors, which bbb-web sends as a redirect."""

    def __init__(self, key: str, message: str, redirect: bool = False):
        super().__init__(message)
        self.key, self.message, self.redirect = key, message, redirect


@dataclass
class Participant:
    user_id: str
    full_name: str
    role: str  # MODERATOR or VIEWER


@dataclass
class FakeMeeting:
    meeting_id: str
    name: str
    create_time: int
    attendee_pw: str
    moderator_pw: str
    params: dict
    voice_bridge: str = field(default_factory=lambda: str(70000 + secrets.randbelow(9999)))
    registered: dict = field(default_factory=dict)  # session token -> Participant
    present: dict = field(default_factory=dict)  # user id -> Participant
    has_user_joined: bool = False
    start_time: int = 0

    @property
    def internal_id(self) -> str:
        return hashlib.sha1(self.meeting_id.encode()).hexdigest() + f"-{self.create_time}"

    @property
    def metadata(self) -> dict:
        # getMeetingInfo lists meta_* keys lower-cased, without the prefix.
        return {k[5:].lower(): v for k, v in self.params.items() if k.startswith("meta_")}

    @property
    def running(self) -> bool:
        return bool(self.present)


@dataclass
class FakeRecording:
    record_id: str
    meeting_id: str
    name: str
    published: bool
    state: str
    start_time: int
    end_time: int
    participants: int
    playback: list  # [(type, url)]
    metadata: dict


class FakeBigBlueButton:
    def __init__(
        self,
        secret: str,
        allowed_algorithms=("sha1", "sha256", "sha384", "sha512"),
        accept_passwordless_duplicate: bool = True,
    ):
        self.secret = secret
        self.allowed_algorithms = tuple(allowed_algorithms)
        # False imitates the 2.4–2.6 controllers that refuse a repeated password-less create.
        self.accept_passwordless_duplicate = accept_passwordless_duplicate
        self.delay_seconds = 0.0
        self.meetings: dict[str, FakeMeeting] = {}
        self.recordings: list[FakeRecording] = []
        self.hooks: dict[str, dict] = {}
        self.joins: list[Participant] = []  # every successful join, in order
        self.calls: list[tuple[str, dict]] = []
        self._failures: list[int] = []
        self._last_create_time = 0
        self._next_hook_id = 1
        self._lock = threading.RLock()
        self.app = self._build_app()
        self._served = ServedApp(self.app)
        self.url = self._served.url
        self.api_url = self.url + "/bigbluebutton/api/"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeBigBlueButton:
        self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> FakeBigBlueButton:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------

    def count(self, call_name: str) -> int:
        with self._lock:
            return sum(1 for name, _ in self.calls if name == call_name)

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next `n` API requests answer with HTTP `status` and do nothing."""
        with self._lock:
            self._failures.extend([status] * n)

    def enter(self, meeting_id: str, user_id: str, full_name: str = "", role: str = "VIEWER") -> None:
        """Someone opens the HTML5 client: from now on the meeting runs."""
        with self._lock:
            meeting = self.meetings[meeting_id]
            known = next((p for p in meeting.registered.values() if p.user_id == user_id), None)
            self._enter(meeting, known or Participant(user_id, full_name or user_id, role))

    def leave(self, meeting_id: str, user_id: str) -> None:
        with self._lock:
            self.meetings[meeting_id].present.pop(user_id, None)

    def expire(self, meeting_id: str) -> None:
        """The meeting disappears, as BBB removes an empty meeting after a while."""
        with self._lock:
            self.meetings.pop(meeting_id, None)

    def add_recording(
        self,
        meeting_id: str,
        record_id: str | None = None,
        name: str = "Recorded class",
        published: bool = True,
        participants: int = 2,
        formats=("presentation",),
    ) -> str:
        """Add a processed recording of `meeting_id`; returns its record id."""
        start = self._new_create_time()
        record_id = record_id or hashlib.sha1(meeting_id.encode()).hexdigest() + f"-{start}"
        playback = [(kind, f"{self.url}/playback/{kind}/2.3/{record_id}") for kind in formats]
        state = "published" if published else "unpublished"
        recording = FakeRecording(
            record_id, meeting_id, name, published, state, start, start + 3_600_000, participants,
            playback, {"meetingId": meeting_id, "meetingName": name, "isBreakout": "false"},
        )
        with self._lock:
            self.recordings.append(recording)
        return record_id

    def record_run(self, meeting_id: str, minutes: int = 45, published: bool = True) -> str:
        """The recording BBB makes of the meeting's latest run once it is processed: its record id
        is the run's internal meeting id, it starts at the run's createTime. Returns the id."""
        with self._lock:
            meeting = self.meetings.get(meeting_id)
            create_time = meeting.create_time if meeting else self._last_create_time
            record_id = meeting.internal_id if meeting else self._callback_internal_id(meeting_id, create_time)
            name = meeting.name if meeting else self._create_params(meeting_id).get("name", meeting_id)
            url = f"{self.url}/playback/presentation/2.3/{record_id}"
            self.recordings.append(FakeRecording(
                record_id, meeting_id, name, published, "published" if published else "unpublished",
                create_time, create_time + minutes * 60_000, 2, [("presentation", url)],
                {"meetingId": meeting_id, "meetingName": name, "isBreakout": "false"},
            ))
        return record_id

    def recording(self, record_id: str) -> FakeRecording | None:
        with self._lock:
            return next((r for r in self.recordings if r.record_id == record_id), None)

    # -- HTTP --------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.add_url_rule("/", "home", self._home)
        app.add_url_rule("/bigbluebutton/api", "version", self._version)
        app.add_url_rule("/bigbluebutton/api/", "version_slash", self._version)
        app.add_url_rule("/bigbluebutton/api/<path:call>", "api", self._api, methods=["GET", "POST"])
        app.add_url_rule("/html5client/join", "html5client", self._html5client)
        return app

    def _home(self) -> Response:
        # The default logout URL: join error redirects land here with ?errors=[…].
        return Response("BigBlueButton fake: logged out", mimetype="text/plain")

    def _version(self) -> Response:
        return _xml({"returncode": "SUCCESS", "version": "2.0", "apiVersion": "2.0", "bbbVersion": "3.0.0"})

    def _html5client(self) -> Response:
        token = request.args.get("sessionToken", "")
        with self._lock:
            for meeting in self.meetings.values():
                if token in meeting.registered:
                    self._enter(meeting, meeting.registered[token])
                    return Response(f"In meeting {meeting.name}", mimetype="text/plain")
        return Response("Invalid session token", status=401, mimetype="text/plain")

    def _api(self, call: str) -> Response:
        params = {**request.args.to_dict(), **request.form.to_dict()}
        params.pop("checksum", None)
        with self._lock:
            self.calls.append((call, params))
            status = self._failures.pop(0) if self._failures else None
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if status:
            return Response("<html><body>Server error</body></html>", status=status, mimetype="text/html")
        if request.method == "POST" and call != "create":
            return Response("Method not allowed", status=405)
        try:
            self._verify_checksum(call, call == "join")
            with self._lock:
                return self._dispatch(call, params)
        except BBBError as error:
            if error.redirect:
                return self._error_redirect(params, error)
            return _xml({"returncode": "FAILED", "messageKey": error.key, "message": error.message})

    def _verify_checksum(self, call: str, redirect_on_error: bool) -> None:
        """bbb-web's GetChecksumValidator: hash call + raw query minus the checksum + secret."""
        checksum = request.args.get("checksum", "")
        if not checksum:
            raise BBBError("checksumError", "You did not pass the checksum security check", redirect_on_error)
        raw = request.query_string.decode("utf-8", "surrogateescape")
        for pattern in (f"&checksum={checksum}", f"checksum={checksum}&", f"checksum={checksum}"):
            raw = raw.replace(pattern, "")
        algorithm = ALGORITHM_BY_LENGTH.get(len(checksum))
        if algorithm in self.allowed_algorithms:
            data = (call + raw + self.secret).encode("utf-8", "surrogateescape")
            expected = hashlib.new(algorithm, data).hexdigest()
            if hmac.compare_digest(expected.encode(), checksum.lower().encode()):
                return
        raise BBBError("checksumError", "Checksums do not match", redirect_on_error)

    def _error_redirect(self, params: dict, error: BBBError) -> Response:
        target = params.get("errorRedirectUrl") or params.get("logoutURL") or self.url + "/"
        errors = json.dumps([{"key": error.key, "message": error.message}])
        separator = "&" if "?" in target else "?"
        return redirect(f"{target}{separator}errors={quote(errors)}", code=302)

    def _dispatch(self, call: str, params: dict) -> Response:
        handler = {
            "create": self._create,
            "join": self._join,
            "isMeetingRunning": self._is_meeting_running,
            "getMeetingInfo": self._get_meeting_info,
            "getMeetings": self._get_meetings,
            "end": self._end,
            "getRecordings": self._get_recordings,
            "publishRecordings": self._publish_recordings,
            "deleteRecordings": self._delete_recordings,
            "updateRecordings": self._update_recordings,
            "hooks/create": self._hooks_create,
            "hooks/list": self._hooks_list,
            "hooks/destroy": self._hooks_destroy,
        }.get(call)
        if handler is None:
            raise BBBError("unsupportedRequest", "This request is not supported.")
        return handler(params)

    # -- meetings ----------------------------------------------------------------------------

    def _create(self, params: dict) -> Response:
        meeting_id = _valid_meeting_id(params.get("meetingID"))
        name = _valid_name(params.get("name"))
        existing = self.meetings.get(meeting_id)
        if existing:
            self._check_duplicate(existing, params)
            return _xml({**self._create_answer(existing), **DUPLICATE_WARNING})
        meeting = FakeMeeting(
            meeting_id=meeting_id,
            name=name,
            create_time=self._new_create_time(),
            attendee_pw=params.get("attendeePW") or secrets.token_urlsafe(6),
            moderator_pw=params.get("moderatorPW") or secrets.token_urlsafe(6),
            params=params,
        )
        self.meetings[meeting_id] = meeting
        return _xml(self._create_answer(meeting))

    def _check_duplicate(self, meeting: FakeMeeting, params: dict) -> None:
        """ApiController: a repeat create must repeat the passwords (or, on new servers, send none)."""
        attendee_pw, moderator_pw = params.get("attendeePW"), params.get("moderatorPW")
        same = attendee_pw == meeting.attendee_pw and moderator_pw == meeting.moderator_pw
        passwordless = not attendee_pw and not moderator_pw
        if same or (passwordless and self.accept_passwordless_duplicate):
            return
        raise BBBError("idNotUnique", ID_NOT_UNIQUE)

    def _new_create_time(self) -> int:
        # Strictly increasing, so a re-created meeting never repeats an old createTime.
        with self._lock:
            self._last_create_time = max(int(time.time() * 1000), self._last_create_time + 1)
            return self._last_create_time

    def _create_answer(self, meeting: FakeMeeting) -> dict:
        return {
            "returncode": "SUCCESS",
            "meetingID": meeting.meeting_id,
            "internalMeetingID": meeting.internal_id,
            "parentMeetingID": "bbb-none",
            "attendeePW": meeting.attendee_pw,
            "moderatorPW": meeting.moderator_pw,
            "createTime": meeting.create_time,
            "voiceBridge": meeting.voice_bridge,
            "dialNumber": "613-555-1234",
            "createDate": _date(meeting.create_time),
            "hasUserJoined": meeting.has_user_joined,
            "duration": params_int(meeting.params, "duration"),
            "hasBeenForciblyEnded": False,
        }

    def _join(self, params: dict) -> Response:
        meeting, participant = self._joining(params)
        token = secrets.token_hex(8)
        meeting.registered[token] = participant
        self.joins.append(participant)
        client_url = f"{self.url}/html5client/join?sessionToken={token}"
        if params.get("redirect", "true").lower() != "false":
            return redirect(client_url, code=302)
        return _xml({
            "returncode": "SUCCESS",
            "messageKey": "successfullyJoined",
            "message": "You have joined successfully.",
            "meeting_id": meeting.internal_id,
            "user_id": participant.user_id,
            "auth_token": secrets.token_hex(6),
            "session_token": token,
            "url": client_url,
        })

    def _joining(self, params: dict) -> tuple[FakeMeeting, Participant]:
        """bbb-web's join validation, in its order; all but the role checks answer by redirect."""
        full_name = "".join(ch for ch in params.get("fullName", "") if ch.isprintable()).strip()
        if not full_name:
            raise BBBError("missingParamFullName", "You must specify a name for the attendee.", True)
        meeting = self._meeting(params.get("meetingID"), redirect=True)
        if "createTime" in params and params["createTime"] != str(meeting.create_time):
            raise BBBError("mismatchCreateTimeParam", MISMATCH_CREATE_TIME, True)
        maximum = params_int(meeting.params, "maxParticipants")
        if maximum and len(meeting.present) >= maximum:
            raise BBBError("maxParticipantsReached", MAX_PARTICIPANTS_REACHED, True)
        user_id = params.get("userID") or "w_" + secrets.token_hex(6)
        return meeting, Participant(user_id, full_name, _join_role(meeting, params))

    def _enter(self, meeting: FakeMeeting, participant: Participant) -> None:
        if not meeting.has_user_joined:
            meeting.start_time = int(time.time() * 1000)
        meeting.has_user_joined = True
        meeting.present[participant.user_id] = participant

    def _is_meeting_running(self, params: dict) -> Response:
        meeting = self.meetings.get(params.get("meetingID", ""))
        return _xml({"returncode": "SUCCESS", "running": bool(meeting and meeting.running)})

    def _get_meeting_info(self, params: dict) -> Response:
        return _xml({"returncode": "SUCCESS", **self._meeting_info(self._meeting(params.get("meetingID")))})

    def _get_meetings(self, params: dict) -> Response:
        meetings = [self._meeting_info(m) for m in self.meetings.values()]
        if not meetings:
            return _xml({"returncode": "SUCCESS", "meetings": None, "messageKey": "noMeetings",
                         "message": "no meetings were found on this server"})
        return _xml({"returncode": "SUCCESS", "meetings": {"meeting": meetings}})

    def _meeting_info(self, meeting: FakeMeeting) -> dict:
        present = list(meeting.present.values())
        moderators = sum(1 for p in present if p.role == "MODERATOR")
        return {
            "meetingName": meeting.name,
            "meetingID": meeting.meeting_id,
            "internalMeetingID": meeting.internal_id,
            "createTime": meeting.create_time,
            "createDate": _date(meeting.create_time),
            "voiceBridge": meeting.voice_bridge,
            "dialNumber": "613-555-1234",
            "attendeePW": meeting.attendee_pw,
            "moderatorPW": meeting.moderator_pw,
            "running": meeting.running,
            "duration": params_int(meeting.params, "duration"),
            "hasUserJoined": meeting.has_user_joined,
            "recording": False,
            "hasBeenForciblyEnded": False,
            "startTime": meeting.start_time,
            "endTime": 0,
            "participantCount": len(present),
            "listenerCount": 0,
            "voiceParticipantCount": 0,
            "videoCount": 0,
            "maxUsers": params_int(meeting.params, "maxParticipants"),
            "moderatorCount": moderators,
            "attendees": {"attendee": [_attendee(p) for p in present]} if present else None,
            "metadata": meeting.metadata or None,
            "isBreakout": False,
        }

    def _end(self, params: dict) -> Response:
        meeting = self._meeting(params.get("meetingID"))
        del self.meetings[meeting.meeting_id]
        return _xml({
            "returncode": "SUCCESS", "messageKey": "sentEndMeetingRequest",
            "message": "A request to end the meeting was sent.  Please wait a few seconds, and then use the "
                       "getMeetingInfo or isMeetingRunning API calls to verify that it was ended",
        })

    def _meeting(self, meeting_id: str | None, redirect: bool = False) -> FakeMeeting:
        if not meeting_id:
            raise BBBError("missingParamMeetingID", "You must specify a meeting ID for the meeting.", redirect)
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            raise BBBError("notFound", "We could not find a meeting with that meeting ID", redirect)
        return meeting

    # -- recordings --------------------------------------------------------------------------

    def _get_recordings(self, params: dict) -> Response:
        found = [r for r in self.recordings if _recording_matches(r, params)]
        if not found:
            return _xml({"returncode": "SUCCESS", "recordings": None, "messageKey": "noRecordings",
                         "message": "There are no recordings for the meeting(s)."})
        return _xml({"returncode": "SUCCESS", "recordings": {"recording": [_recording(r) for r in found]}})

    def _publish_recordings(self, params: dict) -> Response:
        publish = params.get("publish", "")
        if publish not in ("true", "false"):
            raise BBBError("missingParamPublish", "You must specify a publish value true or false.")
        for recording in self._recordings_named(params):
            recording.published = publish == "true"
            recording.state = "published" if recording.published else "unpublished"
        return _xml({"returncode": "SUCCESS", "published": publish == "true"})

    def _delete_recordings(self, params: dict) -> Response:
        for recording in self._recordings_named(params):
            self.recordings.remove(recording)
        return _xml({"returncode": "SUCCESS", "deleted": True})

    def _update_recordings(self, params: dict) -> Response:
        """bbb-web's updateRecordings: every meta_* parameter lands in the recordings' metadata
        (lower-cased, without the prefix), as getRecordings then shows it."""
        recordings = self._recordings_named(params)
        for recording in recordings:
            recording.metadata.update({k[5:].lower(): v for k, v in params.items() if k.startswith("meta_")})
        return _xml({"returncode": "SUCCESS", "updated": True})

    def _recordings_named(self, params: dict) -> list[FakeRecording]:
        ids = [i for i in params.get("recordID", "").split(",") if i]
        if not ids:
            raise BBBError("missingParamRecordID", "You must specify a recordID.")
        found = [r for r in self.recordings if r.record_id in ids]
        if len(found) != len(set(ids)):
            raise BBBError("notFound", "We could not find recordings")
        return found

    # -- bbb-webhooks ------------------------------------------------------------------------

    def _hooks_create(self, params: dict) -> Response:
        callback_url = params.get("callbackURL", "")
        if not callback_url:
            raise BBBError("missingParamCallbackURL", "You must specify a callbackURL in the parameters.")
        existing = next((h for h in self.hooks.values() if h["callbackURL"] == callback_url), None)
        if existing:
            return _xml({**_hook_answer(existing), "messageKey": "duplicateWarning",
                         "message": "There is already a hook for this callback URL."})
        hook = {
            "hookID": str(self._next_hook_id),
            "callbackURL": callback_url,
            "meetingID": params.get("meetingID"),
            "eventID": params.get("eventID", "").lower() or None,
            "permanentHook": False,
            "rawData": params.get("getRaw", "false") == "true",
        }
        self._next_hook_id += 1
        self.hooks[hook["hookID"]] = hook
        return _xml(_hook_answer(hook))

    def _hooks_list(self, params: dict) -> Response:
        meeting_id = params.get("meetingID")
        hooks = [h for h in self.hooks.values() if not meeting_id or h["meetingID"] in (None, meeting_id)]
        listed = [{k: v for k, v in h.items() if v is not None} for h in hooks]
        return _xml({"returncode": "SUCCESS", "hooks": {"hook": listed} if listed else None})

    def _hooks_destroy(self, params: dict) -> Response:
        hook_id = params.get("hookID", "")
        if not hook_id:
            raise BBBError("missingParamHookID", "You must specify a hookID in the parameters.")
        if self.hooks.pop(hook_id, None) is None:
            raise BBBError("destroyMissingHook", "The hook informed is not registered.")
        return _xml({"returncode": "SUCCESS", "removed": True})


    # -- callbacks to the tool ---------------------------------------------------------------
    # Like a BBB server with bbb-webhooks and the recording/analytics scripts, but nothing is
    # sent on its own (not even for meta_endCallbackUrl or registered hooks): tests call these,
    # with whatever past timestamps they need, and get the tool's requests.Response back.

    WEBHOOK_VARIANTS = ("v3.4", "v3.0-3.3", "v2", "bearer")

    @property
    def webhook_domain(self) -> str:
        """bbb-webhooks' `server.domain`: this server's host name."""
        return urlsplit(self.url).hostname or "localhost"

    def send_webhook(
        self,
        callback_url: str,
        events: list[dict],
        algorithm: str = "sha1",
        variant: str = "v3.4",
        timestamp_ms: int | None = None,
    ) -> requests.Response | None:
        """POST `events` (one batch) to a hook registered with hooks/create, as bbb-webhooks does.

        `callback_url` is the callbackURL as registered. Events the hook would not receive
        (its meetingID or eventID filter) are dropped; None when nothing is left to send.
        `variant`: "v3.4" (checksum over URL + body), "v3.0-3.3" (over URL + "{}"), "v2"
        (sha1 over URL + JSON of event/timestamp/domain, fields in that order) or "bearer"
        (bbb.auth2_0: `Authorization: Bearer <secret>`, no checksum).
        """
        if variant not in self.WEBHOOK_VARIANTS:
            raise ValueError(f"unknown webhook variant {variant!r}: one of {self.WEBHOOK_VARIANTS}")
        if variant == "v2" and algorithm != "sha1":
            raise ValueError("bbb-webhooks 2.x signed with sha1 only")
        hook = self._hook_for_url(callback_url)
        events = [event for event in events if _hook_wants(hook, event)]
        if not events:
            return None
        timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        event_text = _json_stringify(events)
        domain = self.webhook_domain
        if variant == "v2":
            body = _querystring_stringify([("event", event_text), ("timestamp", str(timestamp)), ("domain", domain)])
            signed = _json_stringify({"event": event_text, "timestamp": timestamp, "domain": domain})
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            body = _url_search_params([("domain", domain), ("event", event_text), ("timestamp", str(timestamp))])
            signed = body if variant == "v3.4" else "{}"
            headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
        url = callback_url
        if variant == "bearer":
            headers["Authorization"] = f"Bearer {self.secret}"
        else:
            checksum = hashlib.new(algorithm, (callback_url + signed + self.secret).encode("utf-8")).hexdigest()
            url += ("&" if "?" in callback_url else "?") + f"checksum={checksum}"
        return requests.post(url, data=body.encode("utf-8"), headers=headers, timeout=10)

    def event_meeting_created(self, meeting_id: str, ts_ms: int, internal_meeting_id: str | None = None) -> dict:
        """A meeting-created event; create-time and ts are both `ts_ms`, so the start is `ts_ms`."""
        meeting = self.meetings.get(meeting_id)
        params = meeting.params if meeting else {}
        return _webhook_event("meeting-created", ts_ms, {"meeting": {
            "internal-meeting-id": internal_meeting_id or self._callback_internal_id(meeting_id, ts_ms),
            "external-meeting-id": meeting_id,
            "name": meeting.name if meeting else meeting_id,
            "is-breakout": False,
            "parent-id": "bbb-none",
            "duration": params_int(params, "duration"),
            "create-time": ts_ms,
            "create-date": time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(ts_ms // 1000)),
            "moderator-pass": meeting.moderator_pw if meeting else "mp",
            "viewer-pass": meeting.attendee_pw if meeting else "ap",
            "record": params.get("record", "false") == "true",
            "voice-conf": meeting.voice_bridge if meeting else "70000",
            "dial-number": "613-555-1234",
            "max-users": params_int(params, "maxParticipants"),
            "metadata": meeting.metadata if meeting else {},
        }})

    def event_user_joined(
        self, meeting_id: str, user_id: str, name: str, role: str, ts_ms: int, internal_meeting_id: str | None = None
    ) -> dict:
        return _webhook_event("user-joined", ts_ms, {
            "meeting": self._event_meeting(meeting_id, ts_ms, internal_meeting_id),
            "user": {
                "internal-user-id": _internal_user_id(meeting_id, user_id),
                "external-user-id": user_id,
                "name": name,
                "role": role,
                "presenter": False,
                "guest": False,
            },
        })

    def event_user_left(
        self, meeting_id: str, user_id: str, ts_ms: int, internal_meeting_id: str | None = None
    ) -> dict:
        """A user-left event: bbb-webhooks sends no name or role with it."""
        return _webhook_event("user-left", ts_ms, {
            "meeting": self._event_meeting(meeting_id, ts_ms, internal_meeting_id),
            "user": {
                "internal-user-id": _internal_user_id(meeting_id, user_id),
                "external-user-id": user_id,
                "guest": False,
            },
        })

    def event_meeting_ended(self, meeting_id: str, ts_ms: int, internal_meeting_id: str | None = None) -> dict:
        return _webhook_event("meeting-ended", ts_ms, {
            "meeting": self._event_meeting(meeting_id, ts_ms, internal_meeting_id),
        })

    def event_rap_publish_ended(
        self, meeting_id: str, ts_ms: int, record_id: str | None = None, success: bool = True
    ) -> dict:
        """A rap-publish-ended event for the presentation format (record id = internal id)."""
        internal_id = record_id or self._callback_internal_id(meeting_id, ts_ms)
        return _webhook_event("rap-publish-ended", ts_ms, {
            "meeting": {"internal-meeting-id": internal_id, "external-meeting-id": meeting_id},
            "record-id": internal_id,
            "success": success,
            "step-time": 1000,
            "workflow": "presentation",
            "recording": {
                "name": meeting_id,
                "is-breakout": "false",
                "start-time": ts_ms - 3_600_000,
                "end-time": ts_ms - 60_000,
                "size": 250_000,
                "raw-size": 1_000_000,
                "metadata": {"meetingId": meeting_id, "meetingName": meeting_id, "isBreakout": "false"},
                "playback": {"format": "presentation", "link": f"{self.url}/playback/presentation/2.3/{internal_id}",
                             "processing_time": 1000, "duration": 3_540_000, "size": 250_000},
                "download": {},
            },
        })

    def send_analytics(
        self,
        callback_url: str | None,
        meeting_id: str,
        attendees: list[dict],
        start_ms: int,
        finish_ms: int,
        token: str | None = None,
        internal_meeting_id: str | None = None,
    ) -> requests.Response:
        """POST the analytics callback's JSON (post_events_analytics_callback.rb) with a fresh
        `Bearer` JWT (HS512, exp now+24h) — or `token`, to send a bad one.

        `callback_url` None: the meeting's meta_analytics-callback-url. Each attendee is a dict
        `{"user_id", "name", "moderator": bool, "joins": [ms…], "leaves": [ms…], "talk_time": s}`.
        """
        url = callback_url or self._create_meta(meeting_id, "analytics-callback-url")
        internal_id = internal_meeting_id or self._callback_internal_id(meeting_id, start_ms)
        body = {
            "version": "1.0",
            "meeting_id": meeting_id,
            "internal_meeting_id": internal_id,
            "data": {
                "metadata": _analytics_metadata(self._create_params(meeting_id)),
                "duration": (finish_ms - start_ms) // 1000,
                "start": _iso(start_ms),
                "finish": _iso(finish_ms),
                "attendees": [_analytics_attendee(meeting_id, a) for a in attendees],
                "files": ["default.pdf"],
                "polls": [],
            },
        }
        if token is None:
            with warnings.catch_warnings():  # a 32-character secret is short for HS512: BBB's choice
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                token = jwt.encode({"exp": int(time.time()) + 86400}, self.secret, algorithm="HS512",
                                   headers={"typ": "JWT"})
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "BigBlueButton Analytics Callback",
        }
        return requests.post(url, data=json.dumps(body).encode("utf-8"), headers=headers, timeout=10)

    def send_recording_ready(
        self, callback_url: str | None, meeting_id: str, record_id: str | None = None, secret: str | None = None
    ) -> requests.Response:
        """POST `signed_parameters=<JWT>` as post_publish_recording_ready_callback.rb does (ruby-jwt:
        header {"alg":"HS256"} only, claims meeting_id and record_id, no exp). `callback_url`
        None: the meeting's meta_bbb-recording-ready-url; `secret` to sign with another key."""
        url = callback_url or self._create_meta(meeting_id, "bbb-recording-ready-url")
        claims = {"meeting_id": meeting_id, "record_id": record_id or self._callback_internal_id(meeting_id, 0)}
        token = jwt.encode(claims, secret or self.secret, algorithm="HS256", headers={"typ": None})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return requests.post(url, data={"signed_parameters": token}, headers=headers, timeout=10)

    def call_end_callback(self, meeting_id: str, recording_marks: bool = False) -> requests.Response:
        """GET the meeting's meta_endCallbackUrl with `recordingmarks=` appended, as bbb-web does
        when the meeting ends (true only for a recorded meeting with marks). Works after `end`."""
        url = self._create_meta(meeting_id, "endCallbackUrl")
        recorded = self._create_params(meeting_id).get("record", "false") == "true"
        marks = "true" if recorded and recording_marks else "false"
        return requests.get(url + ("&" if "?" in url else "?") + f"recordingmarks={marks}", timeout=10)

    def _hook_for_url(self, callback_url: str) -> dict:
        with self._lock:
            hook = next((h for h in self.hooks.values() if h["callbackURL"] == callback_url), None)
        if hook is None:
            raise LookupError(f"no hook registered for {callback_url!r}: the tool must call hooks/create first")
        return hook

    def _create_params(self, meeting_id: str) -> dict:
        """The parameters of the meeting's create call, also after it ended."""
        with self._lock:
            meeting = self.meetings.get(meeting_id)
            if meeting:
                return meeting.params
            creates = [p for name, p in self.calls if name == "create" and p.get("meetingID") == meeting_id]
        return creates[-1] if creates else {}

    def _create_meta(self, meeting_id: str, name: str) -> str:
        wanted = "meta_" + name.lower()
        params = self._create_params(meeting_id)
        value = next((v for k, v in params.items() if k.lower() == wanted and v), None)
        if value is None:
            raise LookupError(f"meeting {meeting_id!r} was not created with meta_{name}")
        return value

    def _callback_internal_id(self, meeting_id: str, create_time: int) -> str:
        """The running meeting's internal id; else the one used before for this meeting id; else
        a new one made like BBB's (sha1 of the id + create time)."""
        with self._lock:
            remembered = self.__dict__.setdefault("_callback_internal_ids", {})
            meeting = self.meetings.get(meeting_id)
            if meeting:
                remembered[meeting_id] = meeting.internal_id
            elif meeting_id not in remembered:
                remembered[meeting_id] = hashlib.sha1(meeting_id.encode()).hexdigest() + f"-{create_time}"
            return remembered[meeting_id]

    def _event_meeting(self, meeting_id: str, ts_ms: int, internal_meeting_id: str | None) -> dict:
        return {
            "internal-meeting-id": internal_meeting_id or self._callback_internal_id(meeting_id, ts_ms),
            "external-meeting-id": meeting_id,
        }


ID_NOT_UNIQUE = "A meeting already exists with that meeting ID.  Please use a different meeting ID."
MISMATCH_CREATE_TIME = "The createTime parameter submitted mismatches with the current meeting."
MAX_PARTICIPANTS_REACHED = "The number of participants allowed for this meeting has been reached."
DUPLICATE_WARNING = {
    "messageKey": "duplicateWarning",
    "message": "This conference was already in existence and may currently be in progress.",
}


def _valid_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise BBBError("missingParamName", "You must provide a meeting name")
    # Java counts UTF-16 code units: an emoji is two.
    if not NAME_MIN <= len(name.encode("utf-16-le")) // 2 <= NAME_MAX:
        raise BBBError("validationError", f"Meeting name must be between {NAME_MIN} and {NAME_MAX} characters")
    return name


def _valid_meeting_id(meeting_id: str | None) -> str:
    if not meeting_id:
        raise BBBError("missingParamMeetingID", "You must specify a meeting ID for the meeting.")
    if not MEETING_ID_MIN <= len(meeting_id) <= MEETING_ID_MAX:
        raise BBBError("validationError", "Meeting ID must be between 2 and 256 characters")
    if "," in meeting_id:
        raise BBBError("validationError", "Meeting ID cannot contain ','")
    return meeting_id


def _join_role(meeting: FakeMeeting, params: dict) -> str:
    """role wins when valid; otherwise the deprecated password decides (plain XML errors)."""
    role = params.get("role", "").upper()
    if role in ("MODERATOR", "VIEWER"):
        return role
    password = params.get("password")
    if password is None:
        raise BBBError("missingParamRole", "You must send the 'role' parameter, since this meeting has no passwords.")
    if password == meeting.moderator_pw:
        return "MODERATOR"
    if password == meeting.attendee_pw:
        return "VIEWER"
    raise BBBError("invalidPassword", "You must enter a valid password.")


def _attendee(participant: Participant) -> dict:
    return {
        "userID": participant.user_id,
        "fullName": participant.full_name,
        "role": participant.role,
        "isPresenter": participant.role == "MODERATOR",
        "isListeningOnly": False,
        "hasJoinedVoice": False,
        "hasVideo": False,
        "clientType": "HTML5",
        "customdata": None,
    }


def _recording_matches(recording: FakeRecording, params: dict) -> bool:
    record_ids = [i for i in params.get("recordID", "").split(",") if i]
    if record_ids:  # recordID overrides meetingID, and matches by prefix
        return any(recording.record_id.startswith(i) for i in record_ids)
    meeting_ids = [i for i in params.get("meetingID", "").split(",") if i]
    if meeting_ids and recording.meeting_id not in meeting_ids:
        return False
    states = params.get("state", "published,unpublished").split(",")
    return "any" in states or recording.state in states


def _recording(recording: FakeRecording) -> dict:
    return {
        "recordID": recording.record_id,
        "meetingID": recording.meeting_id,
        "internalMeetingID": recording.record_id,
        "name": recording.name,
        "isBreakout": False,
        "published": recording.published,
        "state": recording.state,
        "startTime": recording.start_time,
        "endTime": recording.end_time,
        "participants": recording.participants,
        "rawSize": 1_000_000,
        "size": 250_000,
        "metadata": recording.metadata,
        "playback": {"format": [
            {"type": kind, "url": url, "processingTime": 1000,
             "length": max(1, round((recording.end_time - recording.start_time) / 60000))}
            for kind, url in recording.playback
        ]},
        "download": None,
    }


def _hook_answer(hook: dict) -> dict:
    return {"returncode": "SUCCESS", "hookID": hook["hookID"],
            "permanentHook": hook["permanentHook"], "rawData": hook["rawData"]}


def params_int(params: dict, name: str) -> int:
    try:
        return int(params.get(name) or 0)
    except ValueError:
        return 0


def _date(millis: int) -> str:
    return formatdate(millis / 1000, usegmt=True)


def _xml(response: dict) -> Response:
    body = xmltodict.unparse({"response": _strings(response)}, full_document=False, pretty=True)
    return Response(body, mimetype="text/xml")


def _strings(value):
    """Booleans as true/false, numbers as text, None-valued messageKey/message left out."""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items() if not (v is None and k in ("messageKey", "message"))}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if value is None else str(value)


# -- callbacks: bodies encoded byte for byte like BBB's senders -------------------------------


def _webhook_event(event_id: str, ts_ms: int, attributes: dict) -> dict:
    return {"data": {"type": "event", "id": event_id, "attributes": attributes, "event": {"ts": ts_ms}}}


def _hook_wants(hook: dict, event: dict) -> bool:
    """bbb-webhooks' filters: a meeting's hook gets only its events; eventID lists the ids."""
    data = event.get("data", {})
    meeting = data.get("attributes", {}).get("meeting", {})
    if hook.get("meetingID") and meeting.get("external-meeting-id") != hook["meetingID"]:
        return False
    wanted = [i for i in (hook.get("eventID") or "").split(",") if i]
    return not wanted or str(data.get("id", "")).lower() in wanted


def _internal_user_id(meeting_id: str, user_id: str) -> str:
    return "w_" + hashlib.sha1(f"{meeting_id}/{user_id}".encode()).hexdigest()[:12]


def _json_stringify(value) -> str:
    """JSON.stringify: no spaces, non-ASCII kept, the same escapes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _url_search_params(pairs) -> str:
    """WHATWG URLSearchParams.toString() (bbb-webhooks 3.x): space as '+', keeps A-Za-z0-9*-._."""
    def encode(text: str) -> str:
        return quote_plus(text, safe="*").replace("~", "%7E")
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)


def _querystring_stringify(pairs) -> str:
    """Node's querystring.stringify (bbb-webhooks 2.x): space as %20, keeps A-Za-z0-9-_.!~*'()."""
    def encode(text: str) -> str:
        return quote(text, safe="-_.!~*'()")
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)


def _iso(millis: int) -> str:
    """bbbevents' times: 2024-05-09T13:35:28.000+00:00."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds")


def _analytics_metadata(params: dict) -> dict:
    """meta_* keys in snake_case, gl_* left out, as the analytics script sends them."""
    metadata = {}
    for key, value in params.items():
        if key.lower().startswith("meta_"):
            name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key[5:]).lower().replace("-", "_")
            if not name.startswith("gl_"):
                metadata[name] = value
    return metadata


def _analytics_attendee(meeting_id: str, attendee: dict) -> dict:
    user_id = attendee.get("user_id") or attendee["ext_user_id"]
    joins, leaves = list(attendee.get("joins", [])), list(attendee.get("leaves", []))
    internal = _internal_user_id(meeting_id, user_id)

    def entries(times, event):
        return [{"timestamp": _iso(t), "userid": internal, "ext_userid": user_id, "event": event} for t in times]

    return {
        "ext_user_id": user_id,
        "name": attendee.get("name", user_id),
        "moderator": bool(attendee.get("moderator", False)),
        "joins": [_iso(t) for t in joins],
        "leaves": [_iso(t) for t in leaves],
        "duration": sum(max(0, left - joined) for joined, left in zip(joins, leaves, strict=False)) // 1000,
        "recent_talking_time": "",
        "engagement": {"chats": 0, "talks": 0, "raisehand": 0, "emojis": 0, "poll_votes": 0,
                       "talk_time": attendee.get("talk_time", 0)},
        "sessions": [{"joins": entries(joins, "join"), "lefts": entries(leaves, "left")}],
    }
