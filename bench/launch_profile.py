"""A launch's cost, for making it cheaper: SQL statements per request, and worker CPU and
memory under gunicorn. Not the launch benchmark (bench/launch.py): a measuring aid.

    .venv/bin/python bench/launch_profile.py statements            # in-process, counts SQL
    .venv/bin/python bench/launch_profile.py gunicorn --launches 200
    .venv/bin/python bench/launch_profile.py gunicorn --tool-dir /tmp/baseline   # another tree

`statements` serves the tool in this process and counts the statements each step sends to the
database (cursor executions; BEGIN and COMMIT not counted, commits counted apart).
`gunicorn` starts `gunicorn -w 2 wsgi:app` in --tool-dir on PostgreSQL (BENCH_DATABASE_URL) and
adds up the workers' CPU (utime + stime from /proc/<pid>/stat) and the database backends' CPU
around each launch POST, one request at a time; then prints each worker's RSS.
Everything stays on 127.0.0.1; every loop is bounded in count.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

HERE = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/perf-launch_bench"


def _tool_dir(argv) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--tool-dir" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
    return HERE


sys.path.insert(0, str(_tool_dir(sys.argv)))
sys.path.insert(1, str(HERE))

import requests  # noqa: E402

from tests.conftest import BBB_SECRET, reset_postgres, room_ticket_in  # noqa: E402
from tests.fakes.bbb_server import FakeBigBlueButton  # noqa: E402
from tests.fakes.http_server import LaterApp, ServedApp  # noqa: E402
from tests.fakes.lti_platform import FakePlatform  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int, field: str = "VmRSS:", source: str = "status") -> float:
    """Resident memory (RSS, shared libraries counted whole) or, with field "Pss:" from
    smaps_rollup, the proportional share (pages shared by the two workers counted half)."""
    for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    return rss_mb(pid, "Pss:", "smaps_rollup")


class Flow:
    """One person's launch, step by step, through a browser session."""

    def __init__(self, platform, tool_url: str):
        self.platform, self.tool_url = platform, tool_url

    def login(self, user: str):
        self.browser = requests.Session()
        fields = self.platform.login_initiation(user=user)
        return self.browser.post(self.tool_url + "/lti/login", data=fields, allow_redirects=False)

    def authorize(self, login_answer):
        self.form = self.platform.authorize(urljoin(self.tool_url, login_answer.headers["Location"]))

    def launch(self):
        answer = self.browser.post(self.form["action"], data={"id_token": self.form["id_token"],
                                                              "state": self.form["state"]}, allow_redirects=False)
        assert answer.status_code == 303, answer.text[:300]
        self.room_url = urljoin(self.tool_url, answer.headers["Location"])
        return answer

    def room_page(self):
        page = self.browser.get(self.room_url)
        assert page.status_code == 200
        self.ticket = room_ticket_in(page.text)
        self.room_path = self.room_url.split("?")[0]

    def join(self):
        answer = self.browser.post(self.room_path + "/join", data={"t": self.ticket}, allow_redirects=False)
        assert answer.status_code == 302, answer.text[:300]


def _fakes(tool_url: str, students: int):
    bbb = FakeBigBlueButton(BBB_SECRET).start()
    platform = FakePlatform(tool_base_url=tool_url).start()
    for n in range(students):
        platform.add_user(f"s{n}", str(1000 + n), ["Learner"], "Student", f"No{n}", f"s{n}@example.com")
    return bbb, platform


def _tool_config(workdir: Path, platform) -> Path:
    path = workdir / "tool_config.json"
    path.write_text(json.dumps({platform.issuer: [platform.registration_args()]}))
    return path


# --------------------------------------------------------------------------- statements
def _caller() -> str:
    """The tool's innermost frames that sent a statement (what --verbose shows)."""
    import traceback

    frames = [f for f in traceback.extract_stack() if "/lti_tool/" in f.filename]
    return " < ".join(f"{f.filename.split('/lti_tool/')[1]}:{f.lineno} {f.name}" for f in frames[-3:][::-1])


def statements(args) -> dict:
    from sqlalchemy import event

    from lti_tool import create_app, upgrade_database
    from lti_tool.extensions import db

    database_url = args.database or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    if database_url.startswith("postgres"):
        reset_postgres(database_url)
    workdir, forward = Path(tempfile.mkdtemp()), LaterApp()
    server = ServedApp(forward)
    bbb, platform = _fakes(server.url, 2)
    app = create_app({
        "TESTING": True, "DATABASE_URL": database_url, "TOOL_BASE_URL": server.url,
        "KEYS_DIR": str(workdir / "keys"), "TOOL_CONFIG": str(_tool_config(workdir, platform)),
        "SECRET_KEY": "bench", "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET,
    })
    upgrade_database(app)
    counts = {"sql": 0, "commits": 0, "log": []}
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        counts["sql"] += 1
        counts["log"].append(statement.split("\n")[0][:60] + "  <- " + _caller())

    @event.listens_for(engine, "commit")
    def _commit(conn):
        counts["commits"] += 1

    forward.app = app
    server.start()
    results = {}

    def step(name, fn, *a):
        counts.update(sql=0, commits=0, log=[])
        value = fn(*a)
        results[name] = {"statements": counts["sql"], "commits": counts["commits"]}
        if args.verbose:
            results[name]["sql"] = list(counts["log"])
        return value

    teacher = Flow(platform, server.url)
    answer = step("login", teacher.login, "teacher")
    teacher.authorize(answer)
    step("first launch (new room)", teacher.launch)
    step("room page (teacher, closed)", teacher.room_page)
    student = Flow(platform, server.url)
    student.authorize(student.login("s0"))
    step("first launch (student, room exists)", student.launch)
    step("room page (student, waiting)", student.room_page)
    step("join (teacher starts)", teacher.join)
    step("join (student)", student.join)
    again = Flow(platform, server.url)
    again.authorize(step("login (again: per-process caches warm)", again.login, "s0"))
    step("repeat launch", again.launch)
    step("room page (student, open)", again.room_page)
    server.stop(), bbb.stop(), platform.stop()
    return {"database": database_url.split(":")[0], "tool_dir": str(_tool_dir(sys.argv)), "steps": results}


