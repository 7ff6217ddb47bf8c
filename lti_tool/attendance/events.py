"""The provider-neutral shape of an attendance event, as parsed from BBB or LiveKit.

Providers' callbacks are authenticated and parsed into `IncomingEvent`s; the inbox stores them
(`ProviderEvent` rows) and the attendance service applies them. Times are the provider's own,
in milliseconds since the epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Kinds the attendance service understands.
MEETING_STARTED = "meeting_started"
MEETING_ENDED = "meeting_ended"
USER_JOINED = "user_joined"
USER_LEFT = "user_left"
RECORDING_READY = "recording_ready"
KINDS = {MEETING_STARTED, MEETING_ENDED, USER_JOINED, USER_LEFT, RECORDING_READY}

# The source of BBB's end-of-meeting callback (a GET with no time of its own).
END_CALLBACK = "end_callback"


@dataclass(frozen=True)
class IncomingEvent:
    provider: str  # "bbb" or "livekit"
    source: str  # "webhook", "analytics", "end_callback", "poll", "recording_ready"
    kind: str  # one of KINDS
    meeting_id: str  # the tool's meeting id (BBB external meeting id, LiveKit room name)
    session_key: str  # identifies the run of the meeting (BBB internal meeting id, LiveKit room sid)
    occurred_at_ms: int  # the provider's timestamp
    external_user_id: str | None = None  # the id the tool gave the user when joining
    user_name: str = ""
    role: str = ""  # MODERATOR / VIEWER as the provider reports it
    payload: dict = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """Same event, same key — however many times and through whichever path it arrives.
        The source is part of it: BBB's analytics callback repeats webhook joins at second
        precision, and the interval merge (not the dedupe) reconciles the two. The end callback
        carries no time of its own (the tool stamps the moment it arrived), so its key leaves
        the time out: one end per run of the meeting, however often the URL is called."""
        user = self.external_user_id or "-"
        connection = (self.payload or {}).get("connection", "")
        moment = "" if self.source == END_CALLBACK else self.occurred_at_ms
        return (
            f"{self.provider}:{self.source}:{self.kind}:{self.meeting_id}:{self.session_key}:"
            f"{user}:{connection}:{moment}"
        )


@dataclass
class Batch:
    """What one callback carried: the events read from it, and for each event that could not be
    read, why (a provider's batch is checked event by event, so one bad event costs only itself)."""

    events: list[IncomingEvent] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def strictly(self, error: type[Exception]) -> list[IncomingEvent]:
        """The events, or `error` with the first refusal when any event could not be read."""
        if self.refused:
            raise error(self.refused[0])
        return self.events
