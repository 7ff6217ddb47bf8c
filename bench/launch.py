"""Benchmark: LTI launches, the tool against a floor and a peer, in one run (issue 12).

    .venv/bin/python bench/launch.py [--quick] [--rounds N]

Three apps, each under gunicorn with 2 sync workers, against the same fake Moodle (a thread of
this process): the *floor* (bench/floor_app.py: PyJWT verifies the id_token, a small page), the
*peer* (bench/peer_app.py: pylti1p3's Flask adapter, its defaults) and the *tool* (wsgi:app on a
fresh PostgreSQL database, bench/stack.py). Two measures, each at concurrency 1, 20 and 100,
the apps taking turns at every level (the order rotates) so that the machine's drifts fall on
all three alike:

- **launch POST**: logins are made first, untimed (POST /login, the state cookie and the
  nonce kept; the fake platform's signing helper signs an id_token with that nonce, as its
  authorization endpoint would), then only the id_token POSTs are timed. The floor has no
  login: its tokens are signed alone.
- **whole flow**: login → the platform's authorization endpoint → launch POST → the room page
  (tool) or the launch's own small page (peer). The floor has no flow.

Every timed launch is a returning student's: each of the class's students is launched once
per app before timing (which also fetches the JWKS into every worker). Readings per step:
requests/s, p50/p95/p99, errors (anything but the expected answer), CPU of the app's gunicorn
workers and of the PostgreSQL backends of the tool's database per request (/proc deltas), the
load generator's own CPU (this process's main thread, asyncio + aiohttp) and the whole bench
process's (generator + fake platform threads), and the machine's load. Worker memory (RSS) is
read after the run.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import GunicornApp, Stack, free_port, latency_summary, machine_load, postgres_cpu_seconds
from tests.fakes.lti_platform import SigningKey

LEVELS = (1, 20, 100)
LAUNCH_POST, WHOLE_FLOW = "launch POST", "whole flow"
PREPARE_CONCURRENCY = 20
MEMORY_GOAL_MB = 80
# Issue 12's figures (2 cores, gunicorn 2 sync workers, PostgreSQL), for the report's comparison.
ISSUE_FIGURES = {"floor": {"launch_per_s": 790, "worker_cpu_ms": 2.2, "rss_mb": 47},
                 "peer": {"launch_per_s": 493, "worker_cpu_ms": 3.6, "flow_per_s": 119, "rss_mb": 51},
                 "tool": {"launch_per_s": 88, "worker_cpu_ms": 17.6, "postgres_cpu_ms": 3.8,
                          "flow_per_s": 37, "rss_mb": 110}}
_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_ACTION = re.compile(r'<form action="([^"]+)"')


@dataclass
class Sizes:
    students: int  # the class: every timed launch is one of theirs, returning
    step_seconds: float  # how long a timed step should last, from the rate measured so far
    rounds: int
    min_requests: Callable[[int], int]  # at a concurrency
    max_requests: int


FULL = Sizes(students=200, step_seconds=1.5, rounds=3, min_requests=lambda c: max(60, 2 * c), max_requests=4000)
QUICK = Sizes(students=40, step_seconds=0.3, rounds=1, min_requests=lambda c: max(20, c), max_requests=200)


@dataclass
class App:
    name: str
    server: GunicornApp
    launch_url: str
    login_url: str | None  # None: no OIDC login (the floor)
    launch_status: int  # the answer to a good id_token POST
    follows: bool = False  # the whole flow GETs the launch's redirect (the tool's room page)
    rates: dict = field(default_factory=dict)  # measure -> the latest requests/s, to size steps


@dataclass
class Prepared:
    """One launch POST ready to send: its form and the browser's cookies."""

    form: dict
    cookie: str = ""


# ----------------------------------------------------------------------------- HTTP, asyncio
def _cookie_header(response: aiohttp.ClientResponse) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())


def _read_form(page: str) -> tuple[str, dict]:
    """The platform's auto-submitting form: where it posts and its hidden fields."""
    action = _ACTION.search(page)
    fields = {name: html.unescape(value) for name, value in _INPUT.findall(page)}
    return html.unescape(action.group(1)) if action else "", fields


