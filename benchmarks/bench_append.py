"""Appending to the log: the public API against raw ``sqlite3`` writing the same rows.

* batched: ``Chronicle.emit_many`` with 1 000-event batches vs ``executemany`` of the same rows in
  1 000-row transactions (the baseline also serialises JSON and tracks stream versions, as any
  writer of these rows must);
* single: one durable ``Chronicle.emit`` per event vs one single-row ``sqlite3`` commit, both in WAL
  with ``synchronous=FULL`` (an acknowledged event survives power loss).

The notifier is disabled: publishing to a broker is measured elsewhere and is not the log's cost.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from pipeline import Chronicle, Settings
from pipeline.notify import NullNotifier
from pipeline.sample import generate
from pipeline.store import utc_timestamp

from .common import Result

SCHEMA = """
CREATE TABLE events (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
  version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL,
  metadata TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE UNIQUE INDEX ix_events_stream_version ON events (stream, version);
CREATE INDEX ix_events_recorded_at ON events (recorded_at);
"""


def _stream(e: dict) -> str:
    from pipeline.events import CATALOGUE

    return CATALOGUE[e["type"]].default_stream(e["data"]) or "x"


def raw_rows(envelopes: list[dict]) -> list[tuple]:
    """What the baseline writes, built inside its timed loop (JSON + versions are part of writing)."""
    versions: dict[str, int] = {}
    rows = []
    for position, e in enumerate(envelopes, start=1):
        stream = _stream(e)
        versions[stream] = versions.get(stream, 0) + 1
        rows.append((position, e["id"], stream, versions[stream], e["type"], 1, json.dumps(e["data"]),
                     json.dumps({}), utc_timestamp()))
    return rows


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def bench_batched(tmp: Path, n: int) -> Result:
    envelopes = list(generate(n, seed=1))
    conn = raw_connect(tmp / "raw.db")
    started = time.perf_counter()
    rows = raw_rows(envelopes)
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
    for i in range(0, n, 1000):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[i:i + 1000])
        conn.execute("COMMIT")
    raw = n / (time.perf_counter() - started)
    conn.close()

    handle = Chronicle(Settings(data_dir=tmp / "api"), notifier=NullNotifier())
    started = time.perf_counter()
    for i in range(0, n, 1000):
        handle.emit_many(envelopes[i:i + 1000])
    ours = n / (time.perf_counter() - started)
    assert handle.store.head() == n
    handle.close()
    return Result("append, 1000-event batches", "events/s", ours, raw, target_ratio=0.5)


def bench_single(tmp: Path, n: int, rounds: int = 5) -> Result:
    """Rounds alternate between baseline and ours, so background load hits both alike."""
    envelopes = list(generate(n, seed=2))
    conn = raw_connect(tmp / "raw1.db")
    rows = raw_rows(envelopes)
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
    handle = Chronicle(Settings(data_dir=tmp / "api1", log_synchronous="FULL"), notifier=NullNotifier())
    raw_time = ours_time = 0.0
    step = n // rounds
    for r in range(rounds):
        started = time.perf_counter()
        for row in rows[r * step:(r + 1) * step]:
            conn.execute("BEGIN")
            conn.execute(sql, row)
            conn.execute("COMMIT")
        raw_time += time.perf_counter() - started
        started = time.perf_counter()
        for e in envelopes[r * step:(r + 1) * step]:
            handle.emit(e["type"], e["data"], id=e["id"])
        ours_time += time.perf_counter() - started
    conn.close()
    handle.close()
    done = step * rounds
    return Result("append, single durable event", "events/s", done / ours_time, done / raw_time, target_ratio=0.7,
                  notes={"synchronous": "FULL (both), WAL"})


def run(quick: bool = False) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        return [bench_batched(Path(tmp), 20_000 if quick else 200_000),
                bench_single(Path(tmp), 500 if quick else 3_000)]
