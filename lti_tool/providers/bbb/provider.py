"""BigBlueButton behind the `VideoProvider` interface.

`BigBlueButtonClient` signs and sends BBB API calls (checksum, retries, XML parsing, and the
mapping of BBB's FAILED answers onto `ProviderError`s); `BigBlueButtonProvider` turns the tool's
`MeetingSpec`/`Attendee` into BBB parameters and BBB's answers into `MeetingStatus`/`Recording`.
The BBB facts this relies on are in docs/reference/bigbluebutton.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode
from xml.parsers.expat import ExpatError

import requests
import xmltodict

from ...logsafe import quoted
from ..base import (
    ALL_SETTINGS,
    NOT_FOUND,
    Attendee,
    JoinRole,
    MeetingNotFound,
    MeetingSpec,
    MeetingStatus,
    Participant,
    ProviderError,
    ProviderHealth,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderUnavailable,
    Recording,
    VideoProvider,
)
from .runs import create_time_of, internal_meeting_id
from .signing import callback_urls

logger = logging.getLogger("lti_tool.providers.bbb")

CHECKSUM_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
API_PATH = "/bigbluebutton/api/"
ORIGIN = "lti-live-class"

Params = Iterable[tuple[str, Any]] | Mapping[str, Any]


class _WorthRetrying(Exception):
    """A network error, timeout or 5xx: the server may answer the next attempt."""


def normalise_server_url(server_url: str) -> str:
    """`https://host`, `https://host/bigbluebutton/` or `…/bigbluebutton/api` → `https://host/bigbluebutton/api/`."""
    url = server_url.strip().rstrip("/")
    for suffix in ("/bigbluebutton/api", "/bigbluebutton"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url + API_PATH


def _render(value: Any) -> str:
    # BBB reads booleans only as the literal words true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_query(params: Params) -> str:
    """The query string exactly as it is sent and hashed: form encoding, space as `+`.

    urlencode never emits `%7E` (it keeps `~`), so `requests` sends these bytes unchanged and
    the server hashes the same string we did.
    """
    return urlencode([(name, _render(value)) for name, value in _pairs(params) if value is not None])


class BigBlueButtonClient:
    """Signed calls to one BBB server (or Scalelite): one method per API call the tool uses."""

    def __init__(
        self,
        server_url: str,
        shared_secret: str,
        algorithm: str = "sha256",
        timeout: float = 10.0,
        retries: int = 3,
        backoff_base: float = 0.25,
        session: requests.Session | None = None,
    ):
        algorithm = (algorithm or "").strip().lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise ValueError(
                f"Unsupported BigBlueButton checksum algorithm {algorithm!r}: "
                f"use one of {', '.join(CHECKSUM_ALGORITHMS)}"
            )
        self.api_url = normalise_server_url(server_url)
        self.algorithm = algorithm
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self._secret = shared_secret
        self._session = session or requests.Session()

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a log
        return f"BigBlueButtonClient({self.api_url!r}, algorithm={self.algorithm!r})"

    # -- signing -----------------------------------------------------------------------------

    def checksum(self, call: str, query: str) -> str:
        return hashlib.new(self.algorithm, (call + query + self._secret).encode("utf-8")).hexdigest()

    def build_url(self, call: str, params: Params = ()) -> str:
        query = encode_query(params)
        signed = f"{query}&checksum=" if query else "checksum="
        return f"{self.api_url}{call}?{signed}{self.checksum(call, query)}"

    # -- transport ---------------------------------------------------------------------------

    def call(self, call: str, params: Params = (), retries: int | None = None) -> dict:
        """Send one API call; return the `<response>` as a dict, or raise a `ProviderError`.
        `retries` overrides the client's number of retries (0: one attempt)."""
        params = _pairs(params)
        meeting_id = _param(params, "meetingID")
        url = self.build_url(call, params)
        http_response = self._get_with_retries(call, url, meeting_id, self.retries if retries is None else retries)
        response = self._parse(call, http_response)
        self._raise_for_failure(call, meeting_id, response)
        logger.info(
            "BBB %s meetingID=%s: SUCCESS%s", call, meeting_id, _suffix(response.get("messageKey"))
        )
        return response

    def _get_with_retries(self, call: str, url: str, meeting_id: str | None, retries: int) -> requests.Response:
        attempts = retries + 1
        for attempt in range(attempts):
            try:
                return self._get(call, url, meeting_id)
            except _WorthRetrying as failure:
                problem = str(failure)
            logger.warning(
                "BBB %s meetingID=%s: %s (attempt %d of %d)", call, meeting_id, problem, attempt + 1, attempts
            )
            if attempt + 1 < attempts:
                time.sleep(self.backoff_base * 2**attempt)
        raise ProviderUnavailable(
            f"BigBlueButton at {self.api_url} did not answer {call} after {attempts} attempts: {problem}"
        )

    def _get(self, call: str, url: str, meeting_id: str | None) -> requests.Response:
        try:
            response = self._session.get(url, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            # Only the exception's class: its text contains the signed URL.
            raise _WorthRetrying(type(exc).__name__) from None
        if response.status_code >= 500:
            raise _WorthRetrying(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            # A 4xx comes from a proxy or a wrong path, not from bbb-web: retrying will not help.
            logger.warning("BBB %s meetingID=%s: HTTP %d", call, meeting_id, response.status_code)
            raise ProviderMisconfigured(self._wrong_url_detail(call, response.status_code))
        return response

    def _wrong_url_detail(self, call: str, status: int) -> str:
        detail = (
            f"BigBlueButton call {call} answered HTTP {status}: BBB_SERVER_URL ({self.api_url}) "
            "may be wrong, or a proxy in front of the server refuses the request"
        )
        if call.startswith("hooks/"):
            detail += "; is bbb-webhooks installed on the server?"
        return detail

    # -- answers -----------------------------------------------------------------------------

    def _parse(self, call: str, http_response: requests.Response) -> dict:
        try:
            document = xmltodict.parse(http_response.content)
        except ExpatError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("response"), dict):
            logger.warning("BBB %s: answer is not a BBB XML response", call)
            raise ProviderRejected(f"BigBlueButton call {call} returned something that is not BBB XML")
        return document["response"]

    def _raise_for_failure(self, call: str, meeting_id: str | None, response: dict) -> None:
        if response.get("returncode") == "SUCCESS":
            return
        key = response.get("messageKey") or ""
        message = response.get("message") or ""
        # "not found" is an ordinary answer (a room nobody has started yet), not a problem.
        level = logging.INFO if key in ("notFound", "invalidMeetingIdentifier") else logging.WARNING
        logger.log(level, "BBB %s meetingID=%s: FAILED %s", call, meeting_id, key)
        if key == "checksumError":
            raise ProviderMisconfigured(
                f"BigBlueButton rejected the checksum of {call}: the shared secret (BBB_SHARED_SECRET) "
                f"or the checksum algorithm (BBB_CHECKSUM_ALGORITHM={self.algorithm}) does not match "
                "the server's settings"
            )
        if key in ("notFound", "invalidMeetingIdentifier"):
            raise MeetingNotFound(f"BigBlueButton {call} meetingID={meeting_id}: {key} {message}".strip())
        raise ProviderRejected(f"BigBlueButton {call} failed: {key} {message}".strip(), message_key=key)

    # -- API calls ---------------------------------------------------------------------------

    def create(self, params: Params) -> dict:
        return self.call("create", params)

    def join_url(self, params: Params) -> str:
        """A signed join URL for the browser; nothing is sent to the server."""
        return self.build_url("join", params)

    def is_meeting_running(self, meeting_id: str) -> bool:
        return self.call("isMeetingRunning", [("meetingID", meeting_id)]).get("running") == "true"

    def get_meeting_info(self, meeting_id: str) -> dict:
        return self.call("getMeetingInfo", [("meetingID", meeting_id)])

    def end(self, meeting_id: str) -> dict:
        return self.call("end", [("meetingID", meeting_id)])

    def get_recordings(self, meeting_id: str) -> list[dict]:
        """Every recording of the meeting, as a list whatever xmltodict made of the XML."""
        response = self.call("getRecordings", [("meetingID", meeting_id)])
        return _as_list((response.get("recordings") or {}).get("recording"))

    def publish_recordings(self, record_ids: Iterable[str], publish: bool) -> dict:
        return self.call("publishRecordings", [("recordID", ",".join(record_ids)), ("publish", publish)])

    def delete_recordings(self, record_ids: Iterable[str]) -> dict:
        return self.call("deleteRecordings", [("recordID", ",".join(record_ids))])

    def update_recordings(self, record_ids: Iterable[str], metadata: Mapping[str, str]) -> dict:
        """updateRecordings: set the recordings' `meta_<name>` metadata (`name` renames them)."""
        return self.call("updateRecordings", [("recordID", ",".join(record_ids))]
                         + [(f"meta_{name}", value) for name, value in metadata.items()])

    def hooks_create(
        self, callback_url: str, meeting_id: str | None = None, event_ids: Iterable[str] | None = None
    ) -> str:
        """Register a bbb-webhooks callback; returns the hook id (also for an existing one)."""
        params = [
            ("callbackURL", callback_url),
            ("meetingID", meeting_id),
            ("eventID", ",".join(event_ids) if event_ids else None),
        ]
        return self.call("hooks/create", params).get("hookID") or ""

    def hooks_list(self) -> list[dict]:
        response = self.call("hooks/list")
        return _as_list((response.get("hooks") or {}).get("hook"))

    def hooks_destroy(self, hook_id: str) -> bool:
        """Remove a hook; False when the server no longer had it."""
        try:
            response = self.call("hooks/destroy", [("hookID", hook_id)])
        except ProviderRejected as exc:
            if exc.message_key == "destroyMissingHook":
                return False
            raise
        return response.get("removed") == "true"


class BigBlueButtonProvider(VideoProvider):
    """The tool's rooms on a BigBlueButton server."""

    name = "bbb"

    def __init__(self, client: BigBlueButtonClient | None, tool_base_url: str = "", secret_key: str = ""):
        self._configured_client = client
        # Where BBB calls the tool back (routes.py), and the key that signs the end callback.
        self.tool_base_url = tool_base_url
        self.secret_key = secret_key
        self._hook_registered_at: float | None = None

    @classmethod
    def from_config(cls, config: Mapping) -> BigBlueButtonProvider:
        """Built from the app config; unconfigured (client None) when the URL or secret is empty.

        An unknown BBB_CHECKSUM_ALGORITHM raises ValueError, like `validate_config` reports it.
        """
        server_url = str(config.get("BBB_SERVER_URL") or "").strip()
        secret = str(config.get("BBB_SHARED_SECRET") or "").strip()
        base_url, secret_key = str(config.get("TOOL_BASE_URL") or ""), str(config.get("SECRET_KEY") or "")
        if not server_url or not secret:
            return cls(None, base_url, secret_key)
        client = BigBlueButtonClient(
            server_url,
            secret,
            algorithm=str(config.get("BBB_CHECKSUM_ALGORITHM") or "sha256"),
            timeout=float(config.get("PROVIDER_TIMEOUT_SECONDS") or 10),
        )
        return cls(client, base_url, secret_key)

    def is_configured(self) -> bool:
        return self._configured_client is not None

    def supported_settings(self) -> frozenset[str]:
        """Every room setting: each is a create parameter (create_params)."""
        return ALL_SETTINGS

    @property
    def client(self) -> BigBlueButtonClient:
        if self._configured_client is None:
            raise ProviderMisconfigured(
                "BigBlueButton is not configured: set BBB_SERVER_URL and BBB_SHARED_SECRET",
                user_message=(
                    "Live classes are not set up on this site yet. "
                    "Please tell your teacher or your site's support."
                ),
            )
        return self._configured_client

    # -- meetings ----------------------------------------------------------------------------

    def callbacks(self, meeting_id: str) -> dict[str, str]:
        """The URLs BBB calls back for this meeting (end, analytics, recording-ready, hook)."""
        if not self.tool_base_url:
            return {}
        return callback_urls(self.tool_base_url, self.secret_key, meeting_id)

    def start_meeting(self, spec: MeetingSpec) -> MeetingStatus:
        callbacks = self.callbacks(spec.meeting_id)
        if callbacks:
            self._ensure_event_hook(callbacks["hook"])
        try:
            response = self.client.create(create_params(spec, callbacks))
        except ProviderRejected as exc:
            # Older servers refuse a repeated create without passwords although the meeting
            # exists: then it is the running meeting we wanted.
            if exc.message_key != "idNotUnique":
                raise
            status = self.meeting_status(spec.meeting_id)
            if not status.exists:
                raise
            return status
        if response.get("messageKey") == "duplicateWarning":
            # create does not say whether anyone is in the meeting; getMeetingInfo does.
            status = self.meeting_status(spec.meeting_id)
            if status.exists:
                return status
        return _status_from(response)

    def join(self, spec: MeetingSpec, attendee: Attendee, run_id: str | None, tool_page: Callable[[str], str]) -> str:
        """BBB's own join URL (the client is BBB's): role, user id, and the run's createTime."""
        return self.join_url(spec, attendee, create_time_of(run_id))

    def join_url(self, spec: MeetingSpec, attendee: Attendee, create_time: int | None) -> str:
        return self.client.join_url(join_params(spec, attendee, create_time))

    def meeting_status(self, meeting_id: str) -> MeetingStatus:
        try:
            return _status_from(self.client.get_meeting_info(meeting_id))
        except MeetingNotFound:
            return NOT_FOUND

    HEALTH_CHECK_MEETING = "lti-tool-health-check"

    def check(self) -> ProviderHealth:
        """getMeetingInfo of a meeting nobody holds, once: bbb-web checks the checksum before it
        looks the meeting up, so `notFound` proves both the address and the secret."""
        if self._configured_client is None:
            return ProviderHealth("", False, False, "not configured: BBB_SERVER_URL and BBB_SHARED_SECRET are needed")
        server = self.client.api_url
        try:
            self.client.call("getMeetingInfo", {"meetingID": self.HEALTH_CHECK_MEETING}, retries=0)
        except MeetingNotFound:
            pass
        except ProviderUnavailable as exc:
            return ProviderHealth(server, False, False, exc.detail)
        except ProviderError as exc:  # checksumError, a proxy's 4xx, an answer that is not BBB's
            return ProviderHealth(server, True, False, exc.detail)
        return ProviderHealth(server, True, True, f"answers, and accepts the shared secret ({self.client.algorithm})")

    HOOK_RECHECK_SECONDS = 600

    def _ensure_event_hook(self, callback_url: str) -> None:
        """Make sure bbb-webhooks sends every event of the server to the tool: one global hook
        (no meetingID) serves every room. Checked at most every ten minutes per process:
        bbb-webhooks answers duplicateWarning for a URL it has, and forgets its hooks when its
        Redis is flushed. A failure is logged; attendance still has the analytics callback and
        polling."""
        now = time.monotonic()
        if self._hook_registered_at is not None and now - self._hook_registered_at < self.HOOK_RECHECK_SECONDS:
            return
        try:
            self.client.hooks_create(callback_url)
            self._hook_registered_at = now
        except ProviderError as exc:
            logger.warning("could not register the event hook %s: %s", callback_url, quoted(exc.detail))

    def end_meeting(self, meeting_id: str) -> None:
        try:
            self.client.end(meeting_id)
        except MeetingNotFound:
            logger.info("BBB end meetingID=%s: already gone", meeting_id)

    # -- recordings --------------------------------------------------------------------------

    def recordings(self, meeting_id: str) -> list[Recording]:
        """getRecordings of the meeting: published and unpublished ones (BBB's default states)."""
        return [_recording_from(item) for item in self.client.get_recordings(meeting_id) if isinstance(item, dict)]

    def publish_recording(self, record_id: str, publish: bool) -> None:
        with _recording_gone_is_rejected():
            self.client.publish_recordings([record_id], publish)

    def rename_recording(self, record_id: str, name: str) -> None:
        """updateRecordings meta_name: the name BBB's own pages and getRecordings' metadata show."""
        with _recording_gone_is_rejected():
            self.client.update_recordings([record_id], {"name": name})

    def delete_recording(self, record_id: str) -> None:
        try:
            self.client.delete_recordings([record_id])
        except MeetingNotFound:
            logger.info("BBB deleteRecordings recordID=%s: already gone", record_id)


@contextlib.contextmanager
def _recording_gone_is_rejected():
    try:
        yield
    except MeetingNotFound as exc:
        raise ProviderRejected(
            exc.detail,
            message_key="notFound",
            user_message="This recording no longer exists on the video server.",
        ) from exc


# -- parameters ------------------------------------------------------------------------------

NAME_MIN, NAME_MAX = 2, 64
DEFAULT_MEETING_NAME = "Live class"
DEFAULT_PARTICIPANT_NAME = "Participant"  # BBB requires a fullName; the LMS may not send one


def meeting_name(name: str) -> str:
    """The room name within BBB's 2–64 characters (counted as Java counts them, in UTF-16 units)."""
    name = " ".join((name or "").split())
    if _utf16_len(name) < NAME_MIN:
        name = f"{name} – {DEFAULT_MEETING_NAME}" if name else DEFAULT_MEETING_NAME
    if _utf16_len(name) <= NAME_MAX:
        return name
    while _utf16_len(name) > NAME_MAX - 1:
        name = name[:-1]
    return name.rstrip() + "…"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def create_params(spec: MeetingSpec, callbacks: Mapping[str, str] | None = None) -> list[tuple[str, Any]]:
    """create's parameters: a pure function of the spec (and the callback URLs), since BBB wants a
    repeat create to repeat them.

    No attendeePW/moderatorPW: they are deprecated, and joins name the role instead.
    """
    s = spec.settings
    callbacks = callbacks or {}
    return [
        ("name", meeting_name(spec.name)),
        ("meetingID", spec.meeting_id),
        ("record", s.record),
        ("autoStartRecording", s.auto_start_recording),
        ("allowStartStopRecording", s.allow_start_stop_recording),
        ("welcome", s.welcome or None),
        ("logoutURL", spec.logout_url or None),
        ("maxParticipants", s.max_participants if s.max_participants > 0 else None),
        ("webcamsOnlyForModerator", s.webcams_only_for_moderator),
        ("muteOnStart", s.mute_on_start),
        ("lockSettingsDisableCam", s.lock_disable_cam),
        ("lockSettingsDisableMic", s.lock_disable_mic),
        ("lockSettingsDisablePrivateChat", s.lock_disable_private_chat),
        ("lockSettingsDisablePublicChat", s.lock_disable_public_chat),
        ("lockSettingsDisableNotes", s.lock_disable_notes),
        ("lockSettingsHideUserList", s.lock_hide_user_list),
        ("meta_bbb-origin", ORIGIN),
        ("meta_endCallbackUrl", callbacks.get("end")),
        ("meta_bbb-recording-ready-url", callbacks.get("recording_ready")),
        ("meta_analytics-callback-url", callbacks.get("analytics")),
        # The analytics callback is only sent when the meeting's events are kept.
        ("meetingKeepEvents", True if callbacks.get("analytics") else None),
    ]


def join_params(spec: MeetingSpec, attendee: Attendee, create_time: int | None) -> list[tuple[str, Any]]:
    moderator = attendee.role == JoinRole.MODERATOR or spec.settings.everyone_moderator
    return [
        ("fullName", " ".join(attendee.full_name.split()) or DEFAULT_PARTICIPANT_NAME),
        ("meetingID", spec.meeting_id),
        ("role", "MODERATOR" if moderator else "VIEWER"),
        ("userID", attendee.user_id),
        # Binds the URL to this run of the meeting: BBB refuses it for a later re-creation.
        ("createTime", create_time),
        ("avatarURL", attendee.avatar_url or None),
        ("redirect", True),
    ]


# -- answers ---------------------------------------------------------------------------------


def _status_from(response: dict) -> MeetingStatus:
    create_time = _int_or_none(response.get("createTime"))
    run_id = response.get("internalMeetingID") or ""
    if not run_id and create_time and response.get("meetingID"):
        run_id = internal_meeting_id(response["meetingID"], create_time)
    return MeetingStatus(
        exists=True,
        running=response.get("running") == "true",
        run_id=run_id,
        started_at_ms=create_time,
        participant_count=_int_or_none(response.get("participantCount")) or 0,
        moderator_count=_int_or_none(response.get("moderatorCount")) or 0,
        participants=tuple(
            Participant(user_id=_text(a.get("userID")), full_name=_text(a.get("fullName")), role=_text(a.get("role")))
            for a in _as_list((response.get("attendees") or {}).get("attendee"))
            if isinstance(a, dict) and a.get("userID")
        ),
    )


def _recording_from(item: dict) -> Recording:
    """A getRecordings `<recording>`: its record id is the internal id of the run it recorded;
    its name the `meta_name` a rename set, else BBB's (the meeting's name)."""
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    started, ended = _int_or_none(item.get("startTime")), _int_or_none(item.get("endTime"))
    url, length = _playback(item.get("playback"))
    if length is None and started and ended and ended > started:
        length = round((ended - started) / 60000)
    return Recording(
        record_id=_text(item.get("recordID")),
        run_id=_text(item.get("internalMeetingID")) or _text(item.get("recordID")),
        started_at_ms=started,
        ended_at_ms=ended,
        length_minutes=length,
        playback_url=url,
        published=item.get("published") == "true",
        name=_text(metadata.get("name")) or _text(item.get("name")),
    )


def _playback(playback: dict | None) -> tuple[str, int | None]:
    """The `presentation` format's URL and length in minutes (the full replay) if there is one,
    else the first format's."""
    formats = [f for f in _as_list((playback or {}).get("format") if isinstance(playback, dict) else None)
               if isinstance(f, dict)]
    chosen = next((f for f in formats if f.get("type") == "presentation"), formats[0] if formats else None)
    if chosen is None:
        return "", None
    return _text(chosen.get("url")), _int_or_none(chosen.get("length"))


def _as_list(value: Any) -> list:
    # xmltodict gives a dict for one child element, a list for several, None for none.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    # An element with attributes comes back as {"@attr": ..., "#text": ...}.
    if isinstance(value, dict):
        value = value.get("#text")
    return (value or "").strip()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _pairs(params: Params) -> list[tuple[str, Any]]:
    return list(params.items() if isinstance(params, Mapping) else params)


def _param(pairs: list[tuple[str, Any]], name: str) -> str | None:
    return next((str(value) for key, value in pairs if key == name), None)


def _suffix(message_key: str | None) -> str:
    return f" {message_key}" if message_key else ""
