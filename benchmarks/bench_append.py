"""Appending to the log: Chronicle against hand-written ``sqlite3`` and against the ``eventsourcing`` library.

* batched: ``Chronicle.emit_many`` with 1 000-event batches vs ``executemany`` of the same rows in
  1 000-row transactions (the baseline also serialises JSON and tracks stream versions, as any
  writer of these rows must), and vs eventsourcing's ``EventStore.put`` of the same events, 1 000 per
  call, on its SQLite application recorder (the peer: mapper, JSON transcoder, global notification ids);
* single: one durable ``Chronicle.emit`` per event vs one single-row ``sqlite3`` commit and vs one
  eventsourcing ``put`` per event, all in WAL with ``synchronous=FULL`` (an acknowledged event survives
  power loss);
* CLI: ``chronicle emit FILE`` of generated CMS event lines, a whole process as a user runs it (start,
  imports, opening the data dir, the default notifier), vs a hand-written script that parses the same
  lines with the standard ``json`` module and inserts them with ``sqlite3`` in 1 000-row transactions.

Rounds alternate between the contenders, so background load (a shared CPU) hits each alike; each
ratio is of times summed over the rounds of the same run. In-process, the notifier is disabled:
publishing to a broker is measured elsewhere and is not the log's cost.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from pipeline import Chronicle, Settings
from pipeline.notify import NullNotifier
from pipeline.sample import generate
from pipeline.store import utc_timestamp

from .common import Result

REPO = Path(__file__).resolve().parent.parent

SCHEMA = """
CREATE TABLE events (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
  version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL,
  metadata TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE UNIQUE INDEX ix_events_stream_version ON events (stream, version);
CREATE INDEX ix_events_recorded_at ON events (recorded_at);
"""

#: The hand-written CLI baseline: what a careful engineer writes for "load these JSON lines into the
#: log" without the framework. It knows each type's stream prefix and key (``argv[3]``, from the
#: catalogue), tracks versions, encodes with ``json`` and commits every 1 000 rows.
HAND_LOOP = """
import json, sqlite3, sys
from datetime import datetime, timezone
streams = json.loads(sys.argv[3])
conn = sqlite3.connect(sys.argv[2], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.executescript(sys.argv[4])
sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
versions, rows, position = {}, [], 0
def flush():
    conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    rows.clear()
with open(sys.argv[1], "rb") as lines:
    for line in lines:
        e = json.loads(line)
        prefix, key = streams[e["type"]]
        stream = f"{prefix}-{e['data'][key]}"
        version = versions[stream] = versions.get(stream, 0) + 1
        position += 1
        rows.append((position, e["id"], stream, version, e["type"], 1, json.dumps(e["data"]), "{}",
                     datetime.now(timezone.utc).isoformat(timespec="microseconds")[:26] + "Z"))
        if len(rows) == 1000:
            flush()
if rows:
    flush()
print(position)
"""


def _stream(e: dict) -> str:
    from pipeline.events import CATALOGUE

    return CATALOGUE[e["type"]].default_stream(e["data"]) or "x"


def raw_rows(envelopes: list[dict], start: int = 1, versions: dict[str, int] | None = None) -> list[tuple]:
    """What the baseline writes, built inside its timed loop (JSON + versions are part of writing)."""
    versions = {} if versions is None else versions
    rows = []
    for position, e in enumerate(envelopes, start=start):
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


@cache
def _peer_event_class() -> Any:
    """The peer's event class, defined once (eventsourcing registers each class under its topic)."""
    from eventsourcing.domain import DomainEvent

    class CmsEvent(DomainEvent):
        type: str
        data: dict[str, Any]

    return CmsEvent


class Peer:
    """eventsourcing (the Python library of the pattern) saving the same events: one ``CmsEvent`` per
    envelope, its stream as the aggregate (originator) id, on ``SQLiteApplicationRecorder`` (WAL, and
    SQLite's default ``synchronous=FULL``)."""

    def __init__(self, path: Path) -> None:
        from eventsourcing.persistence import DatetimeAsISO, EventStore, JSONTranscoder, Mapper, UUIDAsHex
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        self.event_class = _peer_event_class()
        transcoder = JSONTranscoder()
        transcoder.register(UUIDAsHex())
        transcoder.register(DatetimeAsISO())
        self.datastore = SQLiteDatastore(str(path))
        recorder = SQLiteApplicationRecorder(self.datastore)
        recorder.create_table()
        self.store = EventStore(Mapper(transcoder), recorder)
        self.versions: dict[uuid.UUID, int] = {}
        with self.datastore.transaction(commit=False) as cur:
            cur.execute("PRAGMA synchronous")
            self.synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cur.fetchone()[0]]

    def events(self, envelopes: list[dict]) -> list[Any]:
        out = []
        for e in envelopes:
            originator = uuid.uuid5(uuid.NAMESPACE_URL, _stream(e))
            version = self.versions[originator] = self.versions.get(originator, 0) + 1
            out.append(self.event_class(originator_id=originator, originator_version=version,
                                        timestamp=datetime.now(UTC), type=e["type"], data=e["data"]))
        return out

    def put(self, envelopes: list[dict]) -> None:
        self.store.put(self.events(envelopes))

    def close(self) -> None:
        self.datastore.close()


def _rounds(contenders: dict[str, Callable[[int], None]], rounds: int) -> dict[str, float]:
    """Seconds per contender, each called once per round with the round number, alternating.

    The order rotates from round to round, so each contender follows each other equally often:
    measured on single durable appends, whoever runs right after another writer's fsyncs is ~40 µs
    per event slower, which a fixed order charges to one contender alone."""
    spent = dict.fromkeys(contenders, 0.0)
    names = list(contenders)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            contenders[name](r)
            spent[name] += time.perf_counter() - started
    return spent


def bench_batched(tmp: Path, n: int) -> list[Result]:
    envelopes = list(generate(n, seed=1))
    batches = [envelopes[i:i + 1000] for i in range(0, n, 1000)]
    conn = raw_connect(tmp / "raw.db")
    raw_versions: dict[str, int] = {}
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"

    def raw(r: int) -> None:
        rows = raw_rows(batches[r], start=r * 1000 + 1, versions=raw_versions)
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")

    handle = Chronicle(Settings(data_dir=tmp / "api", log_synchronous="FULL"), notifier=NullNotifier())
    peer = Peer(tmp / "peer.db")
    spent = _rounds({"raw": raw, "ours": lambda r: handle.emit_many(batches[r]),
                     "peer": lambda r: peer.put(batches[r])}, len(batches))
    assert handle.store.head() == n
    handle.close()
    conn.close()
    peer.close()
    ours = n / spent["ours"]
    return [Result("append, 1000-event batches (vs raw executemany)", "events/s", ours, n / spent["raw"],
                   target_ratio=1.0),
            Result("append, 1000-event batches (vs eventsourcing)", "events/s", ours, n / spent["peer"],
                   target_ratio=1.0, notes={"synchronous": f"FULL (ours, raw), {peer.synchronous} (eventsourcing)"})]


def bench_single(tmp: Path, n: int, per_round: int = 20) -> list[Result]:
    envelopes = list(generate(n, seed=2))
    conn = raw_connect(tmp / "raw1.db")
    rows = raw_rows(envelopes)
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
    handle = Chronicle(Settings(data_dir=tmp / "api1", log_synchronous="FULL"), notifier=NullNotifier())
    peer = Peer(tmp / "peer1.db")
    step = per_round  # short rounds: an fsync's time varies a lot, and each contender gets a fair share
    rounds = n // step

    def raw(r: int) -> None:
        for row in rows[r * step:(r + 1) * step]:
            conn.execute("BEGIN")
            conn.execute(sql, row)
            conn.execute("COMMIT")

    def ours(r: int) -> None:
        for e in envelopes[r * step:(r + 1) * step]:
            handle.emit(e["type"], e["data"], id=e["id"])

    def theirs(r: int) -> None:
        for e in envelopes[r * step:(r + 1) * step]:
            peer.put([e])

    spent = _rounds({"raw": raw, "ours": ours, "peer": theirs}, rounds)
    conn.close()
    handle.close()
    peer.close()
    done = step * rounds
    return [Result("append, single durable event (vs raw commit)", "events/s", done / spent["ours"],
                   done / spent["raw"], target_ratio=0.8, notes={"synchronous": "FULL (both), WAL"}),
            Result("append, single durable event (vs eventsourcing)", "events/s", done / spent["ours"],
                   done / spent["peer"], notes={"target": "none: both wait on the same fsync per event"})]


def _cli_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir), "CHRONICLE_EMBEDDER": "off"}
    for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return env


