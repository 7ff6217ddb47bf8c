"""bench/run.py, the one benchmark command: a missing benchmark is skipped with a note, one that
raises is reported as failed while the others still run, and the report says so. (Speed is
measured in bench/, never asserted here: these run no benchmark.)"""
from __future__ import annotations

import sys
import types

import pytest

from bench import run as bench_run


@pytest.fixture
def benchmarks(monkeypatch, tmp_path):
    """Two stand-in benchmark modules: bench.passes returns a result, bench.breaks raises."""
    passes = types.ModuleType("bench.passes")
    passes.run = lambda quick: {"benchmark": "passes", "load_before": [0.1], "load_after": [0.2],
                                "results": [{"step": "a|b", "per_s": 10.0}],
                                "goals": [{"goal": "fast", "measured": "10/s", "baseline": "5/s", "met": True}],
                                "quick": quick}
    breaks = types.ModuleType("bench.breaks")

    def broken(quick):
        raise RuntimeError("the database is gone")

    breaks.run = broken
    monkeypatch.setitem(sys.modules, "bench.passes", passes)
    monkeypatch.setitem(sys.modules, "bench.breaks", breaks)
    monkeypatch.setattr(bench_run, "BENCHMARKS", ("breaks", "no_such_bench", "passes"))
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path)
    return tmp_path


def test_a_failing_benchmark_is_reported_and_the_others_still_run(benchmarks):
    tmp_path = benchmarks
    assert bench_run.main(["--quick"]) == 1
    [report] = tmp_path.glob("*.json")
    text = report.read_text()
    assert '"status": "failed"' in text and "RuntimeError: the database is gone" in text
    assert '"status": "missing"' in text and '"status": "ok"' in text and '"quick": true' in text
    latest = (tmp_path / "latest.md").read_text()
    assert "## breaks: failed" in latest and "the database is gone" in latest
    assert "## no_such_bench: missing" in latest and "bench/no_such_bench.py does not exist" in latest
    assert "| fast | 10/s | 5/s | yes |" in latest
    assert "| a\\|b | 10.0 |" in latest  # a cell's pipe does not break the table
    assert "cores" in latest and "Machine load" in latest
    assert "- quick: yes" in latest  # what a benchmark returns beyond the table is shown too


def test_only_runs_the_benchmarks_named(benchmarks):
    tmp_path = benchmarks
    assert bench_run.main(["--only", "passes"]) == 0
    latest = (tmp_path / "latest.md").read_text()
    assert "## passes: ok" in latest and "breaks" not in latest


def test_an_unknown_benchmark_name_is_refused_before_anything_runs(benchmarks, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_run.main(["--only", "passes,herds"])
    assert exit_.value.code == 2
    assert "unknown benchmark(s) herds" in capsys.readouterr().err