async def _pool(items: list, concurrency: int, send) -> tuple[list[float], list, float]:
    """Send every item with `concurrency` at once; the latency and result of each, and the wall
    time. An exception is a result too (counted as an error by the caller)."""
    latencies, results, cursor = [], [], iter(items)

    async def worker():
        for item in cursor:
            started = time.perf_counter()
            try:
                result = await send(item)
            except (TimeoutError, aiohttp.ClientError, KeyError, ValueError) as exc:
                result = exc
            latencies.append(time.perf_counter() - started)
            results.append(result)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, results, time.perf_counter() - started


async def _login(http: aiohttp.ClientSession, app: App, platform, user: str) -> tuple[str, str]:
    """POST the platform's login initiation to the app: the authorization URL and the cookies."""
    fields = platform.login_initiation(user=user, target_link_uri=app.launch_url)
    async with http.post(app.login_url, data=fields, allow_redirects=False) as answer:
        await answer.read()
        if answer.status != 302:
            raise ValueError(f"{app.name} login answered {answer.status}")
        return urljoin(app.login_url, answer.headers["Location"]), _cookie_header(answer)


async def _prepare(http: aiohttp.ClientSession, app: App, platform, users: list[str]) -> list[Prepared]:
    """Untimed: a login per launch (peer, tool), then an id_token signed with its nonce."""
    if app.login_url is None:
        return [Prepared({"id_token": platform.make_id_token(user=user, target_link_uri=app.launch_url)})
                for user in users]
    _, logins, _ = await _pool(users, PREPARE_CONCURRENCY, lambda user: _login(http, app, platform, user))
    failed = [login for login in logins if isinstance(login, Exception)]
    if failed:
        raise RuntimeError(f"{len(failed)} {app.name} logins failed, first: {failed[0]!r}")
    prepared = []
    for user, (location, cookie) in zip(users, logins, strict=True):
        query = parse_qs(urlsplit(location).query)
        platform.launches.pop(json.loads(query["lti_message_hint"][0])["launchid"], None)  # never authorized
        token = platform.make_id_token(user=user, nonce=query["nonce"][0], target_link_uri=app.launch_url)
        prepared.append(Prepared({"id_token": token, "state": query["state"][0]}, cookie))
    return prepared


async def _post_launch(http: aiohttp.ClientSession, app: App, launch: Prepared) -> bool:
    async with http.post(app.launch_url, data=launch.form, headers={"Cookie": launch.cookie},
                         allow_redirects=False) as answer:
        await answer.read()
        return answer.status == app.launch_status


async def _whole_flow(http: aiohttp.ClientSession, app: App, platform, user: str) -> bool:
    location, cookie = await _login(http, app, platform, user)
    async with http.get(location, allow_redirects=False) as answer:  # the platform signs here
        action, fields = _read_form(await answer.text())
    async with http.post(action, data={"id_token": fields["id_token"], "state": fields["state"]},
                         headers={"Cookie": cookie}, allow_redirects=False) as answer:
        await answer.read()
        if answer.status != app.launch_status:
            return False
        page = answer.headers.get("Location")
    if not app.follows:
        return True
    async with http.get(urljoin(app.launch_url, page), allow_redirects=False) as answer:
        await answer.read()
        return answer.status == 200


# ----------------------------------------------------------------------------- steps
def _readings(app: App, database: str) -> dict:
    return {"workers": app.server.cpu_seconds(), "postgres": postgres_cpu_seconds(database),
            "generator": time.thread_time(), "process": time.process_time(), "wall": time.perf_counter()}


