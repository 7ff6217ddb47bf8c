"""The small interface every video provider implements, and the values it exchanges.

The rooms service talks to BigBlueButton and LiveKit only through `VideoProvider`. A provider
knows nothing of the database: it gets plain values (`MeetingSpec`, `Attendee`) and answers
with plain values (`MeetingStatus`, `Recording`) or raises a `ProviderError`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum


class JoinRole(str, Enum):
    MODERATOR = "moderator"
    ATTENDEE = "attendee"


@dataclass(frozen=True)
class RoomSettings:
    """What a teacher can choose for a room; providers map these onto their own options."""

    wait_for_moderator: bool = True
    everyone_moderator: bool = False
    record: bool = True
    auto_start_recording: bool = False
    allow_start_stop_recording: bool = True
    mute_on_start: bool = False
    webcams_only_for_moderator: bool = False
    lock_disable_cam: bool = False
    lock_disable_mic: bool = False
    lock_disable_private_chat: bool = False
    lock_disable_public_chat: bool = False
    lock_disable_notes: bool = False
    lock_hide_user_list: bool = False
    max_participants: int = 0  # 0 = no limit
    welcome: str = ""


@dataclass(frozen=True)
class MeetingSpec:
    """Everything a provider needs to create (or re-create) the meeting of one room."""

    meeting_id: str
    name: str
    settings: RoomSettings
    logout_url: str = ""  # where the client sends people when they leave (the LMS)
    # Callback URLs under the tool's /webhooks/, keyed by purpose ("end", "recording_ready",
    # "analytics"); providers register the ones they support.
    callback_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attendee:
    """The person joining: a stable id (never the LMS's raw id) and a display name."""

    user_id: str
    full_name: str
    role: JoinRole
    avatar_url: str = ""


@dataclass(frozen=True)
class Participant:
    """Someone in the meeting right now, as the provider lists them."""

    user_id: str  # the id the tool gave when joining (Attendee.user_id)
    full_name: str = ""
    role: str = ""  # MODERATOR / VIEWER


@dataclass(frozen=True)
class MeetingStatus:
    """What the provider reports about one meeting."""

    exists: bool
    running: bool = False
    create_time: int | None = None  # BBB createTime (ms); LiveKit room creation time (ms)
    participant_count: int = 0
    moderator_count: int = 0
    internal_id: str = ""
    # Who is in the meeting now (the attendance safety net compares it with its intervals).
    participants: tuple[Participant, ...] = ()


NOT_FOUND = MeetingStatus(exists=False)


@dataclass(frozen=True)
class Recording:
    record_id: str
    meeting_id: str
    name: str
    published: bool
    state: str
    start_time: int | None = None  # ms
    end_time: int | None = None  # ms
    playback_url: str = ""
    participants: int = 0


class ProviderError(Exception):
    """A video-server call failed. `user_message` is safe to show; `detail` is for the log."""

    user_message = "The video server could not complete the request. Please try again in a moment."
    http_status = 503

    def __init__(self, detail: str, *, user_message: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if user_message:
            self.user_message = user_message


class ProviderUnavailable(ProviderError):
    """Network error, timeout or 5xx after the retries: the server is down or overloaded."""

    user_message = "The video server is not answering right now. Please try again in a minute."


class ProviderMisconfigured(ProviderError):
    """The tool's settings for this provider are wrong or missing (secret, URL, algorithm)."""

    user_message = (
        "The video server refused the tool's credentials. "
        "Please tell your site administrator: the tool's video server settings need checking."
    )


class MeetingNotFound(ProviderError):
    """The meeting does not exist (never created, or ended and removed)."""

    user_message = "This class is not running on the video server."
    http_status = 409


class ProviderRejected(ProviderError):
    """The server answered with a FAILED response we did not expect (kept with its key)."""

    http_status = 502

    def __init__(self, detail: str, *, message_key: str = "", user_message: str | None = None):
        super().__init__(detail, user_message=user_message)
        self.message_key = message_key


class VideoProvider(abc.ABC):
    """The operations the tool needs from a video service."""

    name: str = ""

    @abc.abstractmethod
    def is_configured(self) -> bool:
        """True when the operator supplied the settings this provider needs."""

    @abc.abstractmethod
    def start_meeting(self, spec: MeetingSpec) -> MeetingStatus:
        """Create the meeting, or return the running one: safe to call any number of times."""

    @abc.abstractmethod
    def join_url(self, spec: MeetingSpec, attendee: Attendee, create_time: int | None) -> str:
        """The URL that puts this person into the meeting with their role."""

    @abc.abstractmethod
    def meeting_status(self, meeting_id: str) -> MeetingStatus:
        """Whether the meeting exists and runs; `NOT_FOUND` when it does not exist."""

    @abc.abstractmethod
    def end_meeting(self, meeting_id: str) -> None:
        """End the meeting for everyone. Ending a meeting that does not exist is not an error."""

    def register_event_hook(self, callback_url: str) -> None:  # noqa: B027 (optional: a no-op by default)
        """Ask the server to send its events to `callback_url` (idempotent). Providers whose
        events are configured on the server side (LiveKit) do nothing here."""

    @abc.abstractmethod
    def list_recordings(self, meeting_id: str) -> list[Recording]:
        """Recordings of every run of this meeting."""

    @abc.abstractmethod
    def publish_recording(self, record_id: str, publish: bool) -> None:
        """Publish or unpublish one recording."""

    @abc.abstractmethod
    def delete_recording(self, record_id: str) -> None:
        """Delete one recording."""
