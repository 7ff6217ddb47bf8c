"""The small interface every video provider implements, the values it exchanges, and what a
provider package hands the tool (`ProviderPackage`).

The core (rooms, attendance, grades) talks to a video service only through `VideoProvider`,
and calls every method of it. A provider knows nothing of the database: it gets plain values
(`MeetingSpec`, `Attendee`) and answers with plain values (`MeetingStatus`) or raises a
`ProviderError`. Everything else a provider does — its callbacks under /webhooks/<name>/, its
own pages, its periodic work — lives in its package and is declared in `ProviderPackage`.
How to add one: docs/providers.md.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum

from ..settings import Setting


class JoinRole(StrEnum):
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


ALL_SETTINGS = frozenset(f.name for f in fields(RoomSettings))


@dataclass(frozen=True)
class MeetingSpec:
    """Everything a provider needs to create (or re-create) the meeting of one room."""

    meeting_id: str
    name: str
    settings: RoomSettings
    logout_url: str = ""  # where the client sends people when they leave (the tool's page)


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
    # What identifies this run of the meeting (a room's meeting runs many times): the key of
    # its class session, the same one the provider's events carry. The provider's own format.
    run_id: str = ""
    started_at_ms: int | None = None  # when this run began, when the provider says
    participant_count: int = 0
    moderator_count: int = 0
    # Who is in the meeting now (the attendance safety net compares it with its intervals).
    participants: tuple[Participant, ...] = ()


NOT_FOUND = MeetingStatus(exists=False)


@dataclass(frozen=True)
class Recording:
    """One recording of a room's meeting, as the provider lists it (docs/recordings.md)."""

    record_id: str  # the provider's own id of the recording
    run_id: str = ""  # the run it recorded (MeetingStatus.run_id), when the provider says
    started_at_ms: int | None = None
    ended_at_ms: int | None = None
    length_minutes: int | None = None  # of the playback; None when the provider does not say
    playback_url: str = ""  # where a browser plays it; "" when it cannot be played from a link
    published: bool = True  # who may watch: everyone (True) or moderators only
    name: str = ""


@dataclass(frozen=True)
class ProviderHealth:
    """What one check of a video server found, for the administration pages (no secrets)."""

    server: str  # where the server is, as configured ("" when not configured)
    reachable: bool
    credentials_accepted: bool
    detail: str = ""  # what was found, in words an administrator can act on

    @property
    def ok(self) -> bool:
        return self.reachable and self.credentials_accepted


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

    # Shown to students too: no settings, no credentials, no administrator's words. What is
    # wrong goes to the log (`detail`), under the error page's reference code.
    user_message = (
        "The video service for this class is not working because of a problem with this site's set-up. "
        "Please tell your teacher or your site's support."
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


class RecordingsNotSupported(ProviderError):
    """The provider cannot do this with recordings (it lists none, or keeps no such state)."""

    user_message = "This video service does not let the tool change its recordings."
    http_status = 409


class VideoProvider(abc.ABC):
    """The operations the core needs from a video service; it calls all of them."""

    name: str = ""
    # True: the server keeps whether a recording is published, its name and whether it exists,
    # and the tool mirrors it. False: the server only lists what it recorded; publishing,
    # renaming and deleting are the tool's own (its list hides or renames, the file stays).
    recording_state_on_server: bool = True

    @abc.abstractmethod
    def is_configured(self) -> bool:
        """True when the operator supplied the settings this provider needs."""

    @abc.abstractmethod
    def start_meeting(self, spec: MeetingSpec) -> MeetingStatus:
        """Create the meeting, or return the running one: safe to call any number of times.
        Whatever the provider needs to hear about the meeting afterwards (callbacks, event
        hooks) it arranges here itself."""

    @abc.abstractmethod
    def join(self, spec: MeetingSpec, attendee: Attendee, run_id: str | None, tool_page: Callable[[str], str]) -> str:
        """Where this person's browser goes to be in the meeting with their role: a URL, always.
        `run_id` is the run the tool knows is live (None: not known yet); `tool_page(endpoint)`
        gives the address of one of the tool's pages for this person (a page of the provider's
        own, like LiveKit's classroom), with a fresh page ticket."""

    @abc.abstractmethod
    def meeting_status(self, meeting_id: str) -> MeetingStatus:
        """Whether the meeting exists and runs; `NOT_FOUND` when it does not exist."""

    @abc.abstractmethod
    def end_meeting(self, meeting_id: str) -> None:
        """End the meeting for everyone. Ending a meeting that does not exist is not an error."""

    @abc.abstractmethod
    def check(self) -> ProviderHealth:
        """One cheap call, one attempt, that proves the server answers and accepts the tool's
        credentials (the administration page's provider health). It creates nothing, and
        reports a failure in the answer rather than raising it."""

    # -- recordings (docs/recordings.md); a provider that records nothing keeps these defaults --

    def recordings(self, meeting_id: str) -> list[Recording]:
        """Every recording of the meeting the provider has, processed and playable or not yet
        published; [] when it records nothing."""
        return []

    def publish_recording(self, record_id: str, publish: bool) -> None:
        """Make the recording watchable by everyone (True) or by moderators only (False)."""
        raise RecordingsNotSupported(f"{self.name}: publishing recordings is not supported")

    def rename_recording(self, record_id: str, name: str) -> None:
        raise RecordingsNotSupported(f"{self.name}: renaming recordings is not supported")

    def delete_recording(self, record_id: str) -> None:
        """Delete it for good. Deleting a recording that is gone already is not an error."""
        raise RecordingsNotSupported(f"{self.name}: deleting recordings is not supported")

    def supported_settings(self) -> frozenset[str]:
        """The `RoomSettings` fields this provider honours: the room's settings form offers only
        these (the tool's own rule, `wait_for_moderator`, is always offered). All by default."""
        return ALL_SETTINGS

    def page_sources(self) -> tuple[str, ...]:
        """Origins the tool's pages connect to for this provider (its pages' WebSocket, say),
        for the Content-Security-Policy's connect-src. None by default."""
        return ()


def _nothing_wrong(config: Mapping) -> list[str]:
    return []


def _nothing() -> list:
    return []


@dataclass(frozen=True)
class ProviderPackage:
    """What a provider package gives the tool: `PACKAGE` in providers/<name>/__init__.py (or any
    module named in PROVIDER_PACKAGES). The functions are called once per app."""

    name: str  # a room's `provider`, the LTI custom parameter `provider`, VIDEO_PROVIDER
    label: str  # for people: "BigBlueButton"
    build: Callable[[Mapping], VideoProvider]  # the provider, from the app's config
    settings: tuple[Setting, ...] = ()  # read like the core's (config.py)
    validate: Callable[[Mapping], list[str]] = _nothing_wrong  # problems with those settings
    blueprints: Callable[[], list] = _nothing  # its routes: /webhooks/<name>/…, its own pages
    worker_tasks: Callable[[], list[Callable[[], int]]] = _nothing  # run at every worker pass
