"""Replay and rebuild: determinism, point-in-time, blue/green safety, schema evolution, corruption."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from db.changes import Applier, Update
from db.engine import create_schema
from pipeline import Chronicle, Settings
from pipeline.checksum import checksum
from pipeline.cms.events import PageCreated
from pipeline.deferred_indexes import DeferredIndexes
from pipeline.envelope import Recorded
from pipeline.errors import CorruptEvent
from pipeline.jobs.spec import Job, JobSpec
from pipeline.notify import NullNotifier
from pipeline.projector import Projector, checkpoints
from pipeline.replay import clean_stale_scratch, rebuild
from pipeline.replay_writer import scratch_connection
from pipeline.sample import generate
from pipeline.subsystems import default_projections
from pipeline.upcasting import UPCASTERS
from tests.factories import CATALOGUE_STORY, envelope, page
from tests.helpers import REPO, cli, wait_until, writer_processes

PROJECTIONS = default_projections()

CORE = ["cms", "media"]


def slow_replay_env(writer: str = "auto") -> dict[str, str]:
    """Small replay transactions: the rebuild lasts long enough for a test to interrupt it midway."""
    return {**os.environ, "CHRONICLE_REPLAY_BATCH_SIZE": "20", "CHRONICLE_REPLAY_WRITER": writer}


def under_way(scratch: Path, writer: str) -> bool:
    """The rebuild is applying events: its scratch file is larger than the empty schema (~270 kB), and
    with a writer process, that process runs (it starts after the schema is written)."""
    return (scratch.exists() and scratch.stat().st_size > 400_000
            and (writer == "inline" or bool(writer_processes(scratch))))


def core_digest(path: Path) -> str:
    return checksum(path, sorted(t for n in CORE for t in PROJECTIONS[n].tables))["sha256"]


def test_replay_equals_incremental_build_and_is_deterministic(chronicle: Chronicle, tmp_path: Path) -> None:
    events = list(generate(3000, seed=5))
    # incremental: events arrive over time, projector "restarts" (new instances) in between
    for start in range(0, 3000, 700):
        chronicle.emit_many(events[start:start + 700])
        projector = Projector(chronicle.store, chronicle.settings.projection_db_path,
                              [PROJECTIONS[n] for n in CORE], batch_size=97)
        projector.run_until_idle()
        projector.close()
    incremental = core_digest(chronicle.settings.projection_db_path)
    live, known = chronicle.settings.projection_db_path, chronicle.registry.projections
    first = rebuild(chronicle.store, live, known, projections=CORE, output=tmp_path / "a.db")
    rebuild(chronicle.store, live, known, projections=CORE, output=tmp_path / "b.db")
    assert first.events == 3000
    assert core_digest(tmp_path / "a.db") == core_digest(tmp_path / "b.db") == incremental


def test_a_batch_spans_several_pages_of_the_log_in_one_transaction(chronicle: Chronicle, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild commits far larger batches than it reads (``REPLAY_BATCH`` vs ``REPLAY_PAGE``)."""
    chronicle.emit_many(list(generate(1000, seed=6)))
    limits: list[int] = []
    read = chronicle.store.read

    def paged_read(after: int = 0, limit: int = 1000, until: int | None = None) -> list[Recorded]:
        limits.append(limit)
        return read(after, limit, until)

    monkeypatch.setattr(chronicle.store, "read", paged_read)
    path = tmp_path / "paged.db"
    create_schema(path)
    projector = Projector(chronicle.store, path, [PROJECTIONS[n] for n in CORE], batch_size=400, page_size=150)
    batch = projector.run_batch()
    assert (batch.applied, batch.per_projection, limits) == (400, {"cms": 400, "media": 400}, [150, 150, 100])
    assert checkpoints(path) == {"cms": batch.checkpoint, "media": batch.checkpoint} and batch.checkpoint == 400
    projector.run_until_idle()
    projector.close()
    live, known = chronicle.settings.projection_db_path, chronicle.registry.projections
    rebuild(chronicle.store, live, known, projections=CORE, output=tmp_path / "whole.db", batch_size=1000)
    assert core_digest(path) == core_digest(tmp_path / "whole.db")


