"""Cold start of the ``chronicle`` command line: whole processes, as an operator or a script runs them.

Each figure is a fresh process per run (min and median over several runs), next to the floor measured
in the same run, interleaved with it so background load hits both alike: ``python -c pass`` on the
same interpreter (what no Python CLI can beat). The budgets are issue 17's:

* ``chronicle --help`` < 0.3 s (imports no LanceDB, pyarrow, torch, Celery or FastAPI);
* ``chronicle status`` < 1 s on a data dir with 100 000 events (projected and drained);
* ``chronicle emit`` of one event < 0.5 s (on that data dir, waking the workers through the broker);
* ``chronicle search`` with the local model < 2 s cold (issue 19's ONNX backend), on a second data dir:
  the WordPress theme unit test export, embedded with the local model. Every run asks a different
  question, so the query vector is never a cache hit: each process loads the model.

The row's ratio is budget / median (≥ 1×: within budget), for the wall-clock time and, in a second row,
for the process's CPU time (user + system, from ``getrusage``): on a shared machine under load the wall
clock of a 20 ms floor stretches several-fold while CPU time stays close to what an idle machine shows.
Embeddings are off (``CHRONICLE_EMBEDDER=off``) for the 100 000-event data dir: building it must not load a
model.
Warm search, the HTTP ``/search`` under load, is ``bench_search_http``.
The checkout being benchmarked is the one imported (``PYTHONPATH``), not whatever is installed.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import orjson

from .common import Result

REPO = Path(__file__).resolve().parent.parent
BUDGETS_MS = {"help": 300.0, "status": 1000.0, "emit": 500.0, "search": 2000.0}
WXR = REPO.parent / "shared" / "testdata" / "cms" / "themeunittestdata.wordpress.xml"
QUESTIONS = ("how pictures are positioned next to the words around them", "a page visitors cannot comment on",
             "posts sorted into many categories", "a very long title that wraps", "embedded video from elsewhere")


def _chronicle() -> list[str]:
    script = Path(sys.executable).parent / "chronicle"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir), "CHRONICLE_EMBEDDER": "off"}
    for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return env


def build_data_dir(data_dir: Path, events: int) -> float:
    """``events`` generated CMS events in the log, projected and reacted to; returns the seconds taken."""
    from pipeline import Chronicle, Settings
    from pipeline.notify import NullNotifier
    from pipeline.sample import generate

    started = time.perf_counter()
    os.environ["CHRONICLE_EMBEDDER"] = "off"
    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    try:
        batch: list[dict] = []
        for envelope in generate(events, seed=17):
            batch.append(envelope)
            if len(batch) == 1000:
                chronicle.emit_many(batch)
                batch = []
        if batch:
            chronicle.emit_many(batch)
        chronicle.drain()
        assert chronicle.store.head() >= events
    finally:
        chronicle.close()
    return time.perf_counter() - started


def build_search_dir(data_dir: Path) -> float:
    """The WordPress export imported and embedded with the local model; returns the seconds taken."""
    from pipeline import Chronicle, Settings
    from pipeline.importers.wxr_import import import_wxr
    from pipeline.notify import NullNotifier

    started = time.perf_counter()
    saved = os.environ.get("CHRONICLE_EMBEDDER")
    os.environ["CHRONICLE_EMBEDDER"] = "local"
    try:
        chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
        try:
            import_wxr(chronicle, WXR)
            chronicle.drain()
        finally:
            chronicle.close()
    finally:
        os.environ["CHRONICLE_EMBEDDER"] = saved or "off"
    return time.perf_counter() - started



class Sample(NamedTuple):
    wall: float  # ms, what the operator waits
    cpu: float  # ms of user + system CPU time of the process: what load on a shared machine inflates least


def _once(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # children run one at a time: the delta is this one
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(elapsed * 1000, cpu * 1000)


def run(quick: bool = False) -> list[Result]:
    runs = 3 if quick else 9
    events = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="chronicle-bench-cli-") as tmp:
        data_dir = Path(tmp) / "data"
        built = build_data_dir(data_dir, events)
        env = _env(data_dir)
        search_dir = Path(tmp) / "search"
        searched = build_search_dir(search_dir)
        search_env = {**_env(search_dir), "CHRONICLE_EMBEDDER": "local"}
        cli = _chronicle()
        emitted = iter(range(10**9))
        asked = iter(range(10**9))

        def search_once() -> Sample:
            n = next(asked)  # a new question each time: a cached query vector would skip loading the model
            return _once([*cli, "search", f"{QUESTIONS[n % len(QUESTIONS)]} ({n})", "-n", "5"], search_env)

        def emit_one() -> Sample:
            n = next(emitted)
            line = orjson.dumps({"id": f"bench-cli-{n}", "type": "TeamCreated",
                                 "data": {"id": f"bench-team-{n}", "name": "Bench"}})
            return _once([*cli, "emit", "-"], env, stdin=line + b"\n")

        # name → one whole-process run. "floor" first; every other name needs a BUDGETS_MS entry and a
        # label below.
        commands: dict[str, Callable[[], Sample]] = {
            "floor": lambda: _once([sys.executable, "-c", "pass"], env),
            "help": lambda: _once([*cli, "--help"], env),
            "status": lambda: _once([*cli, "status"], env),
            "emit": emit_one,
            "search": search_once,
        }
        for command in commands.values():  # warm the page cache and .pyc files: a cold start, not a cold disk
            command()
        samples: dict[str, list[Sample]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                samples[name].append(command())

    floor_wall = [s.wall for s in samples["floor"]]
    floor_cpu = [s.cpu for s in samples["floor"]]
    floor_note = (f"floor python -c pass {min(floor_wall):.0f}/{statistics.median(floor_wall):.0f} ms wall, "
                  f"{statistics.median(floor_cpu):.0f} ms CPU")
    labels = {"help": "chronicle --help", "status": f"chronicle status, {events:,} events",
              "emit": "chronicle emit, 1 event", "search": "chronicle search, local model, cold"}
    results = []
    for name, label in labels.items():
        wall = [s.wall for s in samples[name]]
        cpu = [s.cpu for s in samples[name]]
        budget = BUDGETS_MS[name]
        median = statistics.median(wall)
        results.append(Result(f"{label} (median of {runs}, vs budget)", "ms", median, budget,
                              target_ratio=1.0, higher_is_better=False, notes={"min/median": (
                                  f"{min(wall):.0f}/{median:.0f} ms; {floor_note}; budget < {budget:.0f} ms")}))
        results.append(Result(f"{label}, CPU time (median of {runs}, vs budget)", "ms", statistics.median(cpu),
                              budget, target_ratio=1.0, higher_is_better=False))
    results[2].notes["data dir"] = f"built in {built:.1f} s (emit + drain, embeddings off)"
    results[6].notes["data dir"] = f"WordPress export embedded with the local model in {searched:.1f} s"
    return results
