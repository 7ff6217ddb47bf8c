"""Attendance pages: the teacher's report (sessions, people, scores, delivery, what the
platform's gradebook allows), the CSV export, "send grades now", retrying failed deliveries and
the grading policy; one person's record (submission review); a student's own record.

Everything a student may see here is their own; the rest needs the teacher role of the
person's own launch (rooms/access.py).
"""
from __future__ import annotations

import csv
import io

from flask import Response, g, redirect, render_template, request

from ..attendance.report import grade_rows, occasion_reports, person_report, room_person
from ..exceptions import AccessDenied, InvalidInput
from ..grades.gradebook import ENABLE_COLUMNS, Gradebook
from ..grades.policy import GradePolicy, explain, parse_policy
from ..grades.service import save_policy, send_now
from ..logsafe import quoted
from .access import RoomAccess, page_url, room_view
from .blueprint import bp

CSV_COLUMNS = ["session_start", "session_end", "name", "participant_id", "role", "joined", "left", "minutes",
               "share_percent", "scheduled_start", "status"]
# A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@bp.get("/<int:room_id>/attendance")
@room_view()
def attendance(access: RoomAccess):
    room, user = access.room, access.user
    reports = occasion_reports(room, None if access.is_moderator else user)
    rows = grade_rows(room)
    mine = None if access.is_moderator else next((row for row in rows if row.user.id == user.id), None)
    policy = GradePolicy.from_dict(room.grading)
    return render_template(
        "rooms/attendance.html",
        room=room, user=user, is_moderator=access.is_moderator, reports=reports,
        grades=rows if access.is_moderator else [], mine=mine,
        policy=policy, explained=explain(policy, room.score_maximum, room.graded),
        gradebook=Gradebook.of(room.resource_link), enable_columns=ENABLE_COLUMNS,
        ticket=g.ticket, notice=request.args.get("notice"),
    )


@bp.get("/<int:room_id>/review")
@room_view()
def review(access: RoomAccess):
    """One person's attendance (the platform's submission review): a teacher reviews any
    student of the room, a student only themselves."""
    room, wanted = access.room, request.args.get("student", "")
    if access.is_moderator:
        person = room_person(room, wanted)
    elif wanted and wanted != access.user.public_id:
        raise AccessDenied(f"student review of {quoted(wanted, 40)} by another student",
                           "You can only review your own attendance.")
    else:
        person = access.user
    policy = GradePolicy.from_dict(room.grading)
    return render_template(
        "rooms/review.html", room=room, user=access.user, is_moderator=access.is_moderator, ticket=g.ticket,
        report=person_report(room, person) if person else None,
        explained=explain(policy, room.score_maximum, room.graded),
    )


@bp.post("/<int:room_id>/attendance.csv")
@room_view(teacher=True)
def attendance_csv(access: RoomAccess):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for report in occasion_reports(access.room):
        sessions = report.counted.sessions
        began = _iso(sessions[0].started_at) if sessions else ""
        ended = _iso(sessions[-1].ended_at) if sessions else ""
        scheduled = _iso(report.occasion.starts_at) if report.occasion else ""
        for person in report.people:
            share = "" if person.share_percent is None else person.share_percent
            # One row per stretch of presence; an absent student gets one row saying so.
            for joined, left in person.intervals or [(None, None)]:
                writer.writerow(spreadsheet_safe([
                    began, ended, person.name, person.external_id, person.role, _iso(joined), _iso(left),
                    person.minutes, share, scheduled, person.status,
                ]))
    filename = f"attendance-room-{access.room.id}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def spreadsheet_safe(cells: list) -> list:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe (OWASP): the
    cell then shows the text as it is, and nothing runs."""
    return [f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS) else cell for cell in cells]


def _iso(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _back(notice: str):
    return redirect(page_url("rooms.attendance", notice=notice), code=303)


@bp.post("/<int:room_id>/grades/send")
@room_view(teacher=True)
def send_grades(access: RoomAccess):
    total = send_now(access.room)
    if total == 0:
        return _back("Nothing new to send: every grade is already queued or in the gradebook.")
    return _back(f"{total} grade(s) queued for the gradebook.")


@bp.post("/<int:room_id>/grading")
@room_view(teacher=True)
def save_grading(access: RoomAccess):
    try:
        policy = parse_policy(request.form)
    except ValueError as exc:
        raise InvalidInput(
            f"bad grading policy: {quoted(str(exc))}", str(exc)[:1].upper() + str(exc)[1:] + "."
        ) from exc
    # The checkbox counts only from the form that shows it (an unticked box sends nothing).
    graded = request.form.get("graded") in ("on", "true", "1") if request.form.get("graded_shown") else None
    queued = save_policy(access.room, policy, graded=graded)
    if not access.room.graded:
        return _back("Grading saved; grading is off, so no grade is sent to the gradebook.")
    return _back(f"Grading saved; {queued} grade(s) changed and queued.")
