"""Benchmark: the herd at the top of the hour — 2,000 students wait on the room's waiting page,
the teacher starts the class, and every page moves to the room page and joins.

    .venv/bin/python bench/herd.py            # 500 and 2,000 students
    .venv/bin/python bench/herd.py --quick    # 100 students, under a minute

The tool runs as in production (bench/stack.py: gunicorn, 2 sync workers, PostgreSQL) with the
fake Moodle and fake BigBlueButton. Setup (untimed): the teacher launches (the room is made),
then every student makes the whole OIDC launch (login → platform authorization → id_token →
waiting page) at moderate concurrency.

The herd is simulated as static/pages.js behaves (one asyncio task per page, aiohttp): a waiting
page polls GET /rooms/<id>/status with its room ticket in X-Room-Ticket and the version it shows
in X-Shown-Version, waits its interval plus jitter after each answer (read from pages.js), and,
when an answer says the class is open, replaces itself with the room page (`url`), whose join
form the person sends at once: POST /rooms/<id>/join with intent=join, answered with JSON. The
room page polls too (from a fresh, empty shown version). Pages start with a random phase, as
students who arrived over minutes; a warm-up is not measured. At t0 the teacher starts the class.

Measured: time from t0 until every student joined, join latency (the POST) and room-page latency,
poll latency before and after t0, calls to the fake BBB by kind, errors, the machine's load, CPU
seconds of the web workers, of PostgreSQL and of this process (the load generator and the fakes).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Stack, latency_summary, machine_load, process_cpu_seconds

# static/pages.js: `follow()` waits 4000 ms + Math.random() * 3000 ms after each answer
# (10000 ms once the class has ended, which never happens here).
PAGES_JS = Path(__file__).resolve().parent.parent / "static" / "pages.js"
BBB_CALLS = ("getMeetingInfo", "isMeetingRunning", "create", "getRecordings")
GOAL_ALL_JOINED_S, GOAL_JOIN_P99_MS, GOAL_POLL_P99_MS, GOAL_BBB_CALLS = 30.0, 1000.0, 250.0, 10


def page_moves_on_open() -> bool:
    """Does the waiting page load the room page when the class opens (pages.js before the herd
    fix), or swap the Join control in place?"""
    return "window.location.replace(data.url)" in PAGES_JS.read_text()


def poll_interval() -> tuple[float, float, bool]:
    """(base seconds, jitter as a share of the base, whether pages follow the tool's `poll`) of the
    waiting page's poll, read from pages.js so the bench follows the page when it changes."""
    text = PAGES_JS.read_text()
    adaptive = re.search(
        r"Math\.max\((\d+), crowdSeconds \* 1000\);\s*return base \+ Math\.random\(\) \* base \* ([\d.]+)", text)
    if adaptive:
        return int(adaptive.group(1)) / 1000, float(adaptive.group(2)), True
    fixed = re.search(r'"ended" \? \d+ : (\d+)\) \+ Math\.random\(\) \* (\d+)', text)
    if fixed:
        return int(fixed.group(1)) / 1000, int(fixed.group(2)) / int(fixed.group(1)), False
    raise RuntimeError("bench/herd.py no longer recognises the poll interval in static/pages.js")


# ----------------------------------------------------------------------------- setup (untimed)
def launch(stack: Stack, user: str) -> dict:
    """One student's whole launch, as a browser; returns what their waiting page holds."""
    browser = requests.Session()
    fields = stack.platform.login_initiation(user=user)
    answer = browser.post(stack.tool_url + "/lti/login", data=fields, allow_redirects=False, timeout=60)
    form = stack.platform.authorize(urljoin(stack.tool_url, answer.headers["Location"]))
    launched = browser.post(form["action"], data={"id_token": form["id_token"], "state": form["state"]},
                            allow_redirects=False, timeout=60)
    assert launched.status_code == 303, launched.text[:300]
    page = browser.get(urljoin(stack.tool_url, launched.headers["Location"]), timeout=60)
    assert page.status_code == 200, page.text[:300]
    return {"path": urlsplit(launched.headers["Location"]).path, "ticket": area_ticket(page.text),
            "waiting": "data-wait" in page.text}


def area_ticket(page_html: str) -> str:
    """The room ticket the page's status area hands its script (data-ticket)."""
    found = re.search(r'data-ticket="([^"]+)"', page_html)
    assert found, "the page has no status area"
    return found.group(1)


def launch_everyone(stack: Stack, students: int, concurrency: int = 8) -> tuple[dict, list[dict]]:
    teacher = launch(stack, "teacher")
    for n in range(students):
        stack.platform.add_user(f"s{n}", str(1000 + n), ["Learner"], "Student", f"No{n}", f"s{n}@example.com")
    with ThreadPoolExecutor(concurrency) as pool:
        pages = list(pool.map(lambda n: launch(stack, f"s{n}"), range(students)))
    assert all(page["waiting"] for page in pages), "a student did not get the waiting page"
    return teacher, pages


def database_backends(stack: Stack) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends serving this benchmark's database (the tool's
    pools keep them for the run), by pid: the machine-wide sum moves with other people's work."""
    if not stack.database_url.startswith("postgresql"):
        return {}
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        pids = connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        found = {pid: process_cpu_seconds(pid) for (pid,) in pids}
    engine.dispose()
    return found


