"""What every benchmark stands on: a fresh database, the tool served by gunicorn in its own
processes (as in production), the fake Moodle and fake BigBlueButton from tests/fakes/ on
loopback, background `worker` processes, and readings of the machine (load, CPU seconds and
memory of the server processes, from /proc).

    with Stack("launch", workers=2) as stack:       # PostgreSQL unless BENCH_DATABASE_URL says sqlite
        stack.platform.add_user(...)
        requests.get(stack.tool_url + "/healthz")
        cpu = stack.cpu_seconds()                    # the tool's worker processes, summed

The database is `bench_<name>` next to BENCH_DATABASE_URL (default: the local PostgreSQL), dropped
and made again at every start, so runs never share rows.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import BBB_SECRET  # noqa: E402
from tests.fakes.bbb_server import FakeBigBlueButton  # noqa: E402
from tests.fakes.lti_platform import FakePlatform  # noqa: E402

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PYTHON = str(ROOT / ".venv" / "bin" / "python")


# ----------------------------------------------------------------------------- machine readings
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine_load() -> list[float]:
    """The 1, 5 and 15 minute load averages (2 cores here: 2.0 is a full machine)."""
    return [round(value, 2) for value in os.getloadavg()]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (threads included), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def process_pss_mb(pid: int) -> float:
    """Proportional set size: the process's own pages plus its share of those it shares (with
    the gunicorn master it was forked from, say), which RSS counts whole in every worker."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def postgres_cpu_seconds(database: str | None = None) -> float:
    """CPU of every PostgreSQL server process on this machine (backends come and go with the
    pools, so the sum over all of them is what a run's delta measures); with `database`, only
    the backends serving that database (their title names it), so that other people's
    databases on a shared server stay out of the figure — valid while the pools keep their
    connections open, as the tool's do."""
    seen = _POSTGRES_CPU_SEEN.setdefault(database, {})
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() not in ("postgres", "postmaster"):
                    continue
                if database and f" {database} " not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    continue
                seen[int(entry.name)] = max(seen.get(int(entry.name), 0.0), process_cpu_seconds(int(entry.name)))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return sum(seen.values())


# CPU last read of each process, gone ones included: a backend that closes, or a gunicorn worker
# that max_requests replaces, must not make a later reading smaller than an earlier one.
_POSTGRES_CPU_SEEN: dict[str | None, dict[int, float]] = {}


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict:
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds, default=0) * 1000, 1),
    }


# ----------------------------------------------------------------------------- databases
def fresh_database(name: str) -> str:
    """A new, empty database for one benchmark: `bench_<name>` on the PostgreSQL server of
    BENCH_DATABASE_URL, or a new SQLite file when that URL is `sqlite`."""
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    if base.startswith("sqlite"):
        return f"sqlite:///{tempfile.mkdtemp(prefix='bench-')}/{name}.db"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    database = f"bench_{name}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False).replace("+psycopg", "", 1)


# ----------------------------------------------------------------------------- the tool, served
class GunicornApp:
    """Any WSGI app of this repository served by gunicorn (sync workers unless `threads` > 1)."""

    def __init__(self, target: str, env: dict, workers: int = 2, threads: int = 1, port: int | None = None,
                 log_path: Path | None = None, config: str | None = "gunicorn.conf.py"):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="bench-log-")) / "gunicorn.log"
        command = [PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "-w", str(workers),
                   "--threads", str(threads), "--access-logfile", "-"]
        if config:
            command += ["-c", str(ROOT / config)]
        self.command = command + [target]
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen | None = None
        self._cpu_seen: dict[int, float] = {}

    def start(self, ready_path: str = "/", timeout: float = 60) -> GunicornApp:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.log_path}")
            try:
                if requests.get(self.url + ready_path, timeout=2).status_code < 500:
                    self._wait_for_workers()
                    return self
            except requests.RequestException:  # not listening yet, or too busy starting to answer in 2 s
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s: see {self.log_path}")

    def _wait_for_workers(self) -> None:
        for _ in range(100):
            if self.worker_pids():
                return
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        """CPU of the workers, summed over every worker seen so far (a worker replaced by
        max_requests keeps counting with what it had used when last read)."""
        for pid in self.worker_pids():
            self._cpu_seen[pid] = max(self._cpu_seen.get(pid, 0.0), process_cpu_seconds(pid))
        return sum(self._cpu_seen.values())

    def rss_mb(self) -> list[float]:
        return [process_rss_mb(pid) for pid in self.worker_pids()]

    def pss_mb(self) -> list[float]:
        return [process_pss_mb(pid) for pid in self.worker_pids()]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.log.close()


class Stack:
    """The fake Moodle and fake BigBlueButton (threads of this process) and the tool under
    gunicorn on a fresh database; `start_workers(n)` adds `flask worker` processes."""

    def __init__(self, name: str, workers: int = 2, threads: int = 1, env: dict | None = None):
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.port = free_port()
        self.tool_url = f"http://127.0.0.1:{self.port}"
        self.database_url = fresh_database(name)
        self.bbb = FakeBigBlueButton(BBB_SECRET)
        self.platform = FakePlatform(tool_base_url=self.tool_url)
        self.env = {
            "DATABASE_URL": self.database_url,
            "TOOL_BASE_URL": self.tool_url,
            "KEYS_DIR": str(self.workdir / "keys"),
            "TOOL_CONFIG": str(self.workdir / "tool_config.json"),
            "SECRET_KEY": "bench-secret-key-bench-secret-key",
            "BBB_SERVER_URL": self.bbb.url,
            "BBB_SHARED_SECRET": BBB_SECRET,
            **(env or {}),
        }
        self.web = GunicornApp("wsgi:app", self.env, workers=workers, threads=threads, port=self.port,
                               log_path=self.workdir / "web.log")
        self.worker_processes: list[subprocess.Popen] = []

    def start(self) -> Stack:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fakes' request lines
        try:
            self.bbb.start()
            self.platform.start()
            (self.workdir / "tool_config.json").write_text(
                json.dumps({self.platform.issuer: [self.platform.registration_args()]}))
            self.flask("db", "upgrade")
            self.web.start("/healthz")
        except BaseException:
            self.stop()  # `with` never calls __exit__ when __enter__ raises: no gunicorn left behind
            raise
        return self

    def flask(self, *args: str) -> str:
        done = subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                              env={**os.environ, **self.env}, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"flask {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start_workers(self, count: int) -> list[int]:
        for n in range(count):
            log = (self.workdir / f"worker{n}.log").open("ab")
            self.worker_processes.append(subprocess.Popen(
                [PYTHON, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                env={**os.environ, **self.env}, stdout=log, stderr=log))
        return [process.pid for process in self.worker_processes]

    def cpu_seconds(self) -> float:
        """CPU of the tool's web worker processes."""
        return self.web.cpu_seconds()

    def worker_cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(process.pid) for process in self.worker_processes)

    def stop(self) -> None:
        for process in self.worker_processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.worker_processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.web.stop()
        self.platform.stop()
        self.bbb.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
