"""LiveKit behind the `VideoProvider` interface.

`LiveKitServer` makes synchronous RoomService and Egress calls (Twirp, through `livekit-api`'s
asynchronous client), retries network errors and 5xx, and maps LiveKit's errors onto
`ProviderError`s, and it mints access tokens. `LiveKitProvider` turns the tool's `MeetingSpec`/`Attendee` into rooms and
grants, and LiveKit's rooms and participants into `MeetingStatus`.

LiveKit has no client of its own to send people to: "joining" means handing the browser an
access token for the tool's own classroom page (providers/livekit/classroom.py), which connects to
LIVEKIT_URL with it. The LiveKit facts this relies on are in docs/reference/livekit.md.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..base import (
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

logger = logging.getLogger("lti_tool.providers.livekit")


class _LazyModule:
    """A module imported at its first use. livekit-api brings protobuf and aiohttp (13 MB in each
    process, a quarter of a second to import): a tool running BigBlueButton never needs them,
    and a LiveKit one pays at its first LiveKit call instead of in every worker at start."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


lk = _LazyModule("livekit.api")
aiohttp = _LazyModule("aiohttp")
protobuf_message = _LazyModule("google.protobuf.message")

# An access token is only needed to (re)connect: once connected, the LiveKit server refreshes
# the client's token itself. Two hours covers a class; a page that must reconnect later asks
# the tool for a fresh token (POST /rooms/<id>/live/token).
DEFAULT_TOKEN_TTL_SECONDS = 2 * 3600
# How long LiveKit keeps a room nobody has joined (or everyone has left) before closing it.
EMPTY_TIMEOUT_SECONDS = 600
WELCOME_MAX_CHARS = 4000  # room metadata is limited in size (64 KB by default) and sent to everyone

MODERATOR = "MODERATOR"
VIEWER = "VIEWER"
CAMERA, MICROPHONE, SCREEN_SHARE, SCREEN_SHARE_AUDIO = "camera", "microphone", "screen_share", "screen_share_audio"
MODERATOR_SOURCES = (CAMERA, MICROPHONE, SCREEN_SHARE, SCREEN_SHARE_AUDIO)
DEFAULT_PARTICIPANT_NAME = "Participant"
CONFIG_NAMES = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
# Optional: where LiveKit Egress writes a room's recording (its storage, its placeholders such as
# {room_name} and {time}). Empty: recording is not offered.
RECORDING_FILEPATH_SETTING = "LIVEKIT_RECORDING_FILEPATH"
RECORDING_LAYOUT = "speaker"
RECORDING_BASE_URL_SETTING = "LIVEKIT_RECORDING_BASE_URL"


