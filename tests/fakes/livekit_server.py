"""A fake LiveKit server's RoomService and Egress over real HTTP, and LiveKit's webhook sender,
for tests.

It answers `POST /twirp/livekit.RoomService/<Method>` for CreateRoom, ListRooms, DeleteRoom,
ListParticipants, GetParticipant, RemoveParticipant, UpdateParticipant, MutePublishedTrack,
UpdateRoomMetadata and SendData, and `POST /twirp/livekit.Egress/<Method>` for
StartRoomCompositeEgress, StopEgress and ListEgress (grant `roomRecord`; egresses live in
`lk.egresses`, EGRESS_ACTIVE when started, EGRESS_COMPLETE with a file result once stopped —
no media is written), in both encodings a Twirp server speaks — protobuf, which
livekit-api sends, and protojson — after checking the Bearer token as LiveKit does: HS256 with
the secret, `iss` = the API key, `exp` required, and the grant each call needs
(docs/reference/livekit.md §1, §3). A refused token or grant answers 401
`{"code": "unauthenticated", "msg": …}`; a missing room or participant 404 `not_found`. Rooms
and participants live in memory. There is no media: tests say who is in a room.

    with FakeLiveKit(KEY, SECRET) as lk:
        lk.join("room-1", "u1", "Ann", '{"role":"attendee"}')  # someone connects
        lk.fail_next(2)                # the next two calls answer HTTP 500
        lk.count("CreateRoom")         # how many CreateRoom requests arrived (failed ones too)
        lk.send_webhook(url, lk.participant_joined("room-1", "u1", at=1715261730))
        lk.active_egresses("room-1")   # the EgressInfos recording room-1 now
        lk.send_webhook(url, lk.egress_ended(egress_id, at=1715265401))
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

import jwt
import requests
from flask import Flask, Response, request
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit.protocol import egress as egress_proto
from livekit.protocol import models
from livekit.protocol import room as room_proto
from livekit.protocol import webhook as webhook_proto

from .http_server import ServedApp

SERVICE_PATH = "/twirp/livekit.RoomService/"
EGRESS_PATH = "/twirp/livekit.Egress/"
PROTOBUF = "application/protobuf"
JSON = "application/json"
WEBHOOK_CONTENT_TYPE = "application/webhook+json"
TWIRP_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "internal": 500,
    "unavailable": 503,
}
FAILURE_CODES = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
                 503: "unavailable"}

# Request type, response type, and the grant a call needs ("create", "list" or "admin" = roomAdmin
# for the request's room), as in livekit-api's room_service.py and the server's auth.go.
METHODS = {
    "CreateRoom": (room_proto.CreateRoomRequest, models.Room, "create"),
    "ListRooms": (room_proto.ListRoomsRequest, room_proto.ListRoomsResponse, "list"),
    "DeleteRoom": (room_proto.DeleteRoomRequest, room_proto.DeleteRoomResponse, "create"),
    "ListParticipants": (room_proto.ListParticipantsRequest, room_proto.ListParticipantsResponse, "admin"),
    "GetParticipant": (room_proto.RoomParticipantIdentity, models.ParticipantInfo, "admin"),
    "RemoveParticipant": (room_proto.RoomParticipantIdentity, room_proto.RemoveParticipantResponse, "admin"),
    "UpdateParticipant": (room_proto.UpdateParticipantRequest, models.ParticipantInfo, "admin"),
    "MutePublishedTrack": (room_proto.MuteRoomTrackRequest, room_proto.MuteRoomTrackResponse, "admin"),
    "UpdateRoomMetadata": (room_proto.UpdateRoomMetadataRequest, models.Room, "admin"),
    "SendData": (room_proto.SendDataRequest, room_proto.SendDataResponse, "admin"),
}
# Every Egress call needs roomRecord ("record"), as in livekit-api's egress_service.py.
EGRESS_METHODS = {
    "StartRoomCompositeEgress": (egress_proto.RoomCompositeEgressRequest, egress_proto.EgressInfo, "record"),
    "StopEgress": (egress_proto.StopEgressRequest, egress_proto.EgressInfo, "record"),
    "ListEgress": (egress_proto.ListEgressRequest, egress_proto.ListEgressResponse, "record"),
}
EGRESS_ACTIVE = egress_proto.EgressStatus.EGRESS_ACTIVE
EGRESS_COMPLETE = egress_proto.EgressStatus.EGRESS_COMPLETE


class TwirpError(Exception):
    def __init__(self, code: str, msg: str, status: int | None = None):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status or TWIRP_STATUS.get(code, 500)


@dataclass
class Call:
    """One RoomService or Egress request as it arrived: `video` is the token's video grant
    (camelCase)."""

    method: str
    body: dict  # the request as protojson (camelCase), {} when it could not be read
    video: dict
    content_type: str
    status: int = 200


@dataclass
class FakeRoom:
    room: models.Room
    participants: dict = field(default_factory=dict)  # identity -> models.ParticipantInfo


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


class FakeLiveKit:
    def __init__(self, api_key: str, api_secret: str):
        self.api_key = api_key
        self.api_secret = api_secret
        self.delay_seconds = 0.0
        self.rooms: dict[str, FakeRoom] = {}
        self.calls: list[Call] = []
        self.sent_data: list[room_proto.SendDataRequest] = []
        self.egresses: dict[str, egress_proto.EgressInfo] = {}  # egress id -> info, in start order
        self._failures: list[int] = []
        self._sids: dict[str, str] = {}  # room name -> sid of its latest run (for webhooks)
        self._participant_sids: dict[tuple[str, str], str] = {}  # (room, identity) -> latest sid
        self._lock = threading.RLock()
        self.app = self._build_app()
        self._served = ServedApp(self.app)
        self.url = self._served.url
        self.ws_url = "ws://" + self.url.split("://", 1)[1]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeLiveKit:
        self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> FakeLiveKit:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.method == method)

    def last(self, method: str) -> Call:
        with self._lock:
            return [call for call in self.calls if call.method == method][-1]

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next `n` requests (RoomService or Egress) answer HTTP `status` (Twirp JSON) and do
        nothing."""
        with self._lock:
            self._failures.extend([status] * n)

    def join(self, room: str, identity: str, name: str = "", metadata: str = "", kind: str = "STANDARD"):
        """Someone connects with a token for `room` (created on the fly, as LiveKit's auto_create
        does). The same identity again replaces the earlier connection, with a new sid."""
        now = time.time()
        participant = models.ParticipantInfo(
            sid=new_sid("PA_"),
            identity=identity,
            name=name,
            metadata=metadata,
            state=models.ParticipantInfo.State.ACTIVE,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            kind=models.ParticipantInfo.Kind.Value(kind),
            region="fake",
        )
        with self._lock:
            fake = self.rooms.get(room) or self._create(room_proto.CreateRoomRequest(name=room))
            fake.participants[identity] = participant
            fake.room.num_participants = len(fake.participants)
            self._participant_sids[(room, identity)] = participant.sid
        return participant

    def leave(self, room: str, identity: str) -> None:
        with self._lock:
            fake = self.rooms[room]
            fake.participants.pop(identity, None)
            fake.room.num_participants = len(fake.participants)

    def publish(self, room: str, identity: str, source: str = "MICROPHONE") -> str:
        """The participant publishes a track; returns its sid."""
        track_type = "VIDEO" if source in ("CAMERA", "SCREEN_SHARE") else "AUDIO"
        track = models.TrackInfo(
            sid=new_sid("TR_"), type=models.TrackType.Value(track_type), source=models.TrackSource.Value(source)
        )
        with self._lock:
            self.rooms[room].participants[identity].tracks.append(track)
        return track.sid

    def close(self, room: str) -> None:
        """The room closes by itself (empty timeout, or LiveKit restarted)."""
        with self._lock:
            self.rooms.pop(room, None)

    def active_egresses(self, room: str | None = None) -> list[egress_proto.EgressInfo]:
        """Egresses still recording (of `room`, or of any room), oldest first."""
        with self._lock:
            return [
                info for info in self.egresses.values()
                if info.status < EGRESS_COMPLETE and (room is None or info.room_name == room)
            ]

    def finish_egress(
        self, egress_id: str, status: str = "EGRESS_COMPLETE", error: str = ""
    ) -> egress_proto.EgressInfo:
        """The egress ends by itself (`status`: EGRESS_COMPLETE, EGRESS_FAILED, EGRESS_LIMIT_REACHED…),
        as when Egress fails or its time limit is reached; returns its info."""
        with self._lock:
            info = self.egresses[egress_id]
            self._end_egress(info, egress_proto.EgressStatus.Value(status), error)
            return info

    # -- HTTP --------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.add_url_rule(SERVICE_PATH + "<method>", "twirp", self._twirp, methods=["POST"])
        app.add_url_rule(EGRESS_PATH + "<method>", "egress", self._twirp_egress, methods=["POST"])
        return app

    def _twirp_egress(self, method: str) -> Response:
        return self._twirp(method, EGRESS_METHODS)

    def _twirp(self, method: str, methods: dict = METHODS) -> Response:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        call = Call(method, {}, {}, content_type)
        with self._lock:
            self.calls.append(call)
            failure = self._failures.pop(0) if self._failures else None
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        try:
            if failure is not None:
                raise TwirpError(FAILURE_CODES.get(failure, "internal"), "fake failure", failure)
            if method not in methods:
                raise TwirpError("bad_route", f"no handler for path {request.path!r}")
            request_type, _, needs = methods[method]
            call.video = self._verify_token()  # the middleware checks the token before anything
            message = self._read(request_type, content_type)
            call.body = json_format.MessageToDict(message)
            self._check_grant(call.video, needs, getattr(message, "room", "") or getattr(message, "name", ""))
            with self._lock:
                answer = getattr(self, "_" + method)(message)
        except TwirpError as exc:
            call.status = exc.status
            return Response(json.dumps({"code": exc.code, "msg": exc.msg}), status=exc.status, mimetype=JSON)
        if content_type == JSON:
            # Twirp's default JSON: proto field names.
            return Response(json_format.MessageToJson(answer, preserving_proto_field_name=True), mimetype=JSON)
        return Response(answer.SerializeToString(), mimetype=PROTOBUF)

    def _read(self, request_type, content_type: str):
        data = request.get_data()
        try:
            if content_type == PROTOBUF:
                return request_type.FromString(data)
            if content_type == JSON:
                return json_format.Parse(data or b"{}", request_type(), ignore_unknown_fields=True)
        except (DecodeError, json_format.ParseError) as exc:
            raise TwirpError("malformed", f"the request could not be decoded: {exc}") from None
        raise TwirpError("bad_route", f"unexpected Content-Type: {content_type!r}")

    def _verify_token(self) -> dict:
        """The video grant of a valid Bearer token; 401 otherwise."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise TwirpError("unauthenticated", "invalid authorization header. Must start with Bearer ")
        token = header[len("Bearer "):]
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise TwirpError("unauthenticated", "invalid authorization token") from None
        if unverified.get("iss") != self.api_key:
            raise TwirpError("unauthenticated", f"invalid API key: {unverified.get('iss')}")
        try:
            claims = jwt.decode(
                token, self.api_secret, algorithms=["HS256"], issuer=self.api_key, leeway=10,
                options={"require": ["exp", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            raise TwirpError("unauthenticated", f"invalid token: {exc}") from None
        return claims.get("video") or {}

    @staticmethod
    def _check_grant(video: dict, needs: str, room: str) -> None:
        allowed = {
            "create": video.get("roomCreate") is True,
            "list": video.get("roomList") is True,
            "admin": video.get("roomAdmin") is True and video.get("room") == room,
            "record": video.get("roomRecord") is True,
        }[needs]
        if not allowed:
            raise TwirpError("unauthenticated", "permissions denied")  # as twirpAuthError does

    # -- RoomService (called with the lock held) ---------------------------------------------

    def _create(self, req: room_proto.CreateRoomRequest) -> FakeRoom:
        now = time.time()
        room = models.Room(
            sid=new_sid("RM_"),
            name=req.name,
            empty_timeout=req.empty_timeout or 300,
            departure_timeout=req.departure_timeout or 20,
            max_participants=req.max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            metadata=req.metadata,
        )
        self.rooms[req.name] = fake = FakeRoom(room)
        self._sids[req.name] = room.sid
        return fake

    def _room(self, name: str) -> FakeRoom:
        if name not in self.rooms:
            raise TwirpError("not_found", "room not found")
        return self.rooms[name]

    def _participant(self, room: str, identity: str) -> models.ParticipantInfo:
        participant = self._room(room).participants.get(identity)
        if participant is None:
            raise TwirpError("not_found", "participant not found")
        return participant

    def _CreateRoom(self, req):
        if not req.name:
            raise TwirpError("invalid_argument", "room name is required")
        fake = self.rooms.get(req.name)
        if fake is None:
            return self._create(req).room
        # An existing room is returned, with the non-empty settings of the request applied.
        for name in ("empty_timeout", "departure_timeout", "max_participants", "metadata"):
            if getattr(req, name):
                setattr(fake.room, name, getattr(req, name))
        return fake.room

    def _ListRooms(self, req):
        names = list(req.names)
        rooms = [f.room for name, f in self.rooms.items() if not names or name in names]
        return room_proto.ListRoomsResponse(rooms=rooms)

    def _DeleteRoom(self, req):
        self._room(req.room)
        del self.rooms[req.room]
        return room_proto.DeleteRoomResponse()

    def _ListParticipants(self, req):
        fake = self.rooms.get(req.room)  # an unknown room has no participants
        return room_proto.ListParticipantsResponse(participants=list(fake.participants.values()) if fake else [])

    def _GetParticipant(self, req):
        return self._participant(req.room, req.identity)

    def _UpdateParticipant(self, req):
        participant = self._participant(req.room, req.identity)
        if req.metadata:
            participant.metadata = req.metadata
        if req.name:
            participant.name = req.name
        if req.HasField("permission"):
            participant.permission.CopyFrom(req.permission)
        participant.attributes.update(req.attributes)
        return participant

    def _RemoveParticipant(self, req):
        self._participant(req.room, req.identity)
        self.leave(req.room, req.identity)
        return room_proto.RemoveParticipantResponse()

    def _MutePublishedTrack(self, req):
        participant = self._participant(req.room, req.identity)
        track = next((t for t in participant.tracks if t.sid == req.track_sid), None)
        if track is None:
            raise TwirpError("not_found", "track is not found")
        track.muted = req.muted
        return room_proto.MuteRoomTrackResponse(track=track)

    def _UpdateRoomMetadata(self, req):
        fake = self._room(req.room)
        fake.room.metadata = req.metadata
        return fake.room

    def _SendData(self, req):
        self._room(req.room)
        self.sent_data.append(req)
        return room_proto.SendDataResponse()

    # -- Egress (called with the lock held) ---------------------------------------------------

    def _StartRoomCompositeEgress(self, req):
        if not req.room_name:
            raise TwirpError("invalid_argument", "room name is required")
        outputs = list(req.file_outputs) + ([req.file] if req.HasField("file") else [])
        if not (outputs or req.stream_outputs or req.segment_outputs or req.image_outputs
                or req.HasField("stream") or req.HasField("segments")):
            raise TwirpError("invalid_argument", "no outputs")
        fake = self._room(req.room_name)  # LiveKit loads the room first: "room not found"
        now = time.time_ns()
        info = egress_proto.EgressInfo(
            egress_id=new_sid("EG_"),
            room_id=fake.room.sid,
            room_name=req.room_name,
            status=EGRESS_ACTIVE,
            started_at=now,
            updated_at=now,
            source_type=egress_proto.EgressSourceType.EGRESS_SOURCE_TYPE_WEB,
        )
        info.room_composite.CopyFrom(req)
        self.egresses[info.egress_id] = info
        fake.room.active_recording = True
        return info

    def _StopEgress(self, req):
        info = self.egresses.get(req.egress_id)
        if info is None:
            raise TwirpError("not_found", "egress does not exist")
        if info.status >= EGRESS_COMPLETE:
            name = egress_proto.EgressStatus.Name(info.status)
            raise TwirpError("failed_precondition", f"egress with status {name} cannot be stopped", 412)
        self._end_egress(info, EGRESS_COMPLETE)
        return info

    def _ListEgress(self, req):
        items = [
            info for info in self.egresses.values()
            if (not req.room_name or info.room_name == req.room_name)
            and (not req.egress_id or info.egress_id == req.egress_id)
            and (not req.active or info.status < EGRESS_COMPLETE)
        ]
        return egress_proto.ListEgressResponse(items=items)

    def _end_egress(self, info: egress_proto.EgressInfo, status: int, error: str = "") -> None:
        now = time.time_ns()
        info.status, info.ended_at, info.updated_at = status, now, now
        if error:
            info.error = error
        if status in (EGRESS_COMPLETE, egress_proto.EgressStatus.EGRESS_LIMIT_REACHED):
            request = info.room_composite
            outputs = list(request.file_outputs) + ([request.file] if request.HasField("file") else [])
            for output in outputs:
                filename = _fill_placeholders(output.filepath or "{room_name}-{time}.mp4", info)
                info.file_results.append(egress_proto.FileInfo(
                    filename=filename,
                    started_at=info.started_at,
                    ended_at=now,
                    duration=now - info.started_at,
                    size=1024 * 1024,
                    location=f"fake-storage://{filename}",
                ))
        fake = self.rooms.get(info.room_name)
        if fake is not None:
            fake.room.active_recording = any(
                e.status < EGRESS_COMPLETE for e in self.egresses.values() if e.room_name == info.room_name
            )

    # -- webhooks: signed and encoded like LiveKit's sender ----------------------------------

    def sign_webhook(self, body: bytes, *, api_key: str | None = None, api_secret: str | None = None,
                     valid_seconds: int = 300, now: float | None = None) -> str:
        """The `Authorization` value LiveKit sends: a bare HS256 JWT {iss, sha256, iat, nbf, exp}."""
        issued = int(time.time() if now is None else now)
        claims = {
            "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"),
            "iss": api_key or self.api_key,
            "nbf": issued,
            "iat": issued,
            "exp": issued + valid_seconds,
        }
        return jwt.encode(claims, api_secret or self.api_secret, algorithm="HS256")

    @staticmethod
    def webhook_body(event: dict) -> bytes:
        """protojson-like bytes: compact, field order as given, int64 values already strings."""
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def send_webhook(self, url: str, event: dict, *, authorization: str | None = None,
                     api_key: str | None = None, api_secret: str | None = None) -> requests.Response:
        """POST `event` to `url` as LiveKit does; `authorization` to send another header value,
        `api_key`/`api_secret` to sign as someone else."""
        body = self.webhook_body(event)
        headers = {
            "Authorization": authorization
            if authorization is not None
            else self.sign_webhook(body, api_key=api_key, api_secret=api_secret),
            "Content-Type": WEBHOOK_CONTENT_TYPE,
            "User-Agent": "LiveKit",
        }
        return requests.post(url, data=body, headers=headers, timeout=10)

    # Builders of WebhookEvents as LiveKit sends them (`at`: the event's createdAt, in seconds).
    # They describe the fake's rooms and participants when it knows them, so events and RoomService
    # answers agree; otherwise they make up sids, stable per room name and identity.

    def room_started(self, room: str, at: int) -> dict:
        return self._event("room_started", room, at)

    def room_finished(self, room: str, at: int) -> dict:
        return self._event("room_finished", room, at)

    def participant_joined(self, room: str, identity: str, at: int, name: str = "", metadata: str = "") -> dict:
        return self._event("participant_joined", room, at, self._participant_info(room, identity, name, metadata, at))

    def participant_left(self, room: str, identity: str, at: int, name: str = "", metadata: str = "",
                         joined_at: int | None = None) -> dict:
        info = self._participant_info(room, identity, name, metadata, joined_at or at)
        info.state = models.ParticipantInfo.State.DISCONNECTED
        info.disconnect_reason = models.DisconnectReason.Value("CLIENT_INITIATED")
        return self._event("participant_left", room, at, info)

    def egress_started(self, egress_id: str, at: int) -> dict:
        """egress_started for one of the fake's egresses (as it is now)."""
        return self._egress_event("egress_started", egress_id, at)

    def egress_updated(self, egress_id: str, at: int) -> dict:
        return self._egress_event("egress_updated", egress_id, at)

    def egress_ended(self, egress_id: str, at: int, room: str = "", filename: str = "recording.mp4",
                     status: str = "EGRESS_COMPLETE") -> dict:
        """egress_ended with `egressInfo.status` and its `fileResults`. For one of the fake's
        egresses, stopped if it still runs; for an unknown id, one made up for `room`."""
        with self._lock:
            info = self.egresses.get(egress_id)
            if info is not None and info.status < EGRESS_COMPLETE:
                self._end_egress(info, egress_proto.EgressStatus.Value(status))
            if info is None:
                started = (at - 3600) * 1_000_000_000
                ended = at * 1_000_000_000
                info = egress_proto.EgressInfo(
                    egress_id=egress_id, room_id=self._room_info(room).sid, room_name=room,
                    status=egress_proto.EgressStatus.Value(status), started_at=started, ended_at=ended,
                    updated_at=ended, source_type=egress_proto.EgressSourceType.EGRESS_SOURCE_TYPE_WEB,
                )
                info.file_results.append(egress_proto.FileInfo(
                    filename=filename, started_at=started, ended_at=ended, duration=ended - started,
                    size=123456789, location=f"fake-storage://{filename}",
                ))
        return self._egress_event("egress_ended", egress_id, at, info)

    def _egress_event(self, name: str, egress_id: str, at: int, info=None) -> dict:
        with self._lock:
            copy = egress_proto.EgressInfo()
            copy.CopyFrom(info if info is not None else self.egresses[egress_id])
        event = webhook_proto.WebhookEvent(
            event=name, room=self._room_info(copy.room_name), id=new_sid("EV_"), created_at=at
        )
        event.egress_info.CopyFrom(copy)
        return json_format.MessageToDict(event)

    def _room_info(self, name: str) -> models.Room:
        with self._lock:
            fake = self.rooms.get(name)
            if fake is not None:
                info = models.Room()
                info.CopyFrom(fake.room)
                return info
            sid = self._sids.setdefault(name, new_sid("RM_"))
        return models.Room(sid=sid, name=name, empty_timeout=300, departure_timeout=20)

    def _participant_info(self, room: str, identity: str, name: str, metadata: str, joined_at: int):
        with self._lock:
            fake = self.rooms.get(room)
            current = fake.participants.get(identity) if fake else None
            if current is not None:
                info = models.ParticipantInfo()
                info.CopyFrom(current)
                return info
            sid = self._participant_sids.setdefault((room, identity), new_sid("PA_"))
        return models.ParticipantInfo(
            sid=sid, identity=identity, name=name, metadata=metadata, state=models.ParticipantInfo.State.ACTIVE,
            joined_at=joined_at, joined_at_ms=joined_at * 1000, region="fake",
        )

    def _event(self, name: str, room: str, at: int, participant: models.ParticipantInfo | None = None) -> dict:
        event = webhook_proto.WebhookEvent(
            event=name, room=self._room_info(room), id=new_sid("EV_"), created_at=at
        )
        if participant is not None:
            event.participant.CopyFrom(participant)
        # protojson: lowerCamelCase names, int64 as strings, enums by name, zero values left out.
        return json_format.MessageToDict(event)


def _fill_placeholders(filepath: str, info: egress_proto.EgressInfo) -> str:
    """Egress's filename placeholders the fake knows: {room_name}, {room_id}, {time} (UTC start,
    as Egress writes it: 2006-01-02T150405)."""
    started = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(info.started_at / 1e9))
    return (filepath.replace("{room_name}", info.room_name).replace("{room_id}", info.room_id)
            .replace("{time}", started))
