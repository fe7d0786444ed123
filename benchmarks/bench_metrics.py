"""The metrics endpoint under load does not slow emits measurably.

``chronicle serve`` runs in its own process on the same data dir (as in production), and a scraper
thread fetches its ``/metrics`` back to back at ``SCRAPES_PER_SECOND`` (far above Prometheus's one
scrape per 15 s). Meanwhile this process appends single durable events with ``Chronicle.emit``
(notifier off: the broker is not what is measured). Baseline, in the same run: the same emits with
the server running and nobody scraping. Phases alternate (quiet, scraped, quiet, scraped…) so drift of
the machine hits both. Target: median emits/s while scraped ≥ 0.9 × the quiet median.

Each scrape reads the log head, every checkpoint, the oldest unapplied event per consumer, the queues
and the read model: those are reads in WAL mode, which never block the appending writer.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .common import Result

REPO = Path(__file__).resolve().parent.parent
SCRAPES_PER_SECOND = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _emit_rate(chronicle, seconds: float, start: int) -> tuple[float, int]:
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        chronicle.emit("PageCreated", {"id": f"m{start + n}", "site_id": "s", "title": "T", "slug": f"m-{start + n}"})
        n += 1
    return n / (time.perf_counter() - began), start + n


def run(quick: bool = False) -> list[Result]:
    phase, rounds = (2.0, 2) if quick else (5.0, 4)
    workdir = Path(tempfile.mkdtemp(prefix="chronicle-bench-metrics-"))
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(workdir / "data"), "CHRONICLE_EMBEDDER": "off",
           "CHRONICLE_NOTIFIER": "null"}
    env.pop("CHRONICLE_EVENT_STORE_URL", None)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from pipeline import Chronicle, Settings
    from pipeline.notify import NullNotifier

    chronicle = Chronicle(Settings(), notifier=NullNotifier())
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "workers", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    scraping, stop = threading.Event(), threading.Event()
    scrapes: list[float] = []

    def scrape() -> None:
        while not stop.is_set():
            if not scraping.wait(0.1):
                continue
            began = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
            scrapes.append(time.perf_counter() - began)
            time.sleep(max(0.0, 1 / SCRAPES_PER_SECOND - (time.perf_counter() - began)))

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("chronicle serve did not start") from None
                time.sleep(0.1)
        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        quiet: list[float] = []
        loaded: list[float] = []
        position = 0
        _, position = _emit_rate(chronicle, 1.0, position)  # warm-up
        for _ in range(rounds):
            rate, position = _emit_rate(chronicle, phase, position)
            quiet.append(rate)
            scraping.set()
            time.sleep(0.2)
            rate, position = _emit_rate(chronicle, phase, position)
            loaded.append(rate)
            scraping.clear()
            time.sleep(0.2)
        stop.set()
        scraper.join(10)
    finally:
        stop.set()
        chronicle.close()
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ours, base = statistics.median(loaded), statistics.median(quiet)  # robust to a noisy neighbour
    ratio = ours / base
    scrape_ms = sorted(scrapes)[len(scrapes) // 2] * 1000 if scrapes else float("nan")
    print(f"emits while /metrics is scraped at {SCRAPES_PER_SECOND}/s: ratio {ratio:.2f} (target ≥ 0.90): "
          f"{ours:,.0f} vs {base:,.0f} emits/s quiet")
    return [Result("emit while /metrics is scraped", "emits/s", ours, base, target_ratio=0.9,
                   notes={"scrapes": len(scrapes), "scrape p50 ms": round(scrape_ms, 1),
                          "per phase (quiet)": [round(r) for r in quiet],
                          "per phase (scraped)": [round(r) for r in loaded],
                          "log head at the end": position})]