def database_cpu_since(stack: Stack, before: dict[int, float]) -> float:
    pids = set(database_backends(stack)) | set(before)  # a backend gone since reads 0: a little lost
    return sum(process_cpu_seconds(pid) for pid in pids) - sum(before.values())


# ----------------------------------------------------------------------------- the herd
class Herd:
    """The simulated pages and what they saw."""

    def __init__(self, tool_url: str, pages: list[dict], interval: tuple[float, float]):
        self.tool_url = tool_url
        self.pages = pages
        self.base, self.jitter, self.adaptive = interval
        self.moves_on_open = page_moves_on_open()
        self.t0: float | None = None
        self.measuring = False
        self.stop = asyncio.Event()
        self.polls_before: list[float] = []
        self.polls_after: list[float] = []
        self.room_pages: list[float] = []
        self.joins: list[float] = []
        self.joined_after: list[float] = []
        self.errors: dict[str, int] = {}

    def wait(self, crowd: float = 0.0) -> float:
        """pages.js `interval()`: the page's base, or the tool's `poll` for a big class."""
        base = max(self.base, crowd) if self.adaptive else self.base
        return base + random.random() * base * self.jitter

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def timed(self, http, method: str, url: str, **kwargs) -> tuple[float, int, str]:
        started = time.perf_counter()
        async with http.request(method, url, allow_redirects=False, **kwargs) as answer:
            body = await answer.text()
        return time.perf_counter() - started, answer.status, body

    async def page(self, http, page: dict) -> None:
        """One student's tab: the waiting page's script, then the room page's."""
        status_url = self.tool_url + page["path"] + "/status"
        ticket, shown, joined, crowd = page["ticket"], "", False, 0.0
        await asyncio.sleep(random.random() * self.base * (1 + self.jitter))  # arrived some time ago
        while not self.stop.is_set():
            headers = {"Accept": "application/json", "X-Room-Ticket": ticket}
            if shown:
                headers["X-Shown-Version"] = shown
            sent_after_t0 = self.t0 is not None
            try:
                elapsed, code, body = await self.timed(http, "GET", status_url, headers=headers)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.error(f"poll {type(exc).__name__}")
                await asyncio.sleep(self.wait(crowd))
                continue
            if self.measuring:
                (self.polls_after if sent_after_t0 else self.polls_before).append(elapsed)
            if code != 200:
                self.error(f"poll {code}")
                await asyncio.sleep(self.wait(crowd))
                continue
            data = json.loads(body)
            crowd = data.get("poll") or crowd
            if not data.get("same"):
                shown = data.get("version", "")
                if not joined and data.get("open"):
                    ticket, joined = await self.join(http, page, data)
                    if self.moves_on_open:
                        shown = ""  # a new page: it shows what it was rendered with
            await asyncio.sleep(self.wait(crowd))

    async def join(self, http, page: dict, data: dict) -> tuple[str, bool]:
        """The waiting page shows the Join control (in place, or by loading the room page); the
        person presses it at once."""
        try:
            if self.moves_on_open:
                elapsed, code, body = await self.timed(http, "GET", urljoin(self.tool_url, data["url"]))
                self.room_pages.append(elapsed)
                if code != 200:
                    self.error(f"room page {code}")
                    return page["ticket"], False
                ticket = area_ticket(body)
            else:
                ticket = re.search(r'name="t" value="([^"]+)"', data["html"]["controls"]).group(1)
            elapsed, code, body = await self.timed(
                http, "POST", self.tool_url + page["path"] + "/join", data={"t": ticket, "intent": "join"},
                headers={"Accept": "application/json", "X-Room-Ticket": ticket, "Origin": self.tool_url})
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.error(f"join {type(exc).__name__}")
            return page["ticket"], False
        if code != 200 or "url" not in json.loads(body):
            self.error(f"join {code}")
            return ticket, False
        self.joins.append(elapsed)
        self.joined_after.append(time.perf_counter() - self.t0)
        return ticket, True