def test_until_equals_the_state_a_live_projector_had_at_that_position(chronicle: Chronicle, tmp_path: Path) -> None:
    chronicle.emit_many(list(generate(1500, seed=6)))
    live_then = Projector(chronicle.store, tmp_path / "live-then.db", [PROJECTIONS[n] for n in CORE], until=777)
    from db.engine import create_schema

    create_schema(tmp_path / "live-then.db")
    live_then.run_until_idle()
    live_then.close()
    chronicle.project()  # the live database moves on to the head
    out = cli("replay", "--until", "777", "--json", check=True)
    summary = orjson.loads(out.stdout)
    assert summary["until"] == 777 and summary["swapped"] is False
    assert core_digest(Path(summary["target"])) == core_digest(tmp_path / "live-then.db")
    assert core_digest(Path(summary["target"])) != core_digest(chronicle.settings.projection_db_path)
    by_time = orjson.loads(cli("replay", "--until", "2000-01-01T00:00:00Z", "--json", check=True).stdout)
    assert by_time["until"] == 0  # before the first event: the empty read model


def test_replay_swaps_in_atomically_and_repairs_drift(chronicle: Chronicle) -> None:
    chronicle.emit_many(CATALOGUE_STORY)
    chronicle.project()
    good = chronicle.checksum()["sha256"]
    live = sqlite3.connect(chronicle.settings.projection_db_path)
    live.execute("UPDATE pages SET title='tampered'")
    live.commit()
    assert chronicle.checksum()["sha256"] != good
    out = cli("replay", "--yes", "--json", check=True)
    assert orjson.loads(out.stdout)["swapped"] is True
    assert chronicle.checksum()["sha256"] == good
    # a reader that kept its connection open reads the new state, not a mix
    assert live.execute("SELECT title FROM pages").fetchall() == [("Welcome",)]
    live.close()


def test_readers_see_old_or_new_state_never_a_half_built_one(chronicle: Chronicle) -> None:
    chronicle.emit_many([page(f"p{i}") for i in range(3000)])
    chronicle.project()
    db = chronicle.settings.projection_db_path
    live = sqlite3.connect(db)
    live.execute("DELETE FROM pages WHERE rowid % 2 = 0")  # drift: 1500 rows; the rebuild restores 3000
    live.commit()
    live.close()
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        conn = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            seen.add(conn.execute("SELECT count(*) FROM pages").fetchone()[0])
        conn.close()

    reader = threading.Thread(target=read)
    reader.start()
    rebuild(chronicle.store, db, chronicle.registry.projections)
    stop.set()
    reader.join(30)
    assert seen <= {1500, 3000} and 1500 in seen


def test_per_projection_rebuild_leaves_the_others_as_they_are(chronicle: Chronicle) -> None:
    chronicle.emit_many(CATALOGUE_STORY)
    chronicle.project()
    live = sqlite3.connect(chronicle.settings.projection_db_path)
    live.execute("UPDATE pages SET title='left alone'")  # cms drift must survive a media rebuild
    live.execute("DELETE FROM images")
    live.commit()
    report = rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections,
                     projections=["media"])
    assert report.per_projection["media"] == len(CATALOGUE_STORY)
    assert live.execute("SELECT title FROM pages").fetchall() == [("left alone",)]
    assert live.execute("SELECT id, status FROM images").fetchall() == [("i1", "pending")]
    live.close()
    assert chronicle.status()["projections"]["cms"]["lag"] == 0


def _indexes(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type='index'").fetchall())
    finally:
        conn.close()


def test_a_rebuild_has_every_index_of_the_schema(chronicle: Chronicle, tmp_path: Path) -> None:
    """The secondary indexes are built after the bulk load (``DeferredIndexes``), all of them, whole and
    as the schema declares them, for a full and for a partial rebuild."""
    chronicle.emit_many(list(generate(2000, seed=4)))
    chronicle.project()
    fresh = _fresh(tmp_path)
    live, known = chronicle.settings.projection_db_path, chronicle.registry.projections
    rebuild(chronicle.store, live, known, projections=CORE, output=tmp_path / "core.db")
    rebuild(chronicle.store, live, known)
    assert _indexes(tmp_path / "core.db") == _indexes(live) == _indexes(fresh)
    conn = sqlite3.connect(live)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]  # indexes match their tables
    conn.close()
    assert core_digest(tmp_path / "core.db") == core_digest(live)


