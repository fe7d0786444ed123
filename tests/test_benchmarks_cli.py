"""The CLI cold-start benchmark and the warm HTTP search benchmark run, in their quickest modes.

Only that they run and report what they promise: the figures themselves are timings on a shared
machine, compared with their budgets by ``python -m benchmarks cli`` / ``search-http``, never here.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import bench_cli, bench_search_http


def test_the_cli_benchmark_measures_help_status_emit_and_search_against_the_floor() -> None:
    results = bench_cli.run(quick=True)
    commands = ["chronicle --help", "chronicle status, 10,000 events", "chronicle emit, 1 event",
                "chronicle search, local model, cold"]
    assert [r.name.split(" (")[0] for r in results] == [n for c in commands for n in (c, f"{c}, CPU time")]
    for result in results:
        assert result.ours > 0 and result.unit == "ms" and result.target_ratio == 1.0
    for wall in results[::2]:
        assert "floor python -c pass" in str(wall.notes["min/median"])
    assert [r.baseline for r in results[::2]] == [300.0, 1000.0, 500.0, 2000.0]  # issue 17's budgets


def test_the_search_benchmark_serves_concurrent_searches_from_one_server(tmp_path: Path) -> None:
    results = bench_search_http.measure("test", events=120, per_client=3, workdir=tmp_path)
    assert [r.name.rsplit(": ", 1)[1] for r in results] == ["p50 (vs /healthz p50)", "p99 (vs /healthz p99)"]
    assert all(r.ours > 0 and r.baseline > 0 for r in results)
    assert f"{3 * bench_search_http.CLIENTS} searches" in str(results[0].notes["load"])