def _row(app: App, measure: str, concurrency: int, timed: tuple, spent: dict) -> dict:
    latencies, results, wall = timed
    count = len(results)
    failures = [result for result in results if result is not True]
    row = {"app": app.name, "measure": measure, "concurrency": concurrency, "requests": count,
           "errors": len(failures), "per_s": round(count / wall, 1)}
    row.update({key: value for key, value in latency_summary(latencies).items() if key != "count"})
    row.update({
        "worker_cpu_ms": round(spent["workers"] / count * 1000, 2),
        "postgres_cpu_ms": round(spent["postgres"] / count * 1000, 2),
        "loadgen_cpu_ms": round(spent["generator"] / count * 1000, 2),
        # Shares of one core over the step: 2.0 would be the whole machine.
        "workers_cores": round(spent["workers"] / wall, 2),
        "loadgen_cores": round(spent["generator"] / wall, 2),
        "bench_process_cores": round(spent["process"] / wall, 2),
        "load_1m": machine_load()[0],
    })
    if failures:
        row["first_error"] = repr(failures[0])[:200]
    return row


def _count(app: App, measure: str, concurrency: int, sizes: Sizes) -> int:
    rate = app.rates[measure] * (0.5 if concurrency == 1 else 1.0)
    return max(sizes.min_requests(concurrency), min(sizes.max_requests, round(rate * sizes.step_seconds)))


def _students(sizes: Sizes, count: int, start: int = 0) -> list[str]:
    return [f"bench{(start + n) % sizes.students}" for n in range(count)]


async def _step(http, stack: Stack, app: App, measure: str, concurrency: int, sizes: Sizes) -> dict:
    users = _students(sizes, _count(app, measure, concurrency, sizes))
    if measure == LAUNCH_POST:
        items = await _prepare(http, app, stack.platform, users)
        send = lambda launch: _post_launch(http, app, launch)  # noqa: E731
    else:
        items, send = users, lambda user: _whole_flow(http, app, stack.platform, user)
    database = f"bench_{stack.name}"
    before = _readings(app, database)
    timed = await _pool(items, concurrency, send)
    after = _readings(app, database)
    row = _row(app, measure, concurrency, timed, {key: after[key] - before[key] for key in before})
    if concurrency > 1:
        app.rates[measure] = row["per_s"]
    return row


async def _checks(http, app: App, platform) -> dict:
    """What each app answers to an id_token with a good nonce and state whose signature is
    another key's (under the platform's kid: every app must refuse it), and to a good launch
    posted a second time, same cookies (the tool spends its nonce; the peer's never is)."""
    forged, replayed = await _prepare(http, app, platform, ["student", "student"])
    claims = jwt.decode(forged.form["id_token"], options={"verify_signature": False})
    forged.form["id_token"] = platform.sign_jwt(claims, header={"kid": platform.signing_key.kid}, key=SigningKey())
    statuses = {}
    for name, launch in (("forged_token", forged), ("first_post", replayed), ("same_post_again", replayed)):
        async with http.post(app.launch_url, data=launch.form, headers={"Cookie": launch.cookie},
                             allow_redirects=False) as answer:
            await answer.read()
            statuses[name] = answer.status
    return {"app": app.name, **statuses}


async def _warm_up(http, stack: Stack, app: App, sizes: Sizes) -> dict:
    """Untimed: the teacher, then every student once (the room and the people exist, every
    worker has the platform's keys); the rates measured size the timed steps."""
    await _pool(await _prepare(http, app, stack.platform, ["teacher"]), 1, lambda item: _post_launch(http, app, item))
    launches = await _prepare(http, app, stack.platform, _students(sizes, sizes.students))
    latencies, results, wall = await _pool(launches, 20, lambda item: _post_launch(http, app, item))
    if not all(result is True for result in results):
        raise RuntimeError(f"{app.name}: warm-up launches failed: {next(r for r in results if r is not True)!r}")
    app.rates[LAUNCH_POST] = len(results) / wall
    if app.login_url:
        flows = _students(sizes, 2 * PREPARE_CONCURRENCY)
        _, results, wall = await _pool(flows, 20, lambda user: _whole_flow(http, app, stack.platform, user))
        app.rates[WHOLE_FLOW] = len(results) / wall
    return await _checks(http, app, stack.platform)


