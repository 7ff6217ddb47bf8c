"""What the timetable parts of the pages show: the teacher's timetable of a room (next
occasions, the live one, past ones with how many of the graded roster came, missed ones), a
student's own view (the next class, when they may enter, their own attendance), and the
summaries of the course view and of "My classes".

Read only: every change goes through schedule/service.py. A person counts as present at an
occasion when they have any attendance interval in one of the occasion's runs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from ..extensions import db
from ..grades.occasions import counted_windows
from ..grades.policy import GradePolicy, occasion_attendance
from ..grades.service import engagement_by_user, graded_people, took_part
from ..lti.roles import MODERATOR
from ..models import AttendanceInterval, Enrolment, Occasion, ResourceLink, Room, User, utcnow
from . import timetable
from .service import RoomTimetable, room_timetable
from .timetable import OccasionTimeline

UPCOMING_SHOWN = 8  # the next classes listed on the room page; the rest are counted
PAST_SHOWN = 12  # past classes listed on the room page (the attendance page has them all)
ROOMS_SHOWN = 100  # rooms on the course view and "My classes"


@dataclass
class OccasionView:
    """One occasion as a page shows it."""

    occasion: Occasion | None  # None: an unscheduled class (a run that matched no occasion)
    starts_at: datetime
    ends_at: datetime | None  # None: an unscheduled class still running
    state: str  # timetable.UPCOMING, OPEN, LIVE, ENDED, MISSED, CANCELLED
    live_since: datetime | None = None
    came: int | None = None  # teacher: how many of the graded people came
    my_minutes: int | None = None  # student: their own counted minutes (None: absent)
    my_status: str = ""  # student: present, late, left early, … (grades.policy OccasionAttendance)

    @property
    def minutes(self) -> int | None:
        if self.occasion is not None:
            return self.occasion.minutes
        return round((self.ends_at - self.starts_at).total_seconds() / 60) if self.ends_at else None

    @property
    def reason(self) -> str:
        return self.occasion.reason if self.occasion is not None else ""

    @property
    def in_series(self) -> bool:
        return bool(self.occasion is not None and self.occasion.series_id)

    @property
    def id(self) -> int | None:
        return self.occasion.id if self.occasion is not None else None


@dataclass
class RoomSchedule:
    """A room's timetable for one person's page."""

    now: datetime
    early_minutes: int
    upcoming: list[OccasionView] = field(default_factory=list)  # cancelled ones included
    more_upcoming: int = 0
    live: OccasionView | None = None
    past: list[OccasionView] = field(default_factory=list)
    more_past: int = 0
    roster_size: int = 0  # teacher: the graded people the counts are out of
    next: OccasionView | None = None  # the next class that will take place
    refresh_at: datetime | None = None  # the next moment the page's timetable changes by itself

    @property
    def starts_in(self) -> str:
        return timetable.starts_in(self.next.starts_at - self.now) if self.next else ""

    @property
    def enter_from(self) -> datetime | None:
        return self.next.starts_at - timedelta(minutes=self.early_minutes) if self.next else None


def _view(rt: RoomTimetable, line: OccasionTimeline) -> OccasionView:
    runs = line.runs
    ends_at = line.slot.ends_at if line.slot else runs[-1].ended_at
    view = OccasionView(rt.occasion(line), line.starts_at, ends_at, rt.state(line))
    if line.running:
        view.live_since = min(run.started_at for run in runs)
    return view


def _presence(lines: list[OccasionTimeline], user: User | None = None) -> dict[int, list[AttendanceInterval]]:
    """The attendance intervals of these occasions' runs (only `user`'s when given: a student's
    page never loads the class's), by run (class session) id. Bounded by the occasions shown,
    not by the room's whole history."""
    session_ids = [run.key for line in lines for run in line.runs]
    if not session_ids:
        return {}
    query = select(AttendanceInterval).where(AttendanceInterval.session_id.in_(session_ids))
    if user is not None:
        query = query.where(or_(AttendanceInterval.external_user_id == user.public_id,
                                AttendanceInterval.user_id == user.id))
    rows = db.session.scalars(query).all()
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.session_id].append(row)
    return grouped


def _is(row: AttendanceInterval, user: User) -> bool:
    return row.user_id == user.id or row.external_user_id == user.public_id


def _rows_of(line: OccasionTimeline, presence: dict) -> list[AttendanceInterval]:
    return [row for run in line.runs for row in presence.get(run.key, [])]


def _next_boundary(rt: RoomTimetable) -> datetime | None:
    """When the page's timetable next changes without anyone acting: an occasion's entry
    window opens, it starts, or it ends."""
    moments = []
    for line in rt.upcoming():
        if not line.slot.cancelled:
            moments += [line.slot.starts_at - rt.early, line.slot.starts_at, line.slot.ends_at]
    later = [moment for moment in moments if moment > rt.now]
    return min(later) if later else None


def _schedule(room: Room, now: datetime | None) -> tuple[RoomTimetable, RoomSchedule]:
    rt = room_timetable(room, now)
    schedule = RoomSchedule(now=rt.now, early_minutes=room.early_join_minutes or 0)
    upcoming = rt.upcoming()
    schedule.upcoming = [_view(rt, line) for line in upcoming[:UPCOMING_SHOWN]]
    schedule.more_upcoming = max(0, len(upcoming) - UPCOMING_SHOWN)
    following = rt.next()
    schedule.next = _view(rt, following) if following else None
    live = rt.live()
    schedule.live = _view(rt, live) if live else None
    schedule.refresh_at = _next_boundary(rt)
    return rt, schedule


