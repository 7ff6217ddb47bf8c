"""/metrics under gunicorn with the shipped gunicorn.conf.py and two workers: a scrape answered
by either worker counts every worker's requests (prometheus-client's multiprocess mode), and a
worker that dies and is replaced keeps its counts."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.test_access_log import PROJECT, _environment, _free_port, _stop, _wait_until_up

REQUESTS = 20


def healthz_count(url: str) -> float:
    answer = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"})
    assert answer.status_code == 200, answer.text[:300]
    return sum(sample.value for family in text_string_to_metric_families(answer.text) for sample in family.samples
               if sample.name == "lti_tool_http_request_duration_seconds_count"
               and sample.labels.get("endpoint") == "health.healthz")


def worker_pids(master: int) -> list[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return [int(pid) for pid in children.stdout.split()]


def test_every_workers_requests_are_in_every_scrape(migrated, database_url, keys_dir, tmp_path):
    port = _free_port()
    environment = {**_environment(database_url, keys_dir, tmp_path), "WEB_CONCURRENCY": "2",
                   "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESS_LOG": "off"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app"], cwd=PROJECT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)  # one /healthz
        deadline = time.monotonic() + 20
        while len(worker_pids(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # One worker is kept busy reading a request that is not finished yet, so the others go
        # to the other worker; then it is finished: both workers have counted.
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.5)
        for _ in range(REQUESTS - 2):
            assert requests.get(url + "/healthz", timeout=10, headers={"Connection": "close"}).status_code == 200
        held.sendall(b"Connection: close\r\n\r\n")
        assert held.recv(100).startswith(b"HTTP/1.1 200")
        held.close()
        assert [healthz_count(url) for _ in range(4)] == [REQUESTS] * 4
        writers = {path.stem.rsplit("_", 1)[-1] for path in (tmp_path / "metrics").glob("*.db")}
        assert writers == {str(pid) for pid in worker_pids(process.pid)}, writers  # each worker its own files
        os.kill(worker_pids(process.pid)[0], signal.SIGKILL)  # gunicorn replaces it (child_exit)
        while len(worker_pids(process.pid)) < 2 and time.monotonic() < deadline + 20:
            time.sleep(0.1)
        assert healthz_count(url) == REQUESTS, "a dead worker's counts stay counted"
    finally:
        _stop(process)