@functools.cache
def _enums() -> dict:
    """livekit-api's enumeration values the provider compares with (read once, at first use)."""
    return {
        # Egress states in which a room is being recorded (ENDING: stopping, the file is being finished).
        "recording": {lk.EgressStatus.Value(s) for s in ("EGRESS_STARTING", "EGRESS_ACTIVE")},
        # Egress states that left a file: complete, or stopped at its time limit (the file is kept).
        "finished": {lk.EgressStatus.Value(s) for s in ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED")},
        "file_types": {".mp4": lk.EncodedFileType.MP4, ".ogg": lk.EncodedFileType.OGG},
        # Participants that are not people: recorders (egress), stream inputs (ingress), bots (agent).
        "not_people": {lk.ParticipantInfo.Kind.Value(k) for k in ("EGRESS", "INGRESS", "AGENT")},
    }

_SCHEMES = {"wss": "https", "ws": "http", "https": "https", "http": "http"}
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")
# The classroom page (classroom.py) a join sends the browser to.
CLASSROOM_ENDPOINT = "livekit.classroom"

T = TypeVar("T")


class _WorthRetrying(Exception):
    """A network error, timeout or 5xx: the server may answer the next attempt."""


def http_url(livekit_url: str) -> str:
    """The RoomService base URL for LIVEKIT_URL: `wss://host` → `https://host`, `ws://` → `http://`
    (http(s) kept; a path, for a server behind a reverse proxy, kept without its trailing slash).
    Raises ValueError for another scheme or no host."""
    parts = urlsplit((livekit_url or "").strip())
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"LIVEKIT_URL must look like wss://livekit.example.com (or ws://host:7880 for a local "
            f"server), not {livekit_url!r}"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def participant_role(metadata: str) -> str:
    """MODERATOR / VIEWER from the participant metadata the tool put in the token
    (`{"role": "moderator"|"attendee"}`); "" for anyone else's metadata."""
    try:
        role = json.loads(metadata or "{}").get("role")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(role, str):
        return ""
    return {JoinRole.MODERATOR.value: MODERATOR, JoinRole.ATTENDEE.value: VIEWER}.get(role, "")


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine to completion from synchronous code.

    Each call gets a fresh event loop (`asyncio.run`) and, in `LiveKitServer._once`, a fresh
    aiohttp session created inside that loop. Nothing asynchronous outlives the call, so it is
    safe from any thread of a threaded Flask or gunicorn (sync/gthread) worker and across
    gunicorn's fork: no loop thread to start per process, no session shared between loops. The
    price is a new connection per call, which is nothing next to a page load. If the calling
    thread already runs an event loop (asyncio.run would refuse), the call runs on a short-lived
    helper thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as helper:
        return helper.submit(lambda: asyncio.run(factory())).result()


class LiveKitServer:
    """Synchronous RoomService calls to one LiveKit server, and its access tokens."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_base: float = 0.25,
    ):
        self.url = url.strip()  # what browsers connect to (ws(s)://)
        self.api_url = http_url(url)  # where the server API is (http(s)://)
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self._secret = api_secret

    def __repr__(self) -> str:  # never show the secret, even in a debugger or a log
        return f"LiveKitServer({self.api_url!r}, api_key={self.api_key!r})"

    # -- tokens ------------------------------------------------------------------------------

    def token(
        self,
        identity: str,
        name: str,
        metadata: str,
        grants: lk.VideoGrants,
        ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    ) -> str:
        return (
            lk.AccessToken(self.api_key, self._secret)
            .with_identity(identity)
            .with_name(name)
            .with_metadata(metadata)
            .with_grants(grants)
            .with_ttl(timedelta(seconds=ttl_seconds))
            .to_jwt()
        )

    # -- transport ---------------------------------------------------------------------------

    def call(self, method: str, request: Any, room: str = "", service: str = "room", retry: bool = True) -> Any:
        """Call <service>.<method> (`service`: "room" or "egress", livekit-api's LiveKitAPI
        attribute; `method`: the snake_case name of its method) with a request proto; return the
        response proto or raise a `ProviderError`. `retry=False` for calls that must not be
        repeated blindly (starting a recording twice makes two recordings)."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = _run(lambda: self._once(method, request, service))
            except _WorthRetrying as failure:
                problem = str(failure)
            else:
                logger.info("LiveKit %s room=%s: OK", method, room)
                return response
            logger.warning("LiveKit %s room=%s: %s (attempt %d of %d)", method, room, problem, attempt + 1, attempts)
            if attempt + 1 < attempts:
                time.sleep(self.backoff_base * 2**attempt)
        raise ProviderUnavailable(
            f"LiveKit at {self.api_url} did not answer {method} after {attempts} attempts: {problem}"
        )

    async def _once(self, method: str, request: Any, service_name: str = "room") -> Any:
        # failover=False: the SDK's region failover is for LiveKit Cloud; retries are ours.
        # force_close: one request per session, so no keep-alive socket outlives the loop.
        # The timeout is enforced here: livekit-api 1.2.2 posts with `timeout=None`, which
        # aiohttp reads as "no timeout", overriding the session's ClientTimeout.
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                client = lk.LiveKitAPI(self.api_url, self.api_key, self._secret, session=session, failover=False)
                service = getattr(client, service_name)  # .room or .egress
                return await asyncio.wait_for(getattr(service, method)(request), self.timeout)
        except lk.ServerError as exc:
            if exc.status >= 500:
                raise _WorthRetrying(f"HTTP {exc.status} {exc.code}") from None
            raise self._refusal(method, exc) from None
        except aiohttp.InvalidURL:
            raise ProviderMisconfigured(f"LIVEKIT_URL gives an invalid API address: {self.api_url}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Only the exception's class: its text may carry request details.
            raise _WorthRetrying(type(exc).__name__) from None
        except protobuf_message.DecodeError:
            raise ProviderMisconfigured(
                f"LiveKit call {method} got an answer that is not LiveKit's: LIVEKIT_URL "
                f"({self.url}) may point at another server"
            ) from None

    def _refusal(self, method: str, exc: lk.ServerError):
        """The ProviderError for a 4xx Twirp answer."""
        message = _JWT.sub("<token>", exc.message or "")[:300]
        said = f" (server said: {exc.code} {message})".rstrip()
        if exc.status in (401, 403) or exc.code in ("unauthenticated", "permission_denied"):
            logger.warning("LiveKit %s: HTTP %d %s", method, exc.status, exc.code)
            return ProviderMisconfigured(
                f"LiveKit refused the credentials of {method}: LIVEKIT_API_KEY ({self.api_key}) or "
                f"LIVEKIT_API_SECRET does not match the server's keys{said}"
            )
        if exc.code == "not_found":
            logger.info("LiveKit %s: not found", method)
            return MeetingNotFound(f"LiveKit {method}: not found{said}")
        if exc.code == "bad_route" or (exc.status == 404 and exc.code == "unknown"):
            logger.warning("LiveKit %s: HTTP %d %s", method, exc.status, exc.code)
            return ProviderMisconfigured(
                f"LiveKit call {method} answered HTTP {exc.status}: LIVEKIT_URL ({self.url}) may be "
                f"wrong, or a proxy in front of the server refuses the request{said}"
            )
        logger.warning("LiveKit %s: HTTP %d %s", method, exc.status, exc.code)
        return ProviderRejected(f"LiveKit {method} failed: HTTP {exc.status}{said}", message_key=exc.code)

    # -- RoomService -------------------------------------------------------------------------

    def create_room(self, request: lk.CreateRoomRequest) -> lk.Room:
        return self.call("create_room", request, request.name)

    def list_rooms(self, names: list[str]) -> list[lk.Room]:
        return list(self.call("list_rooms", lk.ListRoomsRequest(names=names), ",".join(names)).rooms)

    def delete_room(self, room: str) -> None:
        self.call("delete_room", lk.DeleteRoomRequest(room=room), room)

    def list_participants(self, room: str) -> list[lk.ParticipantInfo]:
        return list(self.call("list_participants", lk.ListParticipantsRequest(room=room), room).participants)

    def remove_participant(self, room: str, identity: str) -> None:
        self.call("remove_participant", lk.RoomParticipantIdentity(room=room, identity=identity), room)

    def mute_published_track(self, room: str, identity: str, track_sid: str, muted: bool) -> lk.TrackInfo:
        request = lk.MuteRoomTrackRequest(room=room, identity=identity, track_sid=track_sid, muted=muted)
        return self.call("mute_published_track", request, room).track

    def update_room_metadata(self, room: str, metadata: str) -> lk.Room:
        return self.call("update_room_metadata", lk.UpdateRoomMetadataRequest(room=room, metadata=metadata), room)

    def send_data(self, request: lk.SendDataRequest) -> None:
        self.call("send_data", request, request.room)

    # -- Egress (every call needs the roomRecord grant; livekit-api puts it in the call's token) --

    def start_room_composite_egress(self, request: lk.RoomCompositeEgressRequest) -> lk.EgressInfo:
        # Not retried: a start whose answer was lost may have started a recording already.
        return self.call("start_room_composite_egress", request, request.room_name, service="egress", retry=False)

    def stop_egress(self, egress_id: str) -> lk.EgressInfo:
        return self.call("stop_egress", lk.StopEgressRequest(egress_id=egress_id), egress_id, service="egress")

    def list_egress(self, room_name: str, active: bool = False) -> list[lk.EgressInfo]:
        request = lk.ListEgressRequest(room_name=room_name, active=active)
        return list(self.call("list_egress", request, room_name, service="egress").items)


class LiveKitProvider(VideoProvider):
    """The tool's rooms on a LiveKit server (self-hosted or LiveKit Cloud)."""

    name = "livekit"

    # Egress writes files and keeps no "published" flag or name: the tool keeps those itself.
    recording_state_on_server = False

    def __init__(self, server: LiveKitServer | None, problem: str = "", recording_filepath: str = "",
                 recording_base_url: str = ""):
        self._configured_server = server
        self._problem = problem
        self.recording_filepath = (recording_filepath or "").strip()
        self.recording_base_url = (recording_base_url or "").strip().rstrip("/")

    @classmethod
    def from_config(cls, config: Mapping) -> LiveKitProvider:
        """Built from the app config; unconfigured when LIVEKIT_URL, LIVEKIT_API_KEY or
        LIVEKIT_API_SECRET is empty, or LIVEKIT_URL is not a ws(s):// or http(s):// URL (then
        every call raises ProviderMisconfigured saying which — the app still starts).
        LIVEKIT_RECORDING_FILEPATH (optional) turns recording with LiveKit Egress on."""
        values = {name: str(config.get(name) or "").strip() for name in CONFIG_NAMES}
        filepath = str(config.get(RECORDING_FILEPATH_SETTING) or "").strip()
        missing = [name for name, value in values.items() if not value]
        if missing:
            return cls(None, f"LiveKit is not configured: set {_and(missing)}")
        try:
            server = LiveKitServer(
                values["LIVEKIT_URL"],
                values["LIVEKIT_API_KEY"],
                values["LIVEKIT_API_SECRET"],
                timeout=float(config.get("PROVIDER_TIMEOUT_SECONDS") or 10),
            )
        except ValueError as exc:
            return cls(None, f"LiveKit is not configured: {exc}")
        return cls(server, recording_filepath=filepath,
                   recording_base_url=str(config.get(RECORDING_BASE_URL_SETTING) or ""))

    def is_configured(self) -> bool:
        return self._configured_server is not None

    # What the token's grants, the room and the classroom page honour (join_grants,
    # create_room_request, classroom.html). Not: muting on joining, automatic recording, a
    # separate right to start and stop recording (teachers always may, where Egress is set up),
    # shared notes (LiveKit has none).
    SUPPORTED_SETTINGS = frozenset({
        "wait_for_moderator", "everyone_moderator", "record", "lock_disable_cam", "lock_disable_mic",
        "webcams_only_for_moderator", "lock_disable_public_chat", "lock_disable_private_chat",
        "lock_hide_user_list", "max_participants", "welcome",
    })

    def supported_settings(self) -> frozenset[str]:
        return self.SUPPORTED_SETTINGS

    @property
    def server(self) -> LiveKitServer:
        if self._configured_server is None:
            raise ProviderMisconfigured(
                self._problem or f"LiveKit is not configured: set {_and(list(CONFIG_NAMES))}",
                user_message=(
                    "Live classes are not set up on this site yet. "
                    "Please tell your teacher or your site's support."
                ),
            )
        return self._configured_server

    @property
    def ws_url(self) -> str:
        """The URL browsers connect to (LIVEKIT_URL as configured)."""
        return self.server.url

    # -- tokens ------------------------------------------------------------------------------

    def access_token(
        self, spec: MeetingSpec, attendee: Attendee, ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    ) -> str:
        """A LiveKit access token (JWT) that lets this person join the room with their role.

        identity = `attendee.user_id` (stable, so reconnects and the participant list match the
        tool's user), name = the display name, metadata = `{"role": "moderator"|"attendee"}`.
        Grants: `join_grants`. Valid for `ttl_seconds` (default 2 hours) for connecting; a
        connected client is kept alive by the server's own token refresh.
        """
        moderator = _is_moderator(spec, attendee)
        role = (JoinRole.MODERATOR if moderator else JoinRole.ATTENDEE).value
        metadata = json.dumps({"role": role}, separators=(",", ":"))
        return self.server.token(
            attendee.user_id,
            " ".join(attendee.full_name.split()) or DEFAULT_PARTICIPANT_NAME,
            metadata,
            join_grants(spec, attendee),
            ttl_seconds,
        )

    # -- meetings ----------------------------------------------------------------------------

    def start_meeting(self, spec: MeetingSpec) -> MeetingStatus:
        """CreateRoom: LiveKit returns the existing room when there is one (and applies the
        non-empty settings sent), so this is safe to repeat."""
        room = self.server.create_room(create_room_request(spec))
        return _status_from(room)

    def join(self, spec: MeetingSpec, attendee: Attendee, run_id: str | None, tool_page: Callable[[str], str]) -> str:
        """The tool's own classroom page (LiveKit has no client of its own), with this person's
        access token in the URL's fragment: browsers never send a fragment to a server, so it
        stays out of every log; the page takes it out of the address bar. `run_id` is not used:
        a token is bound to the room name, whichever run of the room is live."""
        return tool_page(CLASSROOM_ENDPOINT) + "#lk=" + self.access_token(spec, attendee)

    HEALTH_CHECK_ROOM = "lti-tool-health-check"

    def check(self) -> ProviderHealth:
        """ListRooms for a room nobody holds, once: the server checks the token's signature and
        its roomList grant, so an empty answer proves the address, the key and the secret."""
        if self._configured_server is None:
            return ProviderHealth("", False, False, self._problem or "not configured")
        server = self.server.url
        try:
            self.server.call("list_rooms", lk.ListRoomsRequest(names=[self.HEALTH_CHECK_ROOM]), retry=False)
        except ProviderUnavailable as exc:
            return ProviderHealth(server, False, False, exc.detail)
        except ProviderError as exc:  # refused credentials, a proxy's 4xx, another server
            return ProviderHealth(server, True, False, exc.detail)
        return ProviderHealth(server, True, True, f"answers, and accepts the API key {self.server.api_key}")

    def page_sources(self) -> tuple[str, ...]:
        """The classroom page's WebSocket to LiveKit and the SDK's HTTP calls to the same server."""
        if not self.is_configured():
            return ()
        http = origin_of(http_url(self.server.url))
        websocket = ("wss" if http.startswith("https:") else "ws") + http[http.index(":"):]
        return (websocket, http)

    def meeting_status(self, meeting_id: str) -> MeetingStatus:
        """ListRooms, then ListParticipants for who is there (recorders, stream inputs and
        agents left out); NOT_FOUND when there is no such room."""
        room = next((r for r in self.server.list_rooms([meeting_id]) if r.name == meeting_id), None)
        if room is None:
            return NOT_FOUND
        try:
            people = [
                p
                for p in self.server.list_participants(meeting_id)
                if p.kind not in _enums()["not_people"] and p.state != lk.ParticipantInfo.State.DISCONNECTED
            ]
        except MeetingNotFound:  # closed between the two calls
            return NOT_FOUND
        participants = tuple(
            Participant(user_id=p.identity, full_name=p.name, role=participant_role(p.metadata)) for p in people
        )
        return _status_from(room, participants)

    def end_meeting(self, meeting_id: str) -> None:
        """DeleteRoom: disconnects everyone. A room that is already gone is not an error."""
        try:
            self.server.delete_room(meeting_id)
        except MeetingNotFound:
            logger.info("LiveKit DeleteRoom room=%s: already gone", meeting_id)

    def update_room_settings(self, spec: MeetingSpec) -> None:
        """UpdateRoomMetadata with the room's current settings (for a class that is running);
        a room that is not running is left alone (start_meeting sends the settings)."""
        try:
            self.server.update_room_metadata(spec.meeting_id, room_metadata(spec))
        except MeetingNotFound:
            logger.info("LiveKit UpdateRoomMetadata room=%s: not running", spec.meeting_id)

    # -- moderator actions -------------------------------------------------------------------

    def mute_participant(self, meeting_id: str, identity: str, track_sid: str, muted: bool = True) -> bool:
        """MutePublishedTrack. False when the participant or the track is no longer there."""
        try:
            self.server.mute_published_track(meeting_id, identity, track_sid, muted)
        except MeetingNotFound:
            logger.info("LiveKit MutePublishedTrack room=%s: participant or track gone", meeting_id)
            return False
        return True

    def remove_participant(self, meeting_id: str, identity: str) -> bool:
        """RemoveParticipant: disconnects them (they may join again with a new token). False
        when they were no longer in the room."""
        try:
            self.server.remove_participant(meeting_id, identity)
        except MeetingNotFound:
            logger.info("LiveKit RemoveParticipant room=%s: participant gone", meeting_id)
            return False
        return True

    def send_data(
        self, meeting_id: str, message: dict, topic: str = "lti", to_identities: tuple[str, ...] = ()
    ) -> None:
        """SendData: a JSON message to everyone in the room (or to `to_identities`), reliably."""
        request = lk.SendDataRequest(
            room=meeting_id,
            data=json.dumps(message).encode("utf-8"),
            kind=lk.DataPacket.Kind.RELIABLE,
            destination_identities=list(to_identities),
            topic=topic,
        )
        self.server.send_data(request)

    # -- recording (LiveKit Egress) ------------------------------------------------------------
    # Recording a LiveKit room needs LiveKit Egress, a separate service next to the server that
    # writes files to its own storage. The tool starts and stops a room composite recording
    # (what everyone sees, "speaker" layout) into LIVEKIT_RECORDING_FILEPATH; the finished file
    # is reported by the `egress_ended` webhook (stored as RECORDING_READY). The files stay in
    # Egress's storage: the tool lists what Egress finished (ListEgress), with a playback link
    # where LIVEKIT_RECORDING_BASE_URL says where that storage is served; publishing, renaming
    # and deleting change the tool's list only (docs/recordings.md).

    @property
    def recording_available(self) -> bool:
        """True when LiveKit is configured and LIVEKIT_RECORDING_FILEPATH is set. Whether a
        room may be recorded (its settings, the person's role) is the caller's to check."""
        return self.is_configured() and bool(self.recording_filepath)

    def start_recording(self, meeting_id: str) -> str:
        """StartRoomCompositeEgress for the room, into one file at LIVEKIT_RECORDING_FILEPATH;
        returns the egress id. Raises ProviderRejected when recording is not configured,
        MeetingNotFound when the room is not running, and the usual errors otherwise (an Egress
        service that is not running answers 5xx: ProviderUnavailable). Not retried."""
        self._require_recording()
        request = lk.RoomCompositeEgressRequest(
            room_name=meeting_id,
            layout=RECORDING_LAYOUT,
            file_outputs=[lk.EncodedFileOutput(file_type=_file_type(self.recording_filepath),
                                               filepath=self.recording_filepath)],
        )
        info = self.server.start_room_composite_egress(request)
        logger.info("LiveKit recording of room=%s started: egress %s", meeting_id, info.egress_id)
        return info.egress_id

    def stop_recording(self, egress_id: str) -> None:
        """StopEgress. A recording that is already gone or already stopping is not an error."""
        try:
            self.server.stop_egress(egress_id)
        except MeetingNotFound:
            logger.info("LiveKit StopEgress %s: no such egress", egress_id)
        except ProviderRejected as exc:
            if exc.message_key != "failed_precondition":  # "egress with status … cannot be stopped"
                raise
            logger.info("LiveKit StopEgress %s: not active any more", egress_id)

    def active_recordings(self, meeting_id: str) -> list[str]:
        """Ids of the egresses recording the room now (ListEgress room_name, active=True; those
        already stopping left out). [] when recording is not configured, without a call."""
        if not self.recording_available:
            return []
        return [
            info.egress_id
            for info in self.server.list_egress(meeting_id, active=True)
            if info.room_name == meeting_id and info.status in _enums()["recording"]
        ]

    def active_recording(self, meeting_id: str) -> str | None:
        """The id of the egress recording the room now, or None."""
        active = self.active_recordings(meeting_id)
        return active[0] if active else None

    def recordings(self, meeting_id: str) -> list[Recording]:
        """The room's finished egresses that left a file (ListEgress of the room; Egress keeps
        them for a while, the tool keeps its own list longer). [] without Egress configured."""
        if not self.recording_available:
            return []
        return [
            self._recording_of(info, info.file_results[0])
            for info in self.server.list_egress(meeting_id)
            if info.room_name == meeting_id and info.status in _enums()["finished"] and info.file_results
        ]

    def _recording_of(self, info, file) -> Recording:
        started = (file.started_at or info.started_at) // 1_000_000 or None
        ended = (file.ended_at or info.ended_at) // 1_000_000 or None
        return Recording(
            record_id=info.egress_id,
            run_id=info.room_id,
            started_at_ms=started,
            ended_at_ms=ended,
            length_minutes=round(file.duration / 60_000_000_000) if file.duration else None,
            playback_url=self._playback_url(file.filename, file.location),
            name=file.filename.rsplit("/", 1)[-1],
        )

    def _playback_url(self, filename: str, location: str) -> str:
        """LIVEKIT_RECORDING_BASE_URL + the file's name where set; else the file's location when
        it is a web address (S3, GCS and Azure uploads report one); else no link."""
        if self.recording_base_url and filename:
            return f"{self.recording_base_url}/{filename.lstrip('/')}"
        return location if location.startswith(("https://", "http://")) else ""

    # Egress keeps no state of a recording for people: the tool's own list does (see above).
    def publish_recording(self, record_id: str, publish: bool) -> None:
        return None

    def rename_recording(self, record_id: str, name: str) -> None:
        return None

    def delete_recording(self, record_id: str) -> None:
        logger.info("LiveKit recording %s: removed from the tool's list; the file stays in Egress's storage",
                    record_id)

    def _require_recording(self) -> None:
        self.server  # noqa: B018 — refuse first when LiveKit itself is not configured
        if not self.recording_filepath:
            raise ProviderRejected(
                f"recording needs LiveKit Egress: set {RECORDING_FILEPATH_SETTING}",
                message_key="egressNotConfigured",
                user_message="Recording is not set up for live classes on this site.",
            )



# -- requests and grants ------------------------------------------------------------------------


def _is_moderator(spec: MeetingSpec, attendee: Attendee) -> bool:
    return attendee.role == JoinRole.MODERATOR or spec.settings.everyone_moderator


def join_grants(spec: MeetingSpec, attendee: Attendee) -> lk.VideoGrants:
    """What this person may do in the room.

    Moderators (and everyone in an `everyone_moderator` room): join, administer the room
    (mute/remove through the server API), subscribe, publish every source, and record when the
    room allows recording (`settings.record`).

    Attendees: join and subscribe; publish the camera unless `lock_disable_cam` or
    `webcams_only_for_moderator` is set, the microphone unless `lock_disable_mic` is set, never
    the screen. `webcams_only_for_moderator` means in BBB that only moderators see students'
    webcams; grants cannot say "publish, but only moderators may subscribe", so students'
    cameras are off in such a room rather than shown to everyone.

    No one may publish data: chat, hands and the recording state go through the tool
    (messages.py), which checks the chat locks and counts what it sends. No one may update
    their own metadata (it carries the role).
    """
    s = spec.settings
    if _is_moderator(spec, attendee):
        return lk.VideoGrants(
            room_join=True,
            room=spec.meeting_id,
            room_admin=True,
            room_record=True if s.record else None,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=False,
            can_publish_sources=list(MODERATOR_SOURCES),
        )
    sources = []
    if not (s.lock_disable_cam or s.webcams_only_for_moderator):
        sources.append(CAMERA)
    if not s.lock_disable_mic:
        sources.append(MICROPHONE)
    return lk.VideoGrants(
        room_join=True,
        room=spec.meeting_id,
        can_publish=bool(sources),
        can_subscribe=True,
        can_publish_data=False,
        can_publish_sources=sources or None,
    )


def room_metadata(spec: MeetingSpec) -> str:
    """The room metadata every participant's page reads: the room's name, where to go on
    leaving, and its settings. Everyone in the room can read it: no callback URLs here."""
    settings = asdict(spec.settings)
    settings["welcome"] = (settings.get("welcome") or "")[:WELCOME_MAX_CHARS]
    return json.dumps(
        {"name": spec.name, "logout_url": spec.logout_url, "settings": settings}, separators=(",", ":")
    )


def create_room_request(spec: MeetingSpec) -> lk.CreateRoomRequest:
    return lk.CreateRoomRequest(
        name=spec.meeting_id,
        empty_timeout=EMPTY_TIMEOUT_SECONDS,
        max_participants=max(0, spec.settings.max_participants),  # 0 = no limit
        metadata=room_metadata(spec),
    )


# -- answers ------------------------------------------------------------------------------------


def _status_from(room: lk.Room, participants: tuple[Participant, ...] | None = None) -> MeetingStatus:
    count = room.num_participants if participants is None else len(participants)
    return MeetingStatus(
        exists=True,
        running=room.num_participants > 0,
        run_id=room.sid,  # a room that closes and opens again is another run, with another sid
        started_at_ms=room.creation_time * 1000 if room.creation_time else None,
        participant_count=count,
        moderator_count=sum(1 for p in participants or () if p.role == MODERATOR),
        participants=participants or (),
    )


def _file_type(filepath: str) -> int:
    """MP4 for a .mp4 path, OGG for .ogg; otherwise Egress's default (it adds the extension)."""
    for suffix, file_type in _enums()["file_types"].items():
        if filepath.lower().endswith(suffix):
            return file_type
    return lk.EncodedFileType.DEFAULT_FILETYPE


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