# --------------------------------------------------------------------------- gunicorn
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(master: int, expected: int = 2, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) >= expected:
            return [int(c) for c in children]
        time.sleep(0.2)
    raise RuntimeError("gunicorn workers did not start")


def _backend_pids(database_url: str) -> list[int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        rows = connection.execute(text(
            "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"))
        pids = [row[0] for row in rows]
    engine.dispose()
    return pids


def _start_gunicorn(args, env: dict, port: int):
    command = [str(HERE / ".venv/bin/gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    master = subprocess.Popen(command, cwd=_tool_dir(sys.argv), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)  # workers may still be importing
            return master
        except requests.RequestException:
            time.sleep(0.3)
    master.terminate()
    raise RuntimeError("gunicorn did not answer")


def _measured(pids, fn):
    before = [cpu_seconds(p) for p in pids]
    fn()
    return sum(cpu_seconds(p) for p in pids) - sum(before)


def _launch_round(platform, tool_url, people, workers, backends) -> dict:
    totals = {"launch_worker_s": 0.0, "launch_db_s": 0.0, "page_worker_s": 0.0, "login_worker_s": 0.0}
    for name in people:
        flow = Flow(platform, tool_url)
        answer = None

        def login(name=name, flow=flow):
            nonlocal answer
            answer = flow.login(name)

        totals["login_worker_s"] += _measured(workers, login)
        flow.authorize(answer)
        before_db = [cpu_seconds(p) for p in backends]
        totals["launch_worker_s"] += _measured(workers, flow.launch)
        totals["launch_db_s"] += sum(cpu_seconds(p) for p in backends) - sum(before_db)
        totals["page_worker_s"] += _measured(workers, flow.room_page)
    n = len(people)
    return {key.replace("_s", "_ms_each"): round(value * 1000 / n, 2) for key, value in totals.items()}


def gunicorn(args) -> dict:
    from lti_tool import create_app, upgrade_database

    database_url = args.database or DEFAULT_DB
    reset_postgres(database_url)
    port = _free_port()
    tool_url = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp())
    bbb, platform = _fakes(tool_url, args.launches)
    env = {**os.environ, "DATABASE_URL": database_url, "TOOL_BASE_URL": tool_url,
           "KEYS_DIR": str(workdir / "keys"), "TOOL_CONFIG": str(_tool_config(workdir, platform)),
           "SECRET_KEY": "bench", "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET}
    upgrade_database(create_app({k: env[k] for k in ("DATABASE_URL", "TOOL_BASE_URL", "KEYS_DIR", "TOOL_CONFIG",
                                                   "SECRET_KEY", "BBB_SERVER_URL", "BBB_SHARED_SECRET")}))
    master = _start_gunicorn(args, env, port)
    try:
        workers = _workers(master.pid)
        rss_start = [round(rss_mb(p), 1) for p in workers]
        for _ in range(4):  # warm-up: the room, both workers' JWKS fetch and first imports
            _launch_round(platform, tool_url, ["teacher"], workers, [])
        backends = _backend_pids(database_url)
        people = [f"s{n}" for n in range(args.launches)]
        first = _launch_round(platform, tool_url, people, workers, backends)
        repeat = _launch_round(platform, tool_url, people, workers, backends)
        rss_end = [round(rss_mb(p), 1) for p in workers]
        pss_end = [round(pss_mb(p), 1) for p in workers]
    finally:
        master.terminate()
        master.wait(timeout=30)
        bbb.stop(), platform.stop()
    return {"tool_dir": str(_tool_dir(sys.argv)), "launches": args.launches, "first_launches": first,
            "repeat_launches": repeat, "worker_rss_mb_at_start": rss_start,
            "worker_rss_mb_after": rss_end, "worker_pss_mb_after": pss_end,
            "db_backends_measured": len(backends)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["statements", "gunicorn"])
    parser.add_argument("--tool-dir", default=str(HERE), help="the tree whose tool is measured")
    parser.add_argument("--database", help="database URL (gunicorn: PostgreSQL, default " + DEFAULT_DB + ")")
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="statements: list each step's SQL")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    result = statements(args) if args.mode == "statements" else gunicorn(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