def test_an_index_a_handler_looks_rows_up_by_is_created_before_the_look_up(tmp_path: Path) -> None:
    path = tmp_path / "scratch.db"
    create_schema(path)
    conn = scratch_connection(path)
    deferred = DeferredIndexes(conn, ["page_sections", "pages"])
    assert "ix_page_sections_section_entry_id" not in {r[1] for r in conn.execute("PRAGMA index_list(page_sections)")}
    applier = Applier(conn, on_filter=deferred.needed)
    applier.apply(Update("page_sections", {"section_entry_id": "s1"}, {"position": 2}))
    assert "ix_page_sections_section_entry_id" in {r[1] for r in conn.execute("PRAGMA index_list(page_sections)")}
    plan = conn.execute("EXPLAIN QUERY PLAN UPDATE page_sections SET position=1 WHERE section_entry_id='s1'")
    assert "ix_page_sections_section_entry_id" in " ".join(str(r) for r in plan.fetchall())
    assert [name for name, _columns, _sql in deferred.pending["pages"]] == ["ix_pages_site_id"]  # not needed yet
    deferred.create()
    conn.close()
    assert _indexes(path) == _indexes(_fresh(tmp_path))


def _fresh(tmp_path: Path) -> Path:
    fresh = tmp_path / "fresh.db"
    create_schema(fresh)
    return fresh


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_kill_9_during_replay_leaves_the_live_database_untouched(chronicle: Chronicle, writer: str) -> None:
    chronicle.emit_many(list(generate(40_000, seed=8)))
    chronicle.project()
    db = chronicle.settings.projection_db_path
    before = chronicle.checksum()["sha256"]
    proc = subprocess.Popen([sys.executable, "-m", "workers", "replay", "--yes"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow_replay_env(writer))
    scratch = db.with_name(f"{db.name}.rebuild-{proc.pid}")
    wait_until(lambda: under_way(scratch, writer), timeout=60, what="rebuild under way")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: not writer_processes(scratch), timeout=30, what="the writer to stop (its input closed)")
    assert chronicle.checksum()["sha256"] == before
    assert scratch.exists()  # nothing could clean up after kill -9 …
    assert scratch in clean_stale_scratch(db)  # … so the next rebuild does
    assert not scratch.exists()


