"""The LiveKit classroom's messages (chat, raised hands, the recording state), relayed by the tool.

Participants' tokens do not let anyone publish data (`join_grants`): every classroom message is
a POST to the tool (classroom.py `message`), which checks who sends it against their own
enrolment and the room settings, sends it to the room with RoomService.SendData on the topic
"classroom", and counts it (attendance/engagement.py) in the same transaction. The payload's
`from` (the sender's LiveKit identity) and `role` are the tool's, never the request's, and the
pages trust only messages that come from the server (no participant), so what a page shows and
what the tool counts are the same messages. docs/attendance-and-grades.md, "Engagement".
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ...attendance.engagement import count_relayed, current_session, open_relayed_row
from ...extensions import db
from ...grades.service import queue_room_scores
from ...logsafe import quoted
from ...lti.roles import MODERATOR
from ...models import UNSTORABLE, Enrolment, User
from ...rooms import service
from ..base import JoinRole
from .provider import LiveKitProvider

TOPIC = "classroom"
MAX_IDENTITY = 255  # a LiveKit identity the tool gave: a user's public id (users.public_id is shorter)
MAX_TEXT = 1000  # characters of one chat message (the page cuts at the same length)
TYPES = ("chat", "hand", "recording")
SOURCE = "livekit"  # the engagement rows' `source`: counted by the tool from what it relayed


class Refused(Exception):
    """A message the tool will not relay: `status` (400, 403, 409) and a reason to show."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Outgoing:
    """What the tool sends: the payload, to whom (() = everyone), and what it counts."""

    payload: dict
    to: tuple[str, ...] = ()
    counts: str | None = None  # "chat_messages" / "raised_hands" / None


def _flag(value: str | None, what: str) -> bool:
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise Refused(400, f"{what} must be true or false.")


def _identity(value: str) -> str:
    if len(value) > MAX_IDENTITY or UNSTORABLE.search(value):
        raise Refused(400, "That is not someone in this class.")
    return value


def _recipient(room, identity: str) -> Enrolment:
    """The enrolment (in this room's activity) of the person with this LiveKit identity."""
    enrolment = db.session.scalar(
        select(Enrolment).join(User, User.id == Enrolment.user_id)
        .where(User.public_id == identity, Enrolment.resource_link_id == room.resource_link_id))
    if enrolment is None:
        raise Refused(400, "That person is not in this class.")
    return enrolment


def _chat(room, sender: Enrolment, teacherly: bool, form) -> Outgoing:
    text = (form.get("text") or "").strip()
    if not text:
        raise Refused(400, "The message is empty.")
    if len(text) > MAX_TEXT:
        raise Refused(400, f"A message may have at most {MAX_TEXT} characters.")
    settings = service.room_settings(room)
    to = form.get("to") or ""
    if not to:
        if settings.lock_disable_public_chat and not teacherly:
            raise Refused(403, "Students may not write in the class chat in this room.")
        return Outgoing({"type": "chat", "text": text, "private": False}, counts="chat_messages")
    if to == sender.user.public_id:
        raise Refused(400, "A private message needs someone else to go to.")
    recipient = _recipient(room, to)
    if settings.lock_disable_private_chat and not teacherly and not _teacherly(room, recipient):
        raise Refused(403, "Students may write privately only to a teacher in this room.")
    return Outgoing({"type": "chat", "text": text, "private": True}, to=(to,), counts="chat_messages")


def _hand(room, sender: Enrolment, form) -> Outgoing:
    raised = _flag(form.get("raised"), "raised")
    identity = form.get("identity") or ""
    if identity and identity != sender.user.public_id:
        if sender.role != MODERATOR or raised:
            raise Refused(403, "Only a teacher may lower someone else's hand.")
        _identity(identity)  # whoever is in the room (lowering a hand nobody raised changes nothing)
        return Outgoing({"type": "hand", "raised": False, "identity": identity})
    to = form.get("to") or ""
    if to:  # a raised hand told again to one newcomer (data messages are not kept): not a new raise
        return Outgoing({"type": "hand", "raised": raised}, to=(_identity(to),))
    return Outgoing({"type": "hand", "raised": raised}, counts="raised_hands" if raised else None)


def _teacherly(room, enrolment: Enrolment) -> bool:
    """A teacher inside the meeting: by their own role, or everyone in an everyone-moderator room
    (as their token's metadata says, providers/livekit/provider.py `_is_moderator`)."""
    return enrolment.role == MODERATOR or service.room_settings(room).everyone_moderator


def outgoing(room, sender: Enrolment, form) -> Outgoing:
    """The message this request asks the tool to send, checked; `Refused` otherwise."""
    kind = form.get("type")
    if kind not in TYPES:
        raise Refused(400, "Unknown message type.")
    teacherly = _teacherly(room, sender)
    if kind == "chat":
        message = _chat(room, sender, teacherly, form)
    elif kind == "hand":
        message = _hand(room, sender, form)
    else:
        if sender.role != MODERATOR:
            raise Refused(403, "Only a teacher may say whether the class is being recorded.")
        message = Outgoing({"type": "recording", "active": _flag(form.get("active"), "active")})
    role = (JoinRole.MODERATOR if teacherly else JoinRole.ATTENDEE).value
    return Outgoing({**message.payload, "from": sender.user.public_id, "role": role}, message.to, message.counts)


def relay(room, provider: LiveKitProvider, sender: Enrolment, form) -> Outgoing:
    """Check, count and send one classroom message; commits once LiveKit has it (a failed
    send counts nothing). Raises `Refused`, or the provider's `ProviderError`."""
    message = outgoing(room, sender, form)
    session = current_session(room) if message.counts else None
    if message.counts and session is None:
        raise Refused(409, "The class is not running.")
    if session is not None:
        count_relayed(session, sender.user.public_id, message.counts, SOURCE)
    try:
        provider.send_data(room.meeting_id, message.payload, topic=TOPIC, to_identities=message.to)
    except Exception:
        db.session.rollback()
        raise
    if session is not None and session.ended_at is not None:
        queue_room_scores(room)  # a message counted after the run's end (late webhook) may change a grade
    db.session.commit()
    return message


def open_engagement(room, identity: str) -> None:
    """The person's engagement row for the current run, chat and hands at 0, when they open the
    classroom (a page opened before the class runs has no run yet: its first message makes it)."""
    running = room.running or room.started_since_last_end  # as the page loads: no provider call
    session = current_session(room) if running and room.run_id else None
    if session is not None:
        open_relayed_row(session, identity, SOURCE)
        db.session.commit()


def describe(message: Outgoing) -> str:
    """For the log: the type and destination, never the text."""
    to = f" to {quoted(message.to[0], 40)}" if message.to else ""
    return f"{message.payload['type']}{to}"
