"""The provider-neutral shape of an attendance event, as every provider package parses it.

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

# The source of an end-of-meeting callback: a report with no time of its own (the tool stamps the
# moment it arrived), outranked by any report that carries the provider's time.
END_CALLBACK = "end_callback"


@dataclass(frozen=True)
class IncomingEvent:
    provider: str  # the provider package's name
    source: str  # the channel it came through: "webhook", "analytics", "end_callback", "poll", …
    kind: str  # one of KINDS
    meeting_id: str  # the tool's meeting id (the room's), as the provider echoes it
    run_id: str  # which run of the meeting: the provider's own id of it (MeetingStatus.run_id)
    occurred_at_ms: int  # the provider's timestamp
    external_user_id: str | None = None  # the id the tool gave the user when joining
    user_name: str = ""
    role: str = ""  # MODERATOR / VIEWER as the provider reports it
    payload: dict = field(default_factory=dict)
    # When the run began, when the provider's ids or events tell (None: the earliest event says).
    run_started_at_ms: int | None = None
    # One person may be connected several times at once (two tabs, a reconnect): joins and leaves
    # are paired per connection (the provider's id of it; "" = one connection per source).
    connection: str = ""

    @property
    def dedupe_key(self) -> str:
        """Same event, same key — however many times and through whichever path it arrives.
        The source is part of it: an analytics report may repeat webhook joins at another
        precision, and the interval merge (not the dedupe) reconciles the two. The end callback
        carries no time of its own (the tool stamps the moment it arrived), so its key leaves
        the time out: one end per run of the meeting, however often the URL is called."""
        user = self.external_user_id or "-"
        connection = (self.payload or {}).get("connection", "")
        moment = "" if self.source == END_CALLBACK else self.occurred_at_ms
        return (
            f"{self.provider}:{self.source}:{self.kind}:{self.meeting_id}:{self.run_id}:"
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


# What a person did in one run, as a provider reports it (engagement.py stores it). Each measure
# is a whole number, or None when the provider did not report it: never guessed as 0.
ENGAGEMENT_MEASURES = ("talk_seconds", "chat_messages", "raised_hands", "poll_votes", "reactions")


@dataclass(frozen=True)
class EngagementReport:
    provider: str
    source: str  # the channel: "analytics", …
    meeting_id: str
    run_id: str
    external_user_id: str
    talk_seconds: int | None = None
    chat_messages: int | None = None
    raised_hands: int | None = None
    poll_votes: int | None = None
    reactions: int | None = None

    def measures(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in ENGAGEMENT_MEASURES}
