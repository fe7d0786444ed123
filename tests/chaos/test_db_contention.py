"""Scenario 3: database contention on ``data/sqlite.db``.

* A long reader (a CMS report, a backup) holds a snapshot while the projector writes: the WAL cannot be
  reset meanwhile, but once the reader ends the projector checkpoints deliberately and the -wal file
  comes back under ``WAL_TRUNCATE_BYTES`` — it does not stay at (or grow from) its peak.
* Readers, a second racing projector and a writer holding the write lock for a while make the projector
  *wait*: ``database is locked`` never surfaces (no exception, no ProjectionError, no JobFailed).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.notify import NullNotifier
from pipeline.projector import WAL_TRUNCATE_BYTES
from pipeline.sample import generate
from tests.chaos.common import clean_replay_checksum, differing_tables
from tests.chaos.conftest import FULL, figure
from tests.helpers import cli

EVENTS = 20_000  # per reader episode: enough to push the pinned WAL well past WAL_TRUNCATE_BYTES
ROUNDS = 3 if FULL else 1  # reader episodes: the WAL must come back down after each
LOOPS = 200 if FULL else 40  # iterations of each contending thread


def wal_size(db: Path) -> int:
    try:
        return Path(f"{db}-wal").stat().st_size
    except FileNotFoundError:
        return 0


@pytest.fixture
def handle(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chronicle]:
    monkeypatch.setenv("CHRONICLE_LOG_SYNCHRONOUS", "NORMAL")
    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    yield chronicle
    chronicle.close()


def test_wal_comes_back_down_after_a_long_reader(handle: Chronicle, tmp_path: Path) -> None:
    db = handle.settings.projection_db_path
    events = list(generate(EVENTS * ROUNDS, seed=11))
    per_round = EVENTS
    peaks, after = [], []
    for r in range(ROUNDS):
        handle.emit_many(events[r * per_round:(r + 1) * per_round])
        reader = sqlite3.connect(str(db), timeout=60)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM pages").fetchone()  # the snapshot is now pinned
            handle.project()  # the projector writes while the reader holds its snapshot
            peaks.append(wal_size(db))
        finally:
            reader.rollback()
            reader.close()
        # the reader is gone; the next time the projector has work it checkpoints deliberately
        handle.emit_many(list(generate(50, seed=100 + r)))
        handle.project()
        after.append(wal_size(db))
    assert max(peaks) > WAL_TRUNCATE_BYTES, f"the scenario must starve the checkpoint (peaks {peaks})"
    assert all(size <= WAL_TRUNCATE_BYTES for size in after), \
        f"WAL stayed large after the reader ended: peaks {peaks}, after {after} (limit {WAL_TRUNCATE_BYTES})"
    figure(f"db contention: WAL peak with a pinned reader {max(peaks) / 2**20:.1f} MiB per {EVENTS} events; "
           f"after the reader ended: {[round(a / 2**20, 2) for a in after]} MiB (limit "
           f"{WAL_TRUNCATE_BYTES / 2**20:.0f} MiB)")


def test_database_is_locked_never_surfaces(handle: Chronicle, tmp_path: Path) -> None:
    db = handle.settings.projection_db_path
    handle.emit_many(list(generate(EVENTS if FULL else 3_000, seed=12)))
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # every exception is a finding here
                errors.append(exc)
        return run

    def projector() -> None:
        other = Chronicle(handle.settings, notifier=NullNotifier())  # a second, racing projector
        try:
            for _ in range(LOOPS):  # bounded
                if stop.is_set():
                    return
                other.project(max_events=500)
        finally:
            other.close()

    def readers() -> None:
        from pipeline.checksum import checksum

        for _ in range(LOOPS):
            if stop.is_set():
                return
            handle.status()
            checksum(db, tables=["pages"])

    def lock_holder() -> None:
        """A writer that keeps the write lock for 2 s (a backup or a migration): projectors must wait."""
        conn = sqlite3.connect(str(db), timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(2.0)  # holding the lock IS the fault being injected, not synchronisation
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    long_reader = sqlite3.connect(str(db), timeout=60)
    long_reader.execute("BEGIN")
    long_reader.execute("SELECT count(*) FROM pages").fetchone()
    threads = [threading.Thread(target=guarded(f), name=f.__name__) for f in (projector, readers, lock_holder)]
    try:
        for t in threads:
            t.start()
        handle.project()  # the main projector, racing the other one, through the lock holder
        status = cli("status", "--json")  # a user's command during contention
        assert status.returncode == 0, status.stderr.decode()
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        long_reader.rollback()
        long_reader.close()
    assert not errors, f"contention surfaced as errors: {errors!r}"
    handle.drain()
    assert all(p["lag"] == 0 for p in handle.status()["projections"].values())
    types = {e.type for e in handle.store.iter_all()}
    assert "JobFailed" not in types
    clean = clean_replay_checksum(handle, tmp_path / "clean.db")
    live = handle.checksum()
    assert live["sha256"] == clean["sha256"], differing_tables(live, clean)
