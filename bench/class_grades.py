"""Benchmark: a class of N students ends — events in, grades out.

Serves the tool over real HTTP with the fake Moodle and fake BigBlueButton (tests/fakes), runs
an hour-long class for N students through signed bbb-webhooks (batched like bbb-webhooks'
multiEvent), ends it, then lets W worker threads deliver every grade. Prints JSON:
webhook events applied per second, time until every score reached the platform, scores per
second, and how many access tokens that cost.

    .venv/bin/python bench/class_grades.py --students 500 --workers 2
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/class_grades.py
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.class_start import logging_off
from lti_tool import create_app, upgrade_database
from lti_tool.extensions import db
from lti_tool.models import Room, User
from lti_tool.worker import Worker
from tests.conftest import BBB_SECRET, reset_postgres, room_ticket_in
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform

MINUTE = 60_000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50, help="events per webhook POST")
    args = parser.parse_args()

    database_url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    if database_url.startswith("postgres"):
        reset_postgres(database_url)
    workdir = Path(tempfile.mkdtemp())
    forward = LaterApp()
    server = ServedApp(forward)
    bbb = FakeBigBlueButton(BBB_SECRET).start()
    platform = FakePlatform(tool_base_url=server.url).start()
    for n in range(args.students):
        platform.add_user(f"s{n}", str(1000 + n), ["Learner"], "Student", f"No{n:04d}", f"s{n}@example.com")
    (workdir / "tool_config.json").write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
    app = create_app({
        "TESTING": True, "DATABASE_URL": database_url, "TOOL_BASE_URL": server.url,
        "KEYS_DIR": str(workdir / "keys"), "TOOL_CONFIG": str(workdir / "tool_config.json"),
        "SECRET_KEY": "bench", "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET,
        "RETRY_BASE_SECONDS": "0.05", "ATTENDANCE_POLL_SECONDS": "3600",
    })
    upgrade_database(app)
    forward.app = app
    platform.tool_jwks = server.url + "/.well-known/jwks.json"
    server.start()
    logging_off()
    logging.getLogger("lti_tool.worker").setLevel(logging.ERROR)

    # The teacher launches and starts; the students exist at the tool only through the roster
    # and their joins (their users are made by the roster fetch, so make them first by launch
    # of one student and the rest through NRPS: here we launch none and give them ids below).
    session = requests.Session()
    launched = platform.launch(session, user="teacher")
    room_path = launched.headers["Location"].split("?")[0]
    ticket = room_ticket_in(session.get(server.url + launched.headers["Location"]).text)
    session.post(server.url + room_path + "/join", data={"t": ticket}, allow_redirects=False)
    with app.app_context():
        meeting_id = db.session.scalar(db.select(Room.meeting_id))
        # Students who launched before the class: give each a tool user (as a launch would).
        for n in range(args.students):
            db.session.add(User(issuer=platform.issuer, sub=str(1000 + n), name=f"Student No{n:04d}"))
        db.session.commit()
        ids = [u.public_id for u in db.session.scalars(db.select(User).where(User.sub != "3").order_by(User.sub))]
        # …and an enrolment, so they are graded even before the roster arrives.
        from lti_tool.models import Enrolment, ResourceLink

        link_id = db.session.scalar(db.select(ResourceLink.id))
        for user in db.session.scalars(db.select(User).where(User.sub != "3")):
            db.session.add(Enrolment(user_id=user.id, resource_link_id=link_id, role="attendee"))
        db.session.commit()
    meeting = bbb.meetings[meeting_id]
    t0, internal = meeting.create_time, meeting.internal_id
    hook = server.url + "/webhooks/bbb"
    events = [bbb.event_meeting_created(meeting_id, t0, internal)]
    for n, uid in enumerate(ids):
        joined = t0 + (n % 10) * MINUTE
        events.append(bbb.event_user_joined(meeting_id, uid, f"S{n}", "VIEWER", joined, internal))
        events.append(bbb.event_user_left(meeting_id, uid, joined + 40 * MINUTE, internal))
    events.append(bbb.event_meeting_ended(meeting_id, t0 + 60 * MINUTE, internal))

    started = time.perf_counter()
    for i in range(0, len(events), args.batch):
        answer = bbb.send_webhook(hook, events[i:i + args.batch])
        assert answer.status_code == 200, answer.text
    ingest = time.perf_counter() - started

    started = time.perf_counter()
    stop = threading.Event()
    threads = [threading.Thread(target=Worker(app).run_forever, args=(stop,)) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 600
    while len({s["userId"] for s in platform.scores}) < args.students and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    per_user = {}
    for score in platform.scores:
        per_user[score["userId"]] = per_user.get(score["userId"], 0) + 1
    print(json.dumps({
        "database": database_url.split(":")[0],
        "students": args.students,
        "workers": args.workers,
        "webhook_events": len(events),
        "ingest_seconds": round(ingest, 2),
        "events_per_second": round(len(events) / ingest, 1),
        "deliver_all_seconds": round(delivered, 2),
        "scores_per_second": round(args.students / delivered, 1),
        "scores_at_platform": len(platform.scores),
        "students_scored_more_than_once": sum(1 for n in per_user.values() if n > 1),
        "token_requests": platform.token_requests,
    }, indent=2))
    server.stop()
    bbb.stop()
    platform.stop()


if __name__ == "__main__":
    main()