async def run_herd(stack: Stack, teacher: dict, pages: list[dict], warmup: float, before: float,
                   limit: float, tail: float) -> tuple[Herd, dict]:
    herd = Herd(stack.tool_url, pages, poll_interval())
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # gunicorn's sync workers close anyway
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = [asyncio.create_task(herd.page(http, page)) for page in pages]
        await asyncio.sleep(warmup)
        herd.measuring = True
        await asyncio.sleep(before)
        herd.t0 = time.perf_counter()
        calls_at_t0 = {name: stack.bbb.count(name) for name in BBB_CALLS}
        elapsed, code, body = await herd.timed(
            http, "POST", stack.tool_url + teacher["path"] + "/join", data={"t": teacher["ticket"]},
            headers={"Accept": "application/json", "X-Room-Ticket": teacher["ticket"], "Origin": stack.tool_url})
        start = {"teacher_start_ms": round(elapsed * 1000, 1), "status": code}
        deadline = herd.t0 + limit
        while len(herd.joined_after) < len(pages) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        # The start as the video server sees it: from the teacher's Start until the last student is in.
        start["bbb_calls_t0_to_all_joined"] = {name: stack.bbb.count(name) - calls_at_t0[name] for name in BBB_CALLS}
        await asyncio.sleep(tail)  # the room pages poll on: polls after t0 include theirs
        herd.stop.set()
        await asyncio.gather(*tasks)
    return herd, start


def measure(students: int, quick: bool) -> dict:
    with Stack(f"herd_{students}", workers=2) as stack:
        teacher, pages = launch_everyone(stack, students)
        calls = {name: stack.bbb.count(name) for name in BBB_CALLS}
        cpu = (stack.cpu_seconds(), database_backends(stack), time.process_time(), time.perf_counter())
        load_before = machine_load()
        # The warm-up is not measured: every page's first poll gets the whole answer (its script
        # starts with no version), 2,000 of them within one interval here, not over the minutes
        # in which students really arrive.
        herd, start = asyncio.run(run_herd(stack, teacher, pages, warmup=4 if quick else 20,
                                           before=6 if quick else 15, limit=90, tail=4 if quick else 8))
        wall = time.perf_counter() - cpu[3]
        calls = {name: stack.bbb.count(name) - calls[name] for name in BBB_CALLS}
        return {
            "students": students,
            **start,
            "joined": len(herd.joined_after),
            "all_joined_after_t0_s": round(max(herd.joined_after), 2) if len(herd.joined_after) == students else None,
            "join": latency_summary(herd.joins),
            "room_page": latency_summary(herd.room_pages),
            "poll_before_t0": latency_summary(herd.polls_before),
            "poll_after_t0": latency_summary(herd.polls_after),
            "bbb_calls": calls,
            "errors": herd.errors,
            "load_during": load_before + machine_load(),
            "wall_s": round(wall, 1),
            "web_cpu_s": round(stack.cpu_seconds() - cpu[0], 1),
            "postgres_cpu_s": round(database_cpu_since(stack, cpu[1]), 1),  # this database's backends
            "generator_cpu_s": round(time.process_time() - cpu[2], 1),
            "generator_cpu_share": round((time.process_time() - cpu[2]) / wall, 2),
        }


def goals(rows: list[dict]) -> list[dict]:
    row = max(rows, key=lambda r: r["students"])
    n = row["students"]
    during = row["bbb_calls_t0_to_all_joined"]
    status_calls = during["getMeetingInfo"] + during["isMeetingRunning"]
    calls = status_calls + during["create"]
    joined = row["all_joined_after_t0_s"]
    polls = max(row["poll_before_t0"]["p99_ms"], row["poll_after_t0"]["p99_ms"])
    return [
        {"goal": f"{n}-student herd: all joined within 30 s of the start", "baseline": "30.5 s (issue 12)",
         "measured": f"{joined} s" if joined is not None else f"{row['joined']}/{n} joined in 90 s",
         "met": joined is not None and joined <= GOAL_ALL_JOINED_S},
        {"goal": "join p99 under 1 s", "baseline": "12.8 s (issue 12)",
         "measured": f"{row['join']['p99_ms']} ms",
         "met": row["joined"] == n and row["join"]["p99_ms"] < GOAL_JOIN_P99_MS},
        {"goal": "waiting polls p99 under 250 ms", "baseline": "9.4 s (issue 12)",
         "measured": f"{polls} ms (worse of before/after t0)", "met": polls < GOAL_POLL_P99_MS},
        {"goal": "the video server asked a handful of times", "baseline": "",
         "measured": f"{calls} calls from the start until all joined (status {status_calls}, "
                     f"create {during['create']}); {sum(row['bbb_calls'].values())} in the whole run",
         "met": calls <= GOAL_BBB_CALLS},
    ]


def run(quick: bool = False) -> dict:
    load_before = machine_load()
    rows = [measure(n, quick) for n in ((100,) if quick else (500, 2000))]
    return {"benchmark": "herd", "load_before": load_before, "load_after": machine_load(),
            "poll_interval_s": list(poll_interval()), "page_moves_on_open": page_moves_on_open(),
            "results": rows, "goals": goals(rows)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 students: a smoke run under a minute")
    parser.add_argument("--students", type=int, nargs="*", help="sizes other than the default ones")
    args = parser.parse_args()
    if args.students:
        result = {"benchmark": "herd", "load_before": machine_load(),
                  "results": [measure(n, args.quick) for n in args.students]}
        result.update(load_after=machine_load(), goals=goals(result["results"]))
    else:
        result = run(args.quick)
    print(json.dumps(result, indent=2))
