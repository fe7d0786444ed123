"""Replay of a generated CMS log vs the hand-written raw ``sqlite3`` loop (``raw_projector``).

Both build the ``cms`` and ``media`` projections from the same log into fresh files with the same
pragmas; the run asserts they produce the same checksum (equal work), then reports events/s and the
ratio, and the time for 1 000 000 events against the 20 s goal (extrapolated in quick mode). Peak RSS
is measured in subprocesses at two log lengths to show memory does not grow with the log (the replay
streams it): the ratio of the two is ≥ 0.9 when it is flat. It is the sum of the replay's peak and its
writer process's (``pipeline.replay_pipeline``, used on two cores from 50 000 events).

The replay runs as ``chronicle replay`` does by default (``writer="auto"``): on this 2-core machine its
SQL runs in a second process while the first reads the log and runs the handlers; the raw loop is one
process. ``taskset -c 0 python -m benchmarks replay`` measures both on one core.

The other projections (embeddings, failures) are brought to the head before the clock starts, as on a
live system where ``chronicle replay --projection cms --projection media`` runs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from db.engine import create_schema
from pipeline import Chronicle, Settings
from pipeline.checksum import checksum
from pipeline.notify import NullNotifier
from pipeline.replay import rebuild
from pipeline.sample import generate
from pipeline.subsystems import default_projections

from . import raw_projector
from .common import Result

PROJECTIONS = default_projections()

MEASURED = ["cms", "media"]


def make_log(data_dir: Path, n: int) -> Chronicle:
    handle = Chronicle(Settings(data_dir=data_dir, log_synchronous="NORMAL"), notifier=NullNotifier())
    batch: list[dict] = []
    for envelope in generate(n, seed=11):
        batch.append(envelope)
        if len(batch) == 20_000:
            handle.emit_many(batch)
            batch = []
    if batch:
        handle.emit_many(batch)
    # As on a live system, the projections not rebuilt are at the head: the rebuild of cms and media
    # then has nothing of theirs to catch up, and the work is what the raw loop does.
    handle.project([name for name in PROJECTIONS if name not in MEASURED])
    return handle


def _tables() -> list[str]:
    return sorted(t for name in MEASURED for t in PROJECTIONS[name].tables)


def peak_rss_mb(data_dir: Path, until: int) -> float:
    code = (
        "import json, resource, sys; from pathlib import Path\n"
        "from pipeline import Chronicle, Settings; from pipeline.replay import rebuild\n"
        f"h = Chronicle(Settings(data_dir=Path({str(data_dir)!r})))\n"
        f"rebuild(h.store, h.settings.projection_db_path, h.registry.projections, projections={MEASURED!r},"
        f" until={until},"
        f" output=Path({str(data_dir / 'rss.db')!r}))\n"
        # with a writer process (two cores), the peaks of both: an upper bound of what the two hold at once
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss"
        " + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(n: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        handle = make_log(data, n)
        generated = time.perf_counter() - started
        log_path = data / "events.db"

        raw_db = Path(tmp) / "raw.db"
        create_schema(raw_db)
        started = time.perf_counter()
        raw_count = raw_projector.replay(log_path, raw_db)
        raw_seconds = time.perf_counter() - started

        ours_db = Path(tmp) / "ours.db"
        report = rebuild(handle.store, handle.settings.projection_db_path, handle.registry.projections,
                         projections=MEASURED, output=ours_db)
        handle.close()

        same = checksum(raw_db, _tables())["sha256"] == checksum(ours_db, _tables())["sha256"]
        if not same:
            raise AssertionError("the raw loop and the replay built different tables: the comparison is void")
        rss_quarter = peak_rss_mb(data, n // 4)
        rss_full = peak_rss_mb(data, n)
        per_million = report.seconds * (1_000_000 / n)
        return [Result(f"replay {n:,} events (cms+media, vs raw loop)", "events/s", report.events / report.seconds,
                       raw_count / raw_seconds, target_ratio=1.0,
                       notes={"replay seconds": round(report.seconds, 2), "raw loop seconds": round(raw_seconds, 2),
                              "same checksum as raw loop": same, "log generation seconds": round(generated, 1)}),
                Result("replay 1,000,000 events" + ("" if n == 1_000_000 else f" (from {n:,})") + " (vs 20 s)", "s",
                       per_million, 20.0, target_ratio=1.0, higher_is_better=False),
                Result(f"replay peak RSS, {n // 4:,} vs {n:,} events (flat: ≥ 0.9)", "MB", rss_quarter, rss_full,
                       target_ratio=0.9)]


def run(quick: bool = False, smoke: bool = False) -> list[Result]:
    """``smoke``: a tiny log, to check the benchmark works (the tests run it); figures mean nothing."""
    return measure(2_000 if smoke else 100_000 if quick else 1_000_000)
