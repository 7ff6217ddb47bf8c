"""Benchmark: the class-start rush on one machine.

Serves the tool over real HTTP (werkzeug, threaded) with a fake Moodle and a fake
BigBlueButton on loopback, then measures:
  1. full LTI launches (login → platform authorization → id_token launch → room page) by N
     students at once;
  2. waiting students polling their room's status, and how many calls reach the video server;
  3. joins once the teacher has started.

    .venv/bin/python bench/class_start.py --students 200 --concurrency 20
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/class_start.py

Everything stays on 127.0.0.1; every loop is bounded in count.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lti_tool import create_app, upgrade_database
from tests.conftest import BBB_SECRET, reset_postgres, room_ticket_in
from tests.fakes.bbb_server import FakeBigBlueButton
from tests.fakes.http_server import LaterApp, ServedApp
from tests.fakes.lti_platform import FakePlatform


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(name, durations, wall):
    return {
        "step": name,
        "count": len(durations),
        "wall_s": round(wall, 2),
        "per_s": round(len(durations) / wall, 1),
        "p50_ms": round(statistics.median(durations) * 1000, 1),
        "p95_ms": round(percentile(durations, 95) * 1000, 1),
        "max_ms": round(max(durations) * 1000, 1),
    }


def launch(platform, tool_url, user):
    browser = requests.Session()
    started = time.perf_counter()
    fields = platform.login_initiation(user=user)
    answer = browser.post(tool_url + "/lti/login", data=fields, allow_redirects=False)
    form = platform.authorize(urljoin(tool_url, answer.headers["Location"]))
    launched = browser.post(form["action"], data={"id_token": form["id_token"], "state": form["state"]},
                            allow_redirects=False)
    assert launched.status_code == 303, launched.text[:300]
    room = browser.get(urljoin(tool_url, launched.headers["Location"]))
    assert room.status_code == 200
    elapsed = time.perf_counter() - started
    location = urlsplit(launched.headers["Location"])
    return elapsed, browser, location.path, room_ticket_in(room.text)


def timed_pool(fn, items, concurrency):
    durations, results = [], []
    lock = threading.Lock()

    def run(item):
        started = time.perf_counter()
        result = fn(item)
        with lock:
            durations.append(time.perf_counter() - started)
            results.append(result)

    wall_start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, items))
    return durations, results, time.perf_counter() - wall_start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--polls", type=int, default=5, help="status polls per waiting student")
    parser.add_argument("--scheduled", action="store_true",
                        help="the activity has a timetable (a weekly series of 12 from two hours ahead): "
                             "pages show it and every status poll asks whether a class is open for entry")
    args = parser.parse_args()

    database_url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    if database_url.startswith("postgres"):
        reset_postgres(database_url)
    workdir = Path(tempfile.mkdtemp())
    forward = LaterApp()
    server = ServedApp(forward)
    tool_url = server.url
    bbb = FakeBigBlueButton(BBB_SECRET).start()
    platform = FakePlatform(tool_base_url=tool_url).start()
    for n in range(args.students):
        platform.add_user(f"s{n}", str(1000 + n), ["Learner"], "Student", f"No{n}", f"s{n}@example.com")
    (workdir / "tool_config.json").write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
    app = create_app({
        "TESTING": True, "DATABASE_URL": database_url, "TOOL_BASE_URL": tool_url,
        "KEYS_DIR": str(workdir / "keys"), "TOOL_CONFIG": str(workdir / "tool_config.json"),
        "SECRET_KEY": "bench", "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET,
    })
    upgrade_database(app)
    forward.app = app
    server.start()
    logging_off()

    if args.scheduled:
        start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
        platform.resource_links["1"].custom.update(
            {"schedule_start": start.isoformat(), "schedule_minutes": "60", "schedule_weeks": "12"})
    results = []
    # Warm-up: the teacher's launch (first launch makes the room) and the JWKS fetch.
    _, teacher, room_path, teacher_ticket = launch(platform, tool_url, "teacher")

    durations, people, wall = timed_pool(lambda n: launch(platform, tool_url, f"s{n}")[1:], range(args.students),
                                         args.concurrency)
    results.append(summary("launch (login+auth+launch+room page)", durations, wall))

    calls_before = bbb.count("getMeetingInfo") + bbb.count("isMeetingRunning")

    def poll(person):
        """As the waiting page's script polls: it sends back the version of the state it shows."""
        browser, path, ticket = person
        shown = {}
        for _ in range(args.polls):
            answer = browser.get(tool_url + path + "/status", headers={"X-Room-Ticket": ticket, **shown}).json()
            assert answer["open"] is False
            if answer.get("version"):
                shown = {"X-Shown-Version": answer["version"]}

    durations, _, wall = timed_pool(poll, people, args.concurrency)
    polls = len(people) * args.polls
    results.append({**summary("waiting: status polls (per student batch)", durations, wall), "polls": polls,
                    "polls_per_s": round(polls / wall, 1),
                    "video_server_calls": bbb.count("getMeetingInfo") + bbb.count("isMeetingRunning") - calls_before})

    started = time.perf_counter()
    teacher.post(tool_url + room_path + "/join", data={"t": teacher_ticket}, allow_redirects=False)
    results.append({"step": "teacher start (create on BBB)", "ms": round((time.perf_counter() - started) * 1000, 1)})

    def join(person):
        browser, path, ticket = person
        answer = browser.post(tool_url + path + "/join", data={"t": ticket}, allow_redirects=False)
        assert answer.status_code == 302 and "role=VIEWER" in answer.headers["Location"]

    creates_before = bbb.count("create")
    durations, _, wall = timed_pool(join, people, args.concurrency)
    results.append({**summary("student joins (302 to BBB)", durations, wall),
                    "creates_by_students": bbb.count("create") - creates_before})

    print(json.dumps({"database": database_url.split(":")[0], "students": args.students, "scheduled": args.scheduled,
                      "concurrency": args.concurrency, "results": results}, indent=2))
    server.stop()
    bbb.stop()
    platform.stop()


def logging_off():
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for name in ("werkzeug", "lti_tool", "lti_tool.providers.bbb"):
        logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
