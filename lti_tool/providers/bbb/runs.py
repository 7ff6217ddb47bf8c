"""How BigBlueButton names the runs of a meeting: every re-creation of a meeting is a new run,
with an internal meeting id of sha1(meetingID) + "-" + createTime. That id is the run id of the
tool's class sessions (BBB's webhooks, analytics and recordings name runs by it), and its tail
says when the run began.
"""
from __future__ import annotations

import hashlib

EARLIEST_MS = 946_684_800_000  # 2000-01-01: a createTime before it is not one


def internal_meeting_id(meeting_id: str, create_time: int) -> str:
    """BBB's internal id of one run of a meeting, sha1(meetingID) + "-" + createTime: the run id
    of the tool's class sessions (BBB's webhooks, analytics and recordings name runs by it)."""
    return f"{hashlib.sha1(meeting_id.encode()).hexdigest()}-{create_time}"


def create_time_of(run_id: str | None) -> int | None:
    """The createTime (ms) an internal meeting id ends with; None when it does not end with one."""
    tail = (run_id or "").rsplit("-", 1)[-1]
    if not (tail.isascii() and tail.isdigit() and len(tail) <= 15):
        return None
    millis = int(tail)
    return millis if millis >= EARLIEST_MS else None