def teacher_schedule(room: Room, now: datetime | None = None) -> RoomSchedule:
    """The room page's timetable for teachers: past classes say how many of the graded
    people (grades.service.graded_people: the roster's students and every student who
    launched) came."""
    rt, schedule = _schedule(room, now)
    people = graded_people(room)
    schedule.roster_size = len(people)
    past = rt.past()
    presence = _presence(past[:PAST_SHOWN])
    for line in past[:PAST_SHOWN]:
        view = _view(rt, line)
        if line.ran:
            rows = _rows_of(line, presence)
            came_ids = {row.external_user_id for row in rows}
            came_users = {row.user_id for row in rows}
            view.came = sum(1 for person in people if person.public_id in came_ids or person.id in came_users)
        schedule.past.append(view)
    schedule.more_past = max(0, len(past) - PAST_SHOWN)
    return schedule


def _own_attendance(view: OccasionView, rt: RoomTimetable, line: OccasionTimeline, rows: list, user: User,
                    policy: GradePolicy) -> None:
    """A student's own minutes and status at an ended occasion, counted as their grade counts
    them (grades/occasions.py): the attendance page and this list say the same."""
    mine = [(row.joined_at, row.left_at) for row in rows if _is(row, user)]
    if not mine:
        return
    sessions = rt.sessions_of(line)
    spoke = took_part(sessions, engagement_by_user(sessions), user.public_id) if policy.participation_required else None
    result = occasion_attendance(counted_windows(line, sessions), mine, policy, spoke)
    view.my_minutes, view.my_status = round(result.seconds_present / 60), result.status


def student_schedule(room: Room, user: User, now: datetime | None = None) -> RoomSchedule:
    """The timetable as one student sees it: past classes with their own attendance only."""
    rt, schedule = _schedule(room, now)
    policy = GradePolicy.from_dict(room.grading)
    past = rt.past()
    presence = _presence(past[:PAST_SHOWN], user)
    for line in past[:PAST_SHOWN]:
        view = _view(rt, line)
        if line.ran:
            _own_attendance(view, rt, line, _rows_of(line, presence), user, policy)
        schedule.past.append(view)
    schedule.more_past = max(0, len(past) - PAST_SHOWN)
    return schedule


def page_schedule(room: Room, user: User, is_moderator: bool) -> RoomSchedule:
    """The room and waiting pages' timetable: the teacher's, or this student's own."""
    return teacher_schedule(room) if is_moderator else student_schedule(room, user)


# --- across rooms ----------------------------------------------------------------------------------
@dataclass
class RoomSummary:
    """One room on the course view or "My classes"."""

    room: Room
    enrolment: Enrolment
    next: Occasion | None
    live_since: datetime | None
    upcoming: int  # scheduled classes still to come
    held: int  # classes that ran (scheduled or not)
    missed: int  # scheduled classes that never ran
    cancelled: int
    now: datetime

    @property
    def is_moderator(self) -> bool:
        return self.enrolment.role == MODERATOR

    @property
    def starts_in(self) -> str:
        return timetable.starts_in(self.next.starts_at - self.now) if self.next else ""


@dataclass
class RoomList:
    """The rooms of the course view or of "My classes", as of `now`."""

    now: datetime
    rooms: list[RoomSummary]


def summarise(room: Room, enrolment: Enrolment, now: datetime) -> RoomSummary:
    rt = room_timetable(room, now)
    states = [rt.state(line) for line in rt.timelines]
    live = rt.live()
    following = rt.next()
    return RoomSummary(
        room=room, enrolment=enrolment, next=rt.occasion(following) if following else None,
        live_since=min(run.started_at for run in live.runs) if live else None,
        upcoming=sum(1 for line in rt.upcoming() if not line.slot.cancelled),
        held=sum(1 for line in rt.timelines if line.ran),
        missed=states.count(timetable.MISSED), cancelled=states.count(timetable.CANCELLED), now=rt.now,
    )


def _enrolled_rooms(query) -> list[tuple[Enrolment, Room]]:
    rows = db.session.execute(
        query.join(ResourceLink, Enrolment.resource_link_id == ResourceLink.id)
        .join(Room, Room.resource_link_id == ResourceLink.id)
        .order_by(Room.name, Room.id).limit(ROOMS_SHOWN)
    ).all()
    return [(enrolment, room) for enrolment, room in rows]


def course_rooms(user: User, course_id: int, now: datetime | None = None) -> RoomList:
    """Every room of this course that this very user launched as a teacher (their own
    enrolments with the moderator role: never another teacher's rooms they never opened)."""
    now = now or utcnow()
    query = select(Enrolment, Room).where(
        Enrolment.user_id == user.id, Enrolment.role == MODERATOR, ResourceLink.course_id == course_id
    )
    return RoomList(now, [summarise(room, enrolment, now) for enrolment, room in _enrolled_rooms(query)])


def my_rooms(user: User, now: datetime | None = None) -> RoomList:
    """Every room this user (one platform account: one User row) has launched, across their
    courses, soonest class first, then by name."""
    now = now or utcnow()
    query = select(Enrolment, Room).where(Enrolment.user_id == user.id)
    summaries = [summarise(room, enrolment, now) for enrolment, room in _enrolled_rooms(query)]
    far = now + timedelta(days=100000)
    return RoomList(now, sorted(
        summaries, key=lambda s: (s.live_since is None, s.next.starts_at if s.next else far, s.room.name)
    ))