def _chronicle() -> list[str]:
    script = Path(sys.executable).parent / "chronicle"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def bench_cli(tmp: Path, n: int, rounds: int) -> Result:
    from pipeline.events import CATALOGUE
    from pipeline.subsystems import load_catalogue

    load_catalogue()
    lines = tmp / "events.jsonl"
    with lines.open("wb") as out:
        for envelope in generate(n, seed=5):
            out.write(orjson.dumps(envelope) + b"\n")
    streams = json.dumps({name: [model.stream_prefix, model.stream_key] for name, model in CATALOGUE.items()})

    def ours(r: int) -> None:
        out = json.loads(_run([*_chronicle(), "emit", str(lines)], _cli_env(tmp / f"cli-{r}")))
        assert out["appended"] == n, out

    def hand(r: int) -> None:
        assert int(_run([sys.executable, "-c", HAND_LOOP, str(lines), str(tmp / f"hand-{r}.db"), streams,
                         SCHEMA])) == n

    cpu = {"hand": 0.0, "ours": 0.0}

    def cpu_of(name: str, fn: Callable[[int], None]) -> Callable[[int], None]:
        def measured(r: int) -> None:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            fn(r)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name] += after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return measured

    spent = _rounds({"hand": cpu_of("hand", hand), "ours": cpu_of("ours", ours)}, rounds)
    return Result(f"chronicle emit, {n:,} lines (vs json + sqlite3 script)", "events/s", n * rounds / spent["ours"],
                  n * rounds / spent["hand"], target_ratio=1.0,
                  notes={"processes": f"{rounds} of each, alternating; process start included",
                         "seconds (ours, hand-written)": f"{spent['ours'] / rounds:.2f}, {spent['hand'] / rounds:.2f}",
                         "CPU seconds (ours, hand-written)": f"{cpu['ours'] / rounds:.2f}, {cpu['hand'] / rounds:.2f}"})


def run(quick: bool = False, smoke: bool = False) -> list[Result]:
    """``smoke``: tiny inputs, to check the benchmark works (the tests run it); figures mean nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        if smoke:
            return [*bench_batched(Path(tmp), 2_000), *bench_single(Path(tmp), 20), bench_cli(Path(tmp), 2_000, 1)]
        return [*bench_batched(Path(tmp), 20_000 if quick else 200_000),
                *bench_single(Path(tmp), 500 if quick else 3_000),
                bench_cli(Path(tmp), 200_000, 2 if quick else 3)]
