"""End-to-end latency: ``emit`` → visible in the projection, with a Redis broker and a real worker.

A steady stream of single-event appends (each one wakes the worker through Redis, as a CMS would) at
``RATE`` events/s; a poller reads the ``cms`` checkpoint every millisecond, and an event is *visible*
when the checkpoint reaches its position (its row committed with it). Latency = visible − just before
``emit``. Full: 500 events/s for 60 s; quick: 100 events/s for 5 s. Targets: p50 < 20 ms, p99 < 100 ms.

``--backlog`` (issue 20): the default worker (its lanes) with the real local model, and 10 000 texts
pending in the embedding lane before and while the appends are measured (50 events/s for 30 s; quick:
20 s). Target: p99 < 1 s: projections never wait behind embeddings.

Baseline, measured in the same run on the same Redis: a raw LPUSH → BRPOP round trip between two
connections — the floor any Redis-woken pipeline pays before doing work.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .common import Result

REPO = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(workdir: Path) -> tuple[subprocess.Popen | None, str]:
    """Our own redis-server on a spare port when the binary exists (nothing shared, nothing to flush);
    else database 15 of the server at 127.0.0.1:6379."""
    if shutil.which("redis-server") is None:
        return None, "redis://127.0.0.1:6379/15"
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def redis_round_trip(url: str, n: int) -> list[float]:
    """LPUSH on one connection, BRPOP on another: milliseconds per message."""
    import redis

    producer, consumer = redis.Redis.from_url(url), redis.Redis.from_url(url)
    producer.delete("bench:rtt")
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        producer.lpush("bench:rtt", b"x")
        consumer.brpop(["bench:rtt"], timeout=5)
        times.append((time.perf_counter() - started) * 1000)
    producer.close()
    consumer.close()
    return times


BACKLOG_TEXTS = 10_000


def _pending(chronicle: object) -> int:
    from pipeline.embeddings.api import embedding_status

    return sum(k["pending"] for k in embedding_status(chronicle)["kinds"].values())  # type: ignore[arg-type]


def measure(rate: float, seconds: float, workdir: Path, broker: str, loglevel: str = "WARNING",
            backlog: bool = False) -> dict[str, object]:
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(workdir / "data"), "CHRONICLE_BROKER_URL": broker,
           "CHRONICLE_EMBEDDER": "local" if backlog else "off", "CHRONICLE_SWEEP_INTERVAL": "5"}
    for key in ("CHRONICLE_EVENT_STORE_URL", "PYTEST_CURRENT_TEST"):
        env.pop(key, None)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from pipeline import Chronicle, Settings

    chronicle = Chronicle(Settings())
    db = chronicle.settings.projection_db_path
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed in finally
    args = [] if backlog else ["-c", "2"]  # backlog: the default worker, as a new user runs it
    worker = subprocess.Popen([sys.executable, "-m", "workers", "worker", *args, "--loglevel", loglevel],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    emitted: dict[int, float] = {}
    visible: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        conn = sqlite3.connect(str(db), timeout=30)
        seen = 0
        while not done.is_set():
            row = conn.execute("SELECT position FROM projection_checkpoints WHERE name='cms'").fetchone()
            now = time.perf_counter()
            if row and row[0] > seen:
                for position in range(seen + 1, row[0] + 1):
                    visible[position] = now
                seen = row[0]
            time.sleep(0.001)
        conn.close()

    poller = threading.Thread(target=poll, daemon=True)
    try:
        # warm-up: every pool process pays its first-task cost (imports, handle, schema, job modules: seconds)
        # before measuring, or the first seconds measure process start-up rather than the pipeline
        deadline, fast, n = time.monotonic() + 90, 0, 0
        while fast < 10:
            n += 1
            at = time.perf_counter()
            warm = chronicle.emit("PageCreated", {"id": f"warm-{n}", "site_id": "s", "title": "w", "slug": "w"})
            while chronicle.status()["projections"]["cms"]["checkpoint"] < (warm.last_position or 1):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"the worker did not warm up; see {workdir / 'worker.log'}")
                time.sleep(0.002)
            fast = fast + 1 if time.perf_counter() - at < 0.05 else 0
        pending_before = pending_after = 0
        if backlog:  # 10 000 distinct texts for the embedding lane, then measure while they are pending
            words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
            chronicle.emit_many([{"type": "PageCreated", "data": {
                "id": f"backlog-{i}", "site_id": "s", "title": f"{words[i % 12]} {words[(i // 12) % 12]} {i}",
                "slug": f"backlog-{i}"}} for i in range(BACKLOG_TEXTS)])
            while (pending_before := _pending(chronicle)) < BACKLOG_TEXTS // 2:
                if time.monotonic() > deadline + 120:
                    raise RuntimeError("no embedding backlog formed")
                time.sleep(0.05)
        poller.start()
        count = int(rate * seconds)
        started = time.perf_counter()
        for i in range(count):
            due = started + i / rate
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)  # the offered load's schedule, not synchronisation
            at = time.perf_counter()
            result = chronicle.emit("PageCreated", {"id": f"b{i}", "site_id": "s", "title": f"T{i}",
                                                    "slug": f"t-{i}"})
            emitted[result.last_position or 0] = at
        offered = count / (time.perf_counter() - started)
        if backlog:
            pending_after = _pending(chronicle)
        last = max(emitted)
        deadline = time.monotonic() + 120
        while last not in visible and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        if poller.is_alive():
            poller.join(10)
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        log.close()
        chronicle.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    latencies = [(visible[p] - t) * 1000 for p, t in emitted.items() if p in visible]
    return {"latencies": latencies, "lost": len(emitted) - len(latencies), "offered_rate": offered,
            "pending_before": pending_before, "pending_after": pending_after}


@contextmanager
def _redis_workdir(prefix: str) -> Iterator[tuple[Path, str]]:
    """A scratch data dir and a Redis to measure against (our own if 6379 is not there), removed after."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    redis_proc, broker = _start_redis(workdir)
    try:
        yield workdir, broker
    finally:
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def run(quick: bool = False, backlog: bool = False) -> list[Result]:
    if backlog:
        return run_backlog(quick)
    rate, seconds = (100.0, 5.0) if quick else (500.0, 60.0)
    with _redis_workdir("chronicle-bench-latency-") as (workdir, broker):
        rtt = redis_round_trip(broker, 500 if quick else 5000)
        figures = measure(rate, seconds, workdir, broker)
    latencies: list[float] = figures["latencies"]  # type: ignore[assignment]
    p50, p95, p99 = (_percentile(latencies, q) for q in (50, 95, 99))
    base50, base99 = _percentile(rtt, 50), _percentile(rtt, 99)
    notes = {"rate": f"{figures['offered_rate']:.0f} ev/s offered for {seconds:.0f} s", "events": len(latencies),
             "not visible": figures["lost"], "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
             "p99_ms": round(p99, 2), "max_ms": round(max(latencies), 2),
             "mean_ms": round(statistics.fmean(latencies), 2),
             "targets": f"p50 < 20 ms: {'yes' if p50 < 20 else 'NO'}; p99 < 100 ms: {'yes' if p99 < 100 else 'NO'}",
             "baseline": f"raw Redis LPUSH→BRPOP round trip p50 {base50:.3f} ms, p99 {base99:.3f} ms"}
    return [
        Result("emit → visible p50 (Redis + worker)", "ms", p50, base50, higher_is_better=False, notes=notes),
        Result("emit → visible p99 (Redis + worker)", "ms", p99, base99, higher_is_better=False,
               notes={"p95_ms": round(p95, 2), "targets": notes["targets"]}),
    ]


def run_backlog(quick: bool = False) -> list[Result]:
    rate, seconds = (50.0, 20.0) if quick else (50.0, 30.0)
    with _redis_workdir("chronicle-bench-backlog-") as (workdir, broker):
        figures = measure(rate, seconds, workdir, broker, backlog=True)
    latencies: list[float] = figures["latencies"]  # type: ignore[assignment]
    p50, p95, p99 = (_percentile(latencies, q) for q in (50, 95, 99))
    notes = {"rate": f"{figures['offered_rate']:.0f} ev/s offered for {seconds:.0f} s", "events": len(latencies),
             "not visible": figures["lost"], "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
             "p99_ms": round(p99, 2), "max_ms": round(max(latencies), 2),
             "embedding backlog": f"{figures['pending_before']} texts pending before, {figures['pending_after']} "
                                  "after (local model, default worker)",
             "target": f"p99 < 1000 ms: {'yes' if p99 < 1000 else 'NO'}"}
    return [Result("emit → visible p99 during a 10 000-text embedding backlog", "ms", p99, 1000.0, 1.0,
                   higher_is_better=False, notes=notes)]
