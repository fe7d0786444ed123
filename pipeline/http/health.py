"""Readiness: can this server do its job right now? (log, projection DB, broker)

Each check runs with a short timeout so a hung dependency turns into a 503 from ``/readyz`` instead of a
hung probe. Liveness (``/healthz``) deliberately checks nothing but the process itself.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..api import Chronicle
from .readmodel import ReadModel

CHECK_TIMEOUT = 3.0


def _broker(chronicle: Chronicle) -> None:
    """The broker answers: kombu for a server; for the embedded broker, its SQLite file opens."""
    settings = chronicle.settings
    if settings.uses_embedded_broker:
        conn = sqlite3.connect(settings.resolved_broker_url.split(":///", 1)[1], timeout=CHECK_TIMEOUT)
        try:
            conn.execute("SELECT 1")
        finally:
            conn.close()
        return
    from kombu import Connection

    with Connection(settings.resolved_broker_url, connect_timeout=CHECK_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)


def checks(chronicle: Chronicle, read_model: ReadModel) -> dict[str, Callable[[], Any]]:
    return {
        "log": chronicle.store.head,
        "projection_db": read_model.ping,
        "broker": lambda: _broker(chronicle),
    }


def readiness(chronicle: Chronicle, read_model: ReadModel) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check concurrently; returns (all ok, per-check result)."""
    results: dict[str, dict[str, Any]] = {}
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="readyz")
    started = time.perf_counter()
    futures = {name: pool.submit(fn) for name, fn in checks(chronicle, read_model).items()}
    for name, future in futures.items():
        remaining = max(0.1, CHECK_TIMEOUT - (time.perf_counter() - started))
        try:
            future.result(timeout=remaining)
            results[name] = {"ok": True}
        except FutureTimeout:
            results[name] = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:.0f}s"}
        except Exception as exc:  # any failure of a dependency is a "not ready", never a 500
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    pool.shutdown(wait=False, cancel_futures=True)  # a hung check must not hang the probe
    return all(r["ok"] for r in results.values()), results