def _turns(apps: list[App], measure: str, turn: int) -> list[App]:
    """The apps in the order of this turn (rotated each level), the floor only for launch POSTs."""
    taking_part = [app for app in apps if measure == LAUNCH_POST or app.login_url]
    shift = turn % len(taking_part)
    return taking_part[shift:] + taking_part[:shift]


async def _measure(stack: Stack, apps: list[App], sizes: Sizes) -> tuple[list[dict], list[dict]]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # sync gunicorn closes each connection
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        checks = [await _warm_up(http, stack, app, sizes) for app in apps]
        rows = []
        for round_ in range(sizes.rounds):
            for measure in (LAUNCH_POST, WHOLE_FLOW):
                for level, concurrency in enumerate(LEVELS):
                    for app in _turns(apps, measure, round_ + level):
                        rows.append({"round": round_ + 1, **await _step(http, stack, app, measure, concurrency, sizes)})
    return rows, checks


# ----------------------------------------------------------------------------- the three apps
def _registration_env(platform) -> dict:
    """The fake platform as the floor and the peer are told it (the tool has it in TOOL_CONFIG)."""
    return {"BENCH_ISSUER": platform.issuer, "BENCH_CLIENT_ID": platform.client_id,
            "BENCH_DEPLOYMENT_ID": platform.deployment_id, "BENCH_AUTH_LOGIN_URL": platform.auth_login_url,
            "BENCH_AUTH_TOKEN_URL": platform.auth_token_url, "BENCH_JWKS_URL": platform.key_set_url,
            "BENCH_SECRET_KEY": "bench-peer-secret-key-bench-peer"}


@contextlib.contextmanager
def _serve(stack: Stack, name: str):
    """bench/<name>_app.py under gunicorn, 2 sync workers, no config file (the tool's is for
    the tool's own access log); stopped on leaving, even when it did not start."""
    server = GunicornApp(f"bench.{name}_app:app", _registration_env(stack.platform), workers=2, port=free_port(),
                         log_path=stack.workdir / f"{name}.log", config=None)
    try:
        yield server.start("/")
    finally:
        server.stop()


def _apps(stack: Stack, floor: GunicornApp, peer: GunicornApp) -> list[App]:
    stack.platform.redirect_uris.append(peer.url + "/launch")  # the peer is registered too
    return [
        App("floor", floor, floor.url + "/launch", None, 200),
        App("peer", peer, peer.url + "/launch", peer.url + "/login", 200),
        App("tool", stack.web, stack.tool_url + "/lti/launch", stack.tool_url + "/lti/login", 303, follows=True),
    ]


def _enrol_class(platform, sizes: Sizes) -> None:
    for n in range(sizes.students):
        platform.add_user(f"bench{n}", str(100000 + n), ["Learner"], "Bench", f"Student {n}",
                          f"bench{n}@example.com")


# ----------------------------------------------------------------------------- what it says
def _median(rows: list[dict], app: str, measure: str, concurrency: int, key: str):
    values = [row[key] for row in rows
              if row["app"] == app and row["measure"] == measure and row["concurrency"] == concurrency]
    return round(statistics.median(values), 2) if values else None


def _cpu_per_launch(rows: list[dict], app: str) -> float:
    """Server CPU per launch POST at 20 concurrent, the app's workers and PostgreSQL together:
    the figure that the machine's load moves least."""
    return round(sum(_median(rows, app, LAUNCH_POST, 20, key) or 0 for key in ("worker_cpu_ms", "postgres_cpu_ms")), 2)


