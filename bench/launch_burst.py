"""Worker CPU per repeat launch POST, and optionally a py-spy profile of it: a measuring aid
beside launch_profile.py (which measures each request alone, in 10 ms clock ticks).

    .venv/bin/python bench/launch_burst.py --tool-dir /tmp/baseline --launches 300
    .venv/bin/python bench/launch_burst.py --launches 300 --spy /tmp/launch.txt   # py-spy raw

Starts `gunicorn -w 1 wsgi:app` in --tool-dir on PostgreSQL (BENCH_DATABASE_URL), launches
every student once, logs each of them in again and has the platform sign their launches
(untimed), then posts all those launch POSTs one after another and divides the worker's CPU
(utime + stime) over the burst by their number. With --spy, py-spy records the worker during
the burst (`--format raw`: collapsed stacks; the waits on PostgreSQL appear as psycopg frames).
Everything stays on 127.0.0.1; every loop is bounded in count.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import launch_profile as lp  # puts --tool-dir first on sys.path
from tests.conftest import BBB_SECRET, reset_postgres

SETTINGS = ("DATABASE_URL", "TOOL_BASE_URL", "KEYS_DIR", "TOOL_CONFIG", "SECRET_KEY", "BBB_SERVER_URL",
            "BBB_SHARED_SECRET")


def _environment(database: str, url: str, platform, bbb) -> dict:
    workdir = Path(tempfile.mkdtemp())
    return {**os.environ, "DATABASE_URL": database, "TOOL_BASE_URL": url, "KEYS_DIR": str(workdir / "keys"),
            "TOOL_CONFIG": str(lp._tool_config(workdir, platform)), "SECRET_KEY": "bench",
            "BBB_SERVER_URL": bbb.url, "BBB_SHARED_SECRET": BBB_SECRET}


def _signed_launches(platform, url: str, people: list[str]) -> list:
    for name in ["teacher", *people]:  # first launches: every row exists afterwards
        flow = lp.Flow(platform, url)
        flow.authorize(flow.login(name))
        flow.launch()
    flows = []
    for name in people:
        flow = lp.Flow(platform, url)
        flow.authorize(flow.login(name))
        flows.append(flow)
    return flows


def _burst(worker: int, flows: list, spy: str | None) -> float:
    recorder = None
    if spy:
        recorder = subprocess.Popen([str(lp.HERE / ".venv/bin/py-spy"), "record", "--pid", str(worker), "--format",
                                     "raw", "-r", "500", "-o", spy], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # py-spy attaches
    before = lp.cpu_seconds(worker)
    for flow in flows:
        flow.launch()
    spent = lp.cpu_seconds(worker) - before
    if recorder:
        recorder.send_signal(2)
        recorder.wait(timeout=60)
    return spent * 1000 / len(flows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool-dir", default=str(lp.HERE), help="the tree whose tool is measured")
    parser.add_argument("--launches", type=int, default=300)
    parser.add_argument("--spy", help="write py-spy's raw profile of the burst here")
    args = parser.parse_args()
    from lti_tool import create_app, upgrade_database

    database = os.environ.get("BENCH_DATABASE_URL", lp.DEFAULT_DB)
    reset_postgres(database)
    port = lp._free_port()
    url = f"http://127.0.0.1:{port}"
    bbb, platform = lp._fakes(url, args.launches)
    env = _environment(database, url, platform, bbb)
    upgrade_database(create_app({key: env[key] for key in SETTINGS}))
    logging.disable(logging.INFO)
    master = subprocess.Popen([str(lp.HERE / ".venv/bin/gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                              cwd=lp._tool_dir(sys.argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # the worker may still be importing
            try:
                lp.requests.get(url + "/healthz", timeout=5)
                break
            except lp.requests.RequestException:
                time.sleep(0.3)
        worker = lp._workers(master.pid, 1)[0]
        flows = _signed_launches(platform, url, [f"s{n}" for n in range(args.launches)])
        print(f"{lp._tool_dir(sys.argv)}: worker CPU per repeat launch POST {_burst(worker, flows, args.spy):.2f} ms")
    finally:
        master.terminate()
        master.wait(timeout=30)
        bbb.stop(), platform.stop()


if __name__ == "__main__":
    main()
