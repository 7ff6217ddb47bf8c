"""The tool's data, mirroring LTI itself: platform → deployment → course → resource link → room.

Registrations from `TOOL_CONFIG` live in memory (see lti/registrations.py); the ones added with
the CLI and by dynamic registration live here. Everything a launch creates refers to its
platform by issuer and client id, so both kinds of registration are handled alike.
"""
from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


# C0 and C1 control characters (NUL included) and lone surrogates: no provider or platform sends
# them in an id, PostgreSQL cannot store NUL, and neither database can store a lone surrogate.
UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def column_length(column) -> int:
    return column.property.columns[0].type.length


def fits(value: str, column) -> bool:
    """Could `value` be stored in (or looked up by) this string column: no longer than it, no
    control characters? (A lookup by NUL fails on PostgreSQL just as storing it does.)"""
    return len(value) <= column_length(column) and not UNSTORABLE.search(value)


class UTCDateTime(db.TypeDecorator):
    """Timezone-aware UTC datetimes on SQLite too (which drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Platform(db.Model):
    """An LMS registration stored in the database (CLI or dynamic registration)."""

    __tablename__ = "platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1024))
    auth_token_url: Mapped[str] = mapped_column(String(1024))
    key_set_url: Mapped[str] = mapped_column(String(1024))
    auth_audience: Mapped[str | None] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # This platform's own video settings (VIDEO_PROVIDER, BBB_…, LIVEKIT_…), over the
    # environment's: sealed with a key derived from SECRET_KEY (lti/platform_settings.py).
    video_settings: Mapped[str | None] = mapped_column(Text)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="platform", cascade="all, delete-orphan", order_by="Deployment.id"
    )


class Deployment(db.Model):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    platform: Mapped[Platform] = relationship(back_populates="deployments")


class LoginState(db.Model):
    """One OIDC login in flight: the state and nonce the launch must come back with.

    Stored server-side so any worker can check the launch; bound to the browser that started
    the login by a cookie whose hash is kept here (`browser_binding`).
    """

    __tablename__ = "login_states"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), unique=True)
    browser_binding: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    # The login parameters, to restart the login in a new window when cookies are blocked.
    login_params: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DeepLinkRequest(db.Model):
    """A teacher's deep-linking request between the launch and the set-up form's answer.

    The form carries a signed token naming this row (lti/deep_linking.py); answering spends it
    (`used_at`), so one request yields at most one signed response, and only to the return URL,
    deployment and `data` its own launch brought.
    """

    __tablename__ = "deep_link_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[str] = mapped_column(String(255))
    context_id: Mapped[str] = mapped_column(String(255), default="")
    sub: Mapped[str] = mapped_column(String(255))
    return_url: Mapped[str] = mapped_column(String(1024))
    # The request's `data` claim, echoed in the response; None when the request had none.
    data: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsedNonce(db.Model):
    """Every nonce a launch has consumed: the unique key makes replays fail on any worker."""

    __tablename__ = "used_nonces"
    __table_args__ = (UniqueConstraint("issuer", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    nonce: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("issuer", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(255))
    # What video servers see as the user's id: stable, but not the LMS's own user id.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: secrets.token_hex(10))
    name: Mapped[str] = mapped_column(String(255), default="")
    given_name: Mapped[str] = mapped_column(String(255), default="")
    family_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        full = self.name or " ".join(p for p in (self.given_name, self.family_name) if p)
        return full or self.email or f"User {self.sub}"


class Course(db.Model):
    """An LTI context (usually a course) within one deployment of one platform."""

    __tablename__ = "courses"
    __table_args__ = (UniqueConstraint("issuer", "deployment_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[str] = mapped_column(String(255))
    context_id: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(255), default="")
    title: Mapped[str] = mapped_column(String(512), default="")
    memberships_url: Mapped[str | None] = mapped_column(String(1024))
    # The platform's product as its latest launch here said (the tool_platform claim's
    # `product_family_code`, lower case: "moodle", "canvas", …); None: never said. The calendars'
    # join link opens a Moodle activity directly (calendars/feeds.py).
    product_family: Mapped[str | None] = mapped_column(String(64))
    # When the roster (NRPS) was last fetched; None = needs fetching before grading absentees.
    roster_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceLink(db.Model):
    """One placement of the tool in a course (a Moodle activity)."""

    __tablename__ = "resource_links"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(512), default="")
    lineitem_url: Mapped[str | None] = mapped_column(String(1024))
    lineitems_url: Mapped[str | None] = mapped_column(String(1024))
    # The line item the tool found or created when the platform sent none with the launch.
    tool_lineitem_url: Mapped[str | None] = mapped_column(String(1024))
    # The AGS scopes the latest launch said the platform grants (its AGS claim's `scope`); None
    # when no launch said (then the tool tries what it needs, as before).
    ags_scopes: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship()
    room: Mapped[Room | None] = relationship(back_populates="resource_link", uselist=False)


class Room(db.Model):
    """The live classroom of one resource link; its meeting runs many times (class sessions).

    The room's state lives here so that waiting students cost the video server nothing:
    `started_at`/`ended_at` are set by the moderator's start and end (and later by provider
    events), and `checked_at` throttles how often anyone asks the server.
    """

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_id: Mapped[int] = mapped_column(
        ForeignKey("resource_links.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # Random, so nobody can derive a meeting id from course or link ids.
    meeting_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    # The run of the meeting the provider last reported (its own id of it: MeetingStatus.run_id).
    run_id: Mapped[str | None] = mapped_column(String(255))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Attendance grading policy (grades/policy.py GradePolicy), chosen by the teacher.
    grading: Mapped[dict] = mapped_column(JSON, default=dict)
    # Whether attendance grades go to the gradebook at all, and out of how many points.
    graded: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    score_maximum: Mapped[float] = mapped_column(db.Float, default=100.0, server_default="100")
    # The first schedule the link's custom parameters gave the room (rooms/setup.py): the first
    # session's start in UTC, each session's length and how many weekly sessions.
    schedule_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule_minutes: Mapped[int | None] = mapped_column(Integer)
    schedule_weeks: Mapped[int | None] = mapped_column(Integer)
    # Students may enter a scheduled class this many minutes before its start (schedule/).
    early_join_minutes: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    # When a teacher last ended the class for everyone: a scheduled class's entry window closes
    # then (`ended_at` also moves when the server reports the meeting gone, for any reason).
    ended_by_teacher_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The IANA time zone the teacher last scheduled in (e-mails write times in it); None: UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resource_link: Mapped[ResourceLink] = relationship(back_populates="room")

    @property
    def started_since_last_end(self) -> bool:
        return self.started_at is not None and (
            self.ended_at is None or self.started_at > self.ended_at
        )


class Enrolment(db.Model):
    """What a user's latest launch of a resource link granted them there."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("user_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    resource_link_id: Mapped[int] = mapped_column(
        ForeignKey("resource_links.id", ondelete="CASCADE"), index=True  # a room's people
    )
    role: Mapped[str] = mapped_column(String(16))  # "moderator" or "attendee"
    lti_roles: Mapped[list] = mapped_column(JSON, default=list)
    last_launch_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # This person's own way back to the LMS (launch_presentation.return_url of their latest
    # launch; http/https only). In Moodle it carries their session key: never shown to others.
    return_url: Mapped[str | None] = mapped_column(String(1024))

    user: Mapped[User] = relationship()
    resource_link: Mapped[ResourceLink] = relationship()


