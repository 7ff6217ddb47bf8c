"""Attendance pages: the teacher's report (sessions, people, scores, delivery), the CSV export,
"send grades now", retrying failed deliveries and the grading policy; a student's own record."""
from __future__ import annotations

import csv
import io

from flask import Response, g, redirect, render_template, request, url_for

from ..attendance.report import grade_rows, session_reports
from ..extensions import db
from ..grades.delivery import retry_failed
from ..grades.policy import GradePolicy, parse_policy
from ..grades.service import queue_room_scores
from ..lti.roles import MODERATOR
from . import bp
from .routes import RoomAccessDenied, _authorise, _check_origin, _require_moderator


@bp.get("/<int:room_id>/attendance")
def attendance(room_id: int):
    room, enrolment, role = _authorise(room_id)
    is_moderator = role == MODERATOR
    reports = session_reports(room, None if is_moderator else enrolment.user.public_id)
    mine = None
    if not is_moderator:
        mine = next((row for row in grade_rows(room) if row.user.id == enrolment.user_id), None)
    return render_template(
        "rooms/attendance.html",
        room=room, user=enrolment.user, is_moderator=is_moderator, reports=reports,
        grades=grade_rows(room) if is_moderator else [], mine=mine,
        policy=GradePolicy.from_dict(room.grading), ticket=g.ticket, notice=request.args.get("notice"),
    )


@bp.get("/<int:room_id>/attendance.csv")
def attendance_csv(room_id: int):
    room, _, role = _authorise(room_id)
    _require_moderator(role)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["session_start", "session_end", "name", "participant_id", "role", "joined", "left", "minutes", "share_percent"])
    for report in session_reports(room):
        for person in report.people:
            for joined, left in person.intervals:
                writer.writerow([
                    _iso(report.session.started_at), _iso(report.session.ended_at), person.name, person.external_id,
                    person.role, _iso(joined), _iso(left), person.minutes,
                    "" if person.share_percent is None else person.share_percent,
                ])
    filename = f"attendance-room-{room.id}.csv"
    return Response(out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _iso(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _back(room_id: int, notice: str):
    return redirect(url_for("rooms.attendance", room_id=room_id, t=g.ticket, notice=notice), code=303)


@bp.post("/<int:room_id>/grades/send")
def send_grades(room_id: int):
    _check_origin()
    room, _, role = _authorise(room_id)
    _require_moderator(role)
    retried = retry_failed(room.resource_link_id)
    queued = queue_room_scores(room)
    db.session.commit()
    total = queued + retried
    if total == 0:
        return _back(room.id, "Nothing new to send: every grade is already queued or in the gradebook.")
    return _back(room.id, f"{total} grade(s) queued for the gradebook.")


@bp.post("/<int:room_id>/grading")
def save_grading(room_id: int):
    _check_origin()
    room, _, role = _authorise(room_id)
    _require_moderator(role)
    try:
        policy = parse_policy(request.form)
    except ValueError as exc:
        raise RoomAccessDenied(f"bad grading policy: {exc}", str(exc)[:1].upper() + str(exc)[1:] + ".", 400) from exc
    room.grading = policy.to_dict()
    queued = queue_room_scores(room)
    db.session.commit()
    return _back(room.id, f"Grading saved; {queued} grade(s) changed and queued.")