@pytest.mark.parametrize("writer", ["inline", "process"])
def test_sigterm_during_replay_cleans_up_its_scratch_file(chronicle: Chronicle, writer: str) -> None:
    chronicle.emit_many(list(generate(40_000, seed=9)))
    db = chronicle.settings.projection_db_path
    before = chronicle.checksum()["sha256"]
    proc = subprocess.Popen([sys.executable, "-m", "workers", "replay", "--yes"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow_replay_env(writer))
    scratch = db.with_name(f"{db.name}.rebuild-{proc.pid}")
    wait_until(lambda: under_way(scratch, writer), timeout=60, what="rebuild under way")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 130
    assert not scratch.exists()
    assert not writer_processes(scratch)
    assert chronicle.checksum()["sha256"] == before


def test_replay_never_repeats_side_effects(chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    chronicle.registry.add_job(JobSpec("test.count", "media", lambda _c, page_id: calls.append(page_id)))
    monkeypatch.setitem(chronicle.registry.reactions, "PagePublished",
                        [lambda e: [Job("test.count", "media", {"page_id": e.data["id"]})]])
    chronicle.emit_many([page("a"), envelope("PagePublished", {"id": "a"})])
    chronicle.drain()
    assert calls == ["a"]
    reactor_at = chronicle.store.subscription_position("reactor")
    rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections)
    chronicle.drain()
    assert calls == ["a"]
    assert chronicle.store.subscription_position("reactor") == reactor_at


def test_upcaster_round_trip_on_a_log_written_with_an_older_schema(chronicle: Chronicle,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """v1 of PageCreated called the title ``name``; v2 renamed it. The old rows still replay."""
    monkeypatch.setattr(PageCreated, "schema_version", 2)  # today's code writes v2 …
    chronicle.emit("PageCreated", {"id": "new", "site_id": "s", "title": "Current", "slug": "n"})
    log = sqlite3.connect(chronicle.settings.resolved_data_dir / "events.db")
    log.execute("INSERT INTO events VALUES (2, 'old-1', 'page-old', 1, 'PageCreated', 1, ?, '{}', "
                "'2020-01-01T00:00:00.000000Z')", (orjson.dumps({"id": "old", "site_id": "s", "name": "Legacy",
                                                                  "slug": "o"}).decode(),))
    log.commit()
    log.close()
    # … and, without an upcaster, the v1 row no longer loads (checked in-process: the patch is ours)
    from pipeline.check import Problem, check_log

    [problem] = [p for p in check_log(chronicle.store) if isinstance(p, Problem)]
    assert problem.position == 2 and "v1 payload does not load as v2" in problem.reason

    def rename(data: dict) -> dict:
        data = dict(data)
        data["title"] = data.pop("name")
        return data

    monkeypatch.setitem(UPCASTERS, ("PageCreated", 1), rename)
    old = chronicle.store.read(after=1)[0]
    assert (old.schema_version, old.data["title"]) == (2, "Legacy")
    rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections)
    rows = sqlite3.connect(chronicle.settings.projection_db_path).execute("SELECT id, title FROM pages ORDER BY id")
    assert rows.fetchall() == [("new", "Current"), ("old", "Legacy")]


def test_a_corrupt_row_stops_the_projector_naming_its_position(chronicle: Chronicle) -> None:
    chronicle.emit_many([page("a"), page("b"), page("c")])
    log = sqlite3.connect(chronicle.settings.resolved_data_dir / "events.db")
    log.execute("UPDATE events SET data = '{not json' WHERE position = 2")
    log.commit()
    log.close()
    with pytest.raises(CorruptEvent, match="position 2"):
        chronicle.project()
    assert chronicle.status()["projections"]["cms"]["checkpoint"] == 0  # never a silent skip
    out = cli("events", "check", "--json")
    assert out.returncode == 1
    [problem] = orjson.loads(out.stdout)["problems"]
    assert problem["position"] == 2 and "cannot be decoded" in problem["reason"]


def test_the_log_on_postgresql_feeds_the_same_projections(postgres_url: str, data_dir: Path) -> None:
    handle = Chronicle(Settings(data_dir=data_dir, event_store_url=postgres_url), notifier=NullNotifier())
    handle.emit_many(CATALOGUE_STORY)
    handle.project()
    on_pg = handle.checksum()["sha256"]
    replayed = rebuild(handle.store, handle.settings.projection_db_path, handle.registry.projections)
    assert replayed.events == len(CATALOGUE_STORY)
    assert handle.checksum()["sha256"] == on_pg
    handle.close()
    sqlite_handle = Chronicle(Settings(data_dir=data_dir / "sqlite"), notifier=NullNotifier())
    sqlite_handle.emit_many(CATALOGUE_STORY)
    sqlite_handle.project()
    # same events, different backend and timestamps: same shape of read model
    assert sqlite_handle.checksum()["tables"]["pages"]["rows"] == 1
    sqlite_handle.close()


def test_postgres_late_commit_never_lets_a_projector_skip_an_event(postgres_url: str, data_dir: Path) -> None:
    """Writer A takes its position and holds its transaction open; writer B commits meanwhile. A
    projector must not see B's event and move past A's position. Positions are allocated under the
    log's write lock, so B can only allocate (and commit) after A: the projector sees A before B."""
    handle = Chronicle(Settings(data_dir=data_dir, event_store_url=postgres_url), notifier=NullNotifier())
    handle.emit_many([page("first")])
    from pipeline.envelope import validate_envelope

    release, a_inside = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def slow_batch():
        yield validate_envelope(page("a1"))
        a_inside.set()
        release.wait(30)  # A's transaction stays open here, lock held, position 2 allocated next
        yield validate_envelope(page("a2"))

    def writer_a() -> None:
        results["a"] = handle.store.append(slow_batch())

    def writer_b() -> None:
        results["b"] = handle.store.append([validate_envelope(page("b"))])

    ta = threading.Thread(target=writer_a)
    ta.start()
    assert a_inside.wait(30)
    tb = threading.Thread(target=writer_b)
    tb.start()
    tb.join(1.0)  # B must be blocked behind A's lock (it cannot have committed)
    assert "b" not in results
    assert handle.project()["cms"] == 1  # the projector sees only what is committed: position 1
    release.set()
    ta.join(30)
    tb.join(30)
    assert results["a"].positions == [2, 3] and results["b"].positions == [4]
    assert handle.project()["cms"] == 3
    assert [e.position for e in handle.store.read()] == [1, 2, 3, 4]
    handle.close()
