"""The rebuild on two processes (``pipeline.replay_pipeline``): the same database as one process builds,
the same errors, and the choice between the two."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from db.changes import Upsert
from pipeline import Chronicle
from pipeline.checksum import checksum
from pipeline.cms import projection as cms
from pipeline.errors import ProjectionError
from pipeline.projection import Projection
from pipeline.replay import PIPELINE_MIN_EVENTS, rebuild, scratch_path, uses_writer_process
from pipeline.replay_pipeline import encode_ops
from pipeline.sample import generate
from tests.factories import CATALOGUE_STORY, page
from tests.helpers import writer_processes


def every_table(chronicle: Chronicle) -> list[str]:
    return sorted(t for p in chronicle.registry.projections.values() for t in p.tables)


def schema_of(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    finally:
        conn.close()


def test_two_processes_build_what_one_builds(chronicle: Chronicle, tmp_path: Path) -> None:
    chronicle.emit_many(CATALOGUE_STORY)  # every event type, so every projection's handlers and reads
    chronicle.emit_many(list(generate(3000, seed=21)))
    live, known = chronicle.settings.projection_db_path, chronicle.registry.projections
    built = {}
    for writer in ("inline", "process"):
        report = rebuild(chronicle.store, live, known, output=tmp_path / f"{writer}.db", writer=writer,
                         batch_size=700)  # several transactions, each over pages of the log
        assert report.events == chronicle.store.head()
        built[writer] = checksum(tmp_path / f"{writer}.db", every_table(chronicle))["sha256"]
    assert built["process"] == built["inline"]
    assert schema_of(tmp_path / "process.db") == schema_of(tmp_path / "inline.db")  # deferred indexes too
    conn = sqlite3.connect(tmp_path / "process.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert dict(conn.execute("SELECT name, position FROM projection_checkpoints")) == dict.fromkeys(
            known, chronicle.store.head())
    finally:
        conn.close()


def test_a_partial_rebuild_in_two_processes_keeps_the_other_projections(chronicle: Chronicle) -> None:
    chronicle.emit_many(CATALOGUE_STORY)
    chronicle.project()
    before = chronicle.checksum()["sha256"]
    report = rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections,
                     projections=["cms"], writer="process")
    assert report.swapped and report.per_projection == {"cms": chronicle.store.head()}
    assert chronicle.checksum()["sha256"] == before


def _refusing_projections(chronicle: Chronicle, refused_id: str) -> dict[str, Projection]:
    """The projections, with a cms handler writing a row SQLite refuses (NOT NULL) for one page."""
    known = dict(chronicle.registry.projections)
    handlers = dict(known["cms"].handlers)

    def page_created(e, state):  # type: ignore[no-untyped-def]
        if e.data["id"] != refused_id:
            return cms.page_created(e, state)
        return [Upsert("pages", {"id": refused_id, "site_id": "s", "environment_id": "", "title": None,
                                 "slug": "x", "metadata": {}, "status": "draft", "created_at": 0, "updated_at": 0})]

    handlers["PageCreated"] = page_created
    known["cms"] = dataclasses.replace(known["cms"], handlers=handlers)
    return known


def test_a_row_the_writer_refuses_names_its_event_as_one_process_does(chronicle: Chronicle) -> None:
    chronicle.emit_many([page(f"p{i}") for i in range(3000)])
    chronicle.project()
    live = chronicle.settings.projection_db_path
    before = chronicle.checksum()["sha256"]
    known = _refusing_projections(chronicle, "p2500")
    errors = {}
    for writer in ("inline", "process"):
        with pytest.raises(ProjectionError) as info:
            rebuild(chronicle.store, live, known, projections=["cms"], writer=writer, batch_size=1000)
        errors[writer] = (info.value.projection, info.value.position, str(info.value))
    assert errors["process"] == errors["inline"]
    assert errors["process"][:2] == ("cms", 2501)
    assert "NOT NULL constraint failed: pages.title" in errors["process"][2]
    assert chronicle.checksum()["sha256"] == before  # the live read model is untouched
    assert not list(live.parent.glob(f"{live.name}.rebuild-*"))  # the scratch file is gone
    assert writer_processes(scratch_path(live)) == []  # and so is the writer


def test_a_handler_reading_an_undeclared_table_fails_in_both_processes(chronicle: Chronicle, tmp_path: Path) -> None:
    chronicle.emit_many(CATALOGUE_STORY)
    known = dict(chronicle.registry.projections)
    known["cms"] = dataclasses.replace(known["cms"], reads=())  # its handlers read `sites`
    for writer in ("inline", "process"):
        with pytest.raises(ProjectionError, match=r"read table 'sites'.*Projection\.reads"):
            rebuild(chronicle.store, chronicle.settings.projection_db_path, known, projections=["cms"],
                    output=tmp_path / f"{writer}.db", writer=writer)
    assert writer_processes(scratch_path(chronicle.settings.projection_db_path)) == []


def test_values_marshal_cannot_carry_go_by_pickle() -> None:
    from datetime import UTC, datetime

    assert encode_ops([(0, ["a", 1, {"k": [1, None]}])])[0] == "marshal"
    assert encode_ops([(0, [datetime(2026, 1, 1, tzinfo=UTC)])])[0] == "pickle"


def test_auto_uses_a_second_process_for_large_logs_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert uses_writer_process("auto", PIPELINE_MIN_EVENTS)
    assert not uses_writer_process("auto", PIPELINE_MIN_EVENTS - 1)
    assert uses_writer_process("process", 10) and not uses_writer_process("inline", 10**7)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})  # e.g. under `taskset -c 0`
    assert not uses_writer_process("auto", 10**7)