# --- timetable ----------------------------------------------------------------------------------
class Occasion(db.Model):
    """One scheduled class of a room: a one-off, or one week of a series (`series_id`).

    `uid` is the occasion's iCalendar UID, stable across moves; `sequence` counts the changes
    calendars must see (a move, a cancellation). A cancelled occasion stays, with its reason,
    so students and calendars learn of it; it never counts against anyone.
    """

    __tablename__ = "occasions"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    series_id: Mapped[str | None] = mapped_column(String(32), index=True)
    uid: Mapped[str] = mapped_column(String(128), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # scheduled, cancelled
    reason: Mapped[str] = mapped_column(Text, default="")  # why it moved or was cancelled
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    room: Mapped[Room] = relationship()

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


class CalendarFeed(db.Model):
    """A person's secret calendar address: for one room (`room_id`) or all their rooms (None).

    The address carries an HMAC of the row and its `generation` (calendars/): nothing secret is
    stored, and a reset (generation + 1) makes every older address stop working.
    """

    __tablename__ = "calendar_feeds"
    __table_args__ = (UniqueConstraint("user_id", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(32))  # "room:<id>" or "person"
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClassRecording(db.Model):
    """The tool's copy of one recording of a room (recordings/service.py), refreshed from the
    provider at most every RECORDINGS_CHECK_SECONDS per room and at its ready callback, so pages
    do not ask the video server. A deleted one keeps its row (`deleted_at`) so that a provider
    that only lists files (LiveKit) does not bring it back."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("room_id", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[str] = mapped_column(String(255))  # the provider's own id
    run_id: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    length_minutes: Mapped[int | None] = mapped_column(Integer)
    playback_url: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordingCheck(db.Model):
    """When the tool last asked the provider for a room's recordings (None: ask at the next view)."""

    __tablename__ = "recording_checks"

    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScheduleNotice(db.Model):
    """Something the room's people are to be told by e-mail: occasions scheduled, moved or
    cancelled, one about to start, one live. Written in the transaction of the change (one row,
    so a page never waits for a roster); the worker expands it into `EmailMessage`s."""

    __tablename__ = "schedule_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    occasion_id: Mapped[int | None] = mapped_column(ForeignKey("occasions.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))  # scheduled, moved, cancelled, soon, live
    # The same notice is written once: "soon:<occasion uid>:<sequence>", "live:<room>:<run>", …
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expanded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class ReminderOptOut(db.Model):
    """A person who asked for no more e-mails about one room (by the platform's id of them, so
    roster members who never launched the tool can opt out from the e-mail's link too)."""

    __tablename__ = "reminder_opt_outs"
    __table_args__ = (UniqueConstraint("room_id", "issuer", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailMessage(db.Model):
    """The mail outbox: one message to one person, sent and retried by the worker like grades
    (a lease in `locked_until`; `dedupe_key` makes a notice's expansion safe to repeat)."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_notices.id", ondelete="SET NULL"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(512), unique=True)
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(255), default="")
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- attendance ---------------------------------------------------------------------------------
class ClassSession(db.Model):
    """One run of a room's meeting, named by the provider's id of that run (`run_id`)."""

    __tablename__ = "class_sessions"
    __table_args__ = (UniqueConstraint("room_id", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # provider's time
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # provider's time
    # Which source set ended_at: webhook/analytics (the provider's own time) outrank the end
    # callback and polling (the time the tool noticed).
    ended_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    room: Mapped[Room] = relationship()

    @property
    def duration_seconds(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


class ProviderEvent(db.Model):
    """The inbox: every authenticated provider event, stored before it is applied.

    `dedupe_key` identifies the event itself (provider, kind, meeting run, user, time), so the
    same event delivered twice is stored once. `status` is pending, applied, unknown_meeting
    (kept for a replay once the meeting is known, pruned after UNKNOWN_EVENT_RETENTION_HOURS),
    ignored, failed (with `error`), or unconfirmed (an end callback the server has not
    confirmed yet: providers/bbb/end_callback.py).
    """

    __tablename__ = "provider_events"
    # Recomputing a person's intervals reads their events in the session.
    __table_args__ = (Index("ix_provider_events_session_user", "session_id", "external_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))  # webhook, analytics, end_callback, poll, …
    kind: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(512), unique=True)
    meeting_id: Mapped[str] = mapped_column(String(255), index=True)
    run_id: Mapped[str] = mapped_column(String(255), default="")  # which run of the meeting
    # When that run began, when the provider's event says (it starts the class session).
    run_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    external_user_id: Mapped[str | None] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(32), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("class_sessions.id", ondelete="SET NULL"), index=True)


class AttendanceInterval(db.Model):
    """A stretch of time one person spent in one class session (merged, provider times)."""

    __tablename__ = "attendance_intervals"
    __table_args__ = (Index("ix_attendance_intervals_session_user", "session_id", "external_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"), index=True)
    external_user_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Engagement(db.Model):
    """What one person did in one class session, as the provider reported it (analytics).
    NULL = the provider did not report that measure; 0 = it reported none (docs: Engagement)."""

    __tablename__ = "engagement"
    __table_args__ = (UniqueConstraint("session_id", "external_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"), index=True)
    external_user_id: Mapped[str] = mapped_column(String(255))
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    chat_messages: Mapped[int | None] = mapped_column(Integer)
    raised_hands: Mapped[int | None] = mapped_column(Integer)
    poll_votes: Mapped[int | None] = mapped_column(Integer)
    reactions: Mapped[int | None] = mapped_column(Integer)  # BBB's emoji/reaction changes
    source: Mapped[str] = mapped_column(String(32), default="")  # e.g. "bbb analytics"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RosterMember(db.Model):
    """A course member as the platform's Names and Role Provisioning Service lists them."""

    __tablename__ = "roster_members"
    __table_args__ = (UniqueConstraint("course_id", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    sub: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    roles: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="Active")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- grades -------------------------------------------------------------------------------------
class PlatformToken(db.Model):
    """An OAuth2 access token of a platform and scope set, shared by every worker until shortly
    before expiry; the row is also the lock its one fetcher holds (lti/platform_services.py).
    `sealed_token`: Fernet-sealed with a key derived from SECRET_KEY; NULL while none is held."""

    __tablename__ = "platform_tokens"
    __table_args__ = (UniqueConstraint("issuer", "client_id", "scopes"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(1024))  # sorted, space-separated
    sealed_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScoreDelivery(db.Model):
    """The outbox: one score to send to the platform's gradebook, written in the same
    transaction as the attendance that caused it and delivered by the worker.

    A newer score for the same person and resource link supersedes pending older ones.
    `locked_until` is a lease: a worker killed mid-delivery loses nothing, the row is simply
    picked up again when the lease runs out.
    """

    __tablename__ = "score_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_id: Mapped[int] = mapped_column(ForeignKey("resource_links.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(255))
    score_given: Mapped[float] = mapped_column(db.Float)
    score_maximum: Mapped[float] = mapped_column(db.Float)
    activity_progress: Mapped[str] = mapped_column(String(32))
    grading_progress: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    resource_link: Mapped[ResourceLink] = relationship()
