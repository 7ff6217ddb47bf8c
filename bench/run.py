"""The one command for the benchmarks of issue 12:

    .venv/bin/python bench/run.py [--quick] [--only launch,herd,...]

Runs `run(quick)` of each benchmark module that exists among bench/launch.py, herd.py,
grades.py and events.py, one after another (never together: they would measure each other). A
missing module is noted and skipped; one that raises is reported as failed, with its error,
and the others still run. Writes bench/results/<UTC timestamp>.json (everything each returned,
with the commit, the machine's cores and load) and bench/results/latest.md (a table per
benchmark: its goals, measured against the goal, met or not; its summary and rows; the load).
bench/results/ is not committed. The exit status is 1 when a benchmark failed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import machine_load  # noqa: E402

BENCHMARKS = ("launch", "herd", "grades", "events")
RESULTS = ROOT / "bench" / "results"


def _module(name: str):
    """bench.<name>, or None when there is no such file (another engineer's, not merged yet)."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return None
        raise


def run_one(name: str, quick: bool) -> dict:
    """One benchmark's result, marked ok, missing or failed; never raises."""
    started = time.monotonic()
    load_before = machine_load()
    try:
        module = _module(name)
        if module is None:
            return {"benchmark": name, "status": "missing", "note": f"bench/{name}.py does not exist: skipped"}
        result = module.run(quick)
        status = "ok"
    except Exception as exc:  # a failing benchmark must not stop the others
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:],
                  "load_before": load_before, "load_after": machine_load()}
        status = "failed"
    return {"benchmark": name, **result, "status": status, "seconds": round(time.monotonic() - started, 1)}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def machine() -> dict:
    return {
        "commit": _git("rev-parse", "HEAD"),
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }


# ----------------------------------------------------------------------------- markdown
def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(", ", ": "))
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict]) -> list[str]:
    """A markdown table of dicts; its columns are every key, in the order first seen."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return lines + [""]


def _goal_rows(goals: list[dict]) -> list[dict]:
    return [{"goal": goal.get("goal"), "measured": goal.get("measured"), "compared with": goal.get("baseline", ""),
             "met": "yes" if goal.get("met") else "**no**"} for goal in goals]


_SHOWN = {"benchmark", "status", "seconds", "load_before", "load_after", "goals", "summary", "results"}


def benchmark_section(result: dict) -> list[str]:
    took = f" ({result['seconds']} s)" if "seconds" in result else ""
    lines = [f"## {result['benchmark']}: {result['status']}{took}", ""]
    if result["status"] == "missing":
        return lines + [result["note"], ""]
    lines += [f"Machine load (1, 5, 15 min) before {result.get('load_before')}, after {result.get('load_after')}.", ""]
    if result["status"] == "failed":
        return lines + ["Failed: `" + _cell(result["error"]) + "`", "", "```", result["traceback"], "```", ""]
    if result.get("goals"):
        lines += ["Goals:", "", *table(_goal_rows(result["goals"]))]
    if result.get("summary"):
        lines += ["Summary:", "", *table(result["summary"])]
    if result.get("results"):
        lines += ["Results:", "", *table(result["results"])]
    others = {key: value for key, value in result.items() if key not in _SHOWN}
    if others:
        lines += ["Other readings:", "", *(f"- {key}: {_cell(value)}" for key, value in others.items()), ""]
    return lines


def markdown(report: dict) -> str:
    info = report["machine"]
    head = [
        f"# Benchmarks, {report['started']}", "",
        f"Commit `{info['commit'][:12]}` ({info['branch']}"
        + (", with uncommitted changes" if info["uncommitted_changes"] else "") + f"), {info['cores']} cores, "
        f"Python {info['python']}; `{report['command']}`; {report['seconds']} s. "
        f"Machine load before {report['load_before']}, after {report['load_after']}.", "",
    ]
    return "\n".join(head + [line for result in report["benchmarks"] for line in benchmark_section(result)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks of issue 12, one after another.")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", help=f"a comma-separated choice among {','.join(BENCHMARKS)}")
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser.parse_args(argv)
    names = [name.strip() for name in arguments.only.split(",")] if arguments.only else list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose among {', '.join(BENCHMARKS)}")
    started, clock, load_before = datetime.now(UTC), time.monotonic(), machine_load()
    results = []
    for name in names:
        print(f"bench/run.py: {name} ...", file=sys.stderr, flush=True)
        results.append(run_one(name, arguments.quick))
        print(f"bench/run.py: {name} {results[-1]['status']}", file=sys.stderr, flush=True)
    report = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "command": " ".join(["bench/run.py", *argv]),
              "quick": arguments.quick, "machine": machine(), "load_before": load_before,
              "load_after": machine_load(), "seconds": round(time.monotonic() - clock, 1), "benchmarks": results}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "latest.md").write_text(markdown(report))
    print(f"bench/run.py: wrote {path} and {RESULTS / 'latest.md'}", file=sys.stderr)
    return 1 if any(result["status"] == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