def _summary(rows: list[dict], memory: dict) -> list[dict]:
    """Issue 12's table, measured now (20 concurrent; medians over rounds), beside its figures,
    with the ratios to the peer of the same run."""
    summary = []
    for app in ("floor", "peer", "tool"):
        summary.append({
            "app": app,
            "launch_POST_per_s": _median(rows, app, LAUNCH_POST, 20, "per_s"),
            "launch_rate_vs_peer": _ratio(_median(rows, app, LAUNCH_POST, 20, "per_s"),
                                          _median(rows, "peer", LAUNCH_POST, 20, "per_s")),
            "worker_cpu_ms_per_launch": _median(rows, app, LAUNCH_POST, 20, "worker_cpu_ms"),
            "postgres_cpu_ms_per_launch": _median(rows, app, LAUNCH_POST, 20, "postgres_cpu_ms"),
            "server_cpu_vs_peer": _ratio(_cpu_per_launch(rows, app), _cpu_per_launch(rows, "peer")),
            "whole_flow_per_s": _median(rows, app, WHOLE_FLOW, 20, "per_s"),
            "worker_rss_mb": max(memory["rss"][app]),
            "worker_pss_mb": max(memory["pss"][app]),
            "issue_12": ISSUE_FIGURES[app],
        })
    return summary


def _ratio(numerator, denominator) -> float | None:
    return round(numerator / denominator, 2) if numerator and denominator else None


def _goals(rows: list[dict], memory: dict) -> list[dict]:
    tool_rate, peer_rate = (_median(rows, app, LAUNCH_POST, 20, "per_s") for app in ("tool", "peer"))
    tool_flow, peer_flow = (_median(rows, app, WHOLE_FLOW, 20, "per_s") for app in ("tool", "peer"))
    launch_ratio, flow_ratio = _ratio(tool_rate, peer_rate), _ratio(tool_flow, peer_flow)
    rss, pss = max(memory["rss"]["tool"]), max(memory["pss"]["tool"])
    return [
        {"goal": "launch POST >= peer's rate (20 concurrent)",
         "measured": f"{launch_ratio}x the peer ({tool_rate} vs {peer_rate} launches/s; server CPU per launch "
                     f"{_cpu_per_launch(rows, 'tool')} vs {_cpu_per_launch(rows, 'peer')} ms)",
         "baseline": "the peer (pylti1p3), same run", "met": bool(launch_ratio and launch_ratio >= 1)},
        {"goal": "whole flow faster than the peer's (20 concurrent)",
         "measured": f"{flow_ratio}x the peer ({tool_flow} vs {peer_flow} flows/s)",
         "baseline": "the peer (pylti1p3), same run", "met": bool(flow_ratio and flow_ratio > 1)},
        {"goal": f"worker memory < {MEMORY_GOAL_MB} MB",
         "measured": f"{rss} MB RSS, the largest worker after the run ({pss} MB PSS)",
         "baseline": f"RSS: floor {max(memory['rss']['floor'])} MB, peer {max(memory['rss']['peer'])} MB",
         "met": rss < MEMORY_GOAL_MB},
    ]


def _memory(apps: dict) -> dict:
    return {"rss": {name: server.rss_mb() for name, server in apps.items()},
            "pss": {name: server.pss_mb() for name, server in apps.items()}}


def run(quick: bool = False, rounds: int | None = None) -> dict:
    sizes = QUICK if quick else FULL
    if rounds:
        sizes = Sizes(sizes.students, sizes.step_seconds, rounds, sizes.min_requests, sizes.max_requests)
    load_before, started = machine_load(), time.monotonic()
    with Stack("launch", workers=2) as stack, contextlib.ExitStack() as servers:
        floor, peer = (servers.enter_context(_serve(stack, name)) for name in ("floor", "peer"))
        served = {"floor": floor, "peer": peer, "tool": stack.web}
        at_start = _memory(served)
        _enrol_class(stack.platform, sizes)
        rows, checks = asyncio.run(_measure(stack, _apps(stack, floor, peer), sizes))
        after = _memory(served)
    return {
        "benchmark": "launch", "load_before": load_before, "load_after": machine_load(),
        "seconds": round(time.monotonic() - started, 1), "quick": quick,
        "errors": sum(row["errors"] for row in rows), "checks": checks,
        "worker_memory_mb": {"after_run": after, "at_start": at_start},
        "summary": _summary(rows, after), "results": rows, "goals": _goals(rows, after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run under a minute")
    parser.add_argument("--rounds", type=int, help="repeat every step this many times (medians reported)")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.quick, arguments.rounds), indent=2))


if __name__ == "__main__":
    main()
