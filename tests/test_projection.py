"""Projection of every catalogue event, pure handlers, and exactly-once application."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from typing import Any

import orjson
import pytest

from db.changes import Delete, Update, Upsert
from pipeline import Chronicle
from pipeline.cms import projection as cms
from pipeline.envelope import Recorded
from pipeline.errors import ProjectionError
from pipeline.events import CATALOGUE
from pipeline.projector import Projector
from pipeline.subsystems import default_projections
from tests.factories import CATALOGUE_STORY, envelope, page

PROJECTIONS = default_projections()


def rows(chronicle: Chronicle, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(chronicle.settings.projection_db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def recorded(type_: str, data: dict[str, Any], position: int = 1) -> Recorded:
    return Recorded(position, "id", "s", 1, type_, 1, data, {}, "2026-05-06T07:08:09.123456Z")


class DictState:
    def __init__(self, tables: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.tables = tables

    def get(self, table: str, key: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any] | None:
        row = self.tables.get(table, {}).get(next(iter(key.values())))
        return None if row is None else {c: row[c] for c in columns}


def test_every_catalogue_type_has_a_handler_and_appears_in_the_story() -> None:
    handled = {t for p in PROJECTIONS.values() for t in p.handlers}
    core_types = {name for name, model in CATALOGUE.items() if model.__module__ == "pipeline.cms.events"}
    assert core_types <= handled
    assert core_types <= {e["type"] for e in CATALOGUE_STORY}


def test_handlers_are_pure_functions_of_event_and_state() -> None:
    changes = cms.page_updated(recorded("PageUpdated", {"id": "p1", "title": "T"}), DictState({}))
    assert changes == [Update("pages", {"id": "p1"}, {"title": "T", "updated_at": 1778051289})]  # Unix s
    state = DictState({"sites": {"s1": {"settings": orjson.dumps({"a": 1, "b": {"c": 1}}).decode()}}})
    [change, *per_key] = cms.site_settings_updated(recorded("SiteSettingsUpdated", {"id": "s1", "settings": {
        "a": None, "b": {"d": 2}}}), state)
    assert change.values["settings"] == {"b": {"c": 1, "d": 2}}
    assert per_key == [Delete("site_settings", {"site_id": "s1", "key": "a"}),
                       Upsert("site_settings", {"site_id": "s1", "key": "b", "value": {"c": 1, "d": 2},
                                                "updated_at": 1778051289})]
    assert cms.page_deleted(recorded("PageDeleted", {"id": "p"}), DictState({})) == [
        Delete("page_sections", {"page_id": "p"}), Delete("pages", {"id": "p"})]
    assert isinstance(cms.navigation_updated(recorded("NavigationUpdated", {"site_id": "s"}), DictState({}))[0],
                      Upsert)


def test_projection_of_every_catalogue_event(chronicle: Chronicle) -> None:
    chronicle.emit_many(CATALOGUE_STORY)
    chronicle.project()  # projections only: no side effects (the images here have no files)
    assert chronicle.status()["projections"]["cms"]["lag"] == 0
    assert rows(chronicle, "SELECT id, name FROM teams") == [("t1", "Team")]
    settings = orjson.loads(rows(chronicle, "SELECT settings FROM sites")[0][0])
    assert settings == {"theme": "dark", "nested": {"a": 1}}
    assert rows(chronicle, "SELECT id, title, status, published_at FROM pages") == [("p1", "Welcome", "draft", None)]
    assert rows(chronicle, "SELECT name FROM section_definitions") == [("Hero banner",)]
    assert rows(chronicle, "SELECT section_entry_id, position FROM page_sections ORDER BY position") == [
        ("x2", 0), ("x1", 1)]
    assert rows(chronicle, 'SELECT id, content, "order" FROM section_entries ORDER BY id') == [
        ("x1", '{"h":"one"}', 1), ("x2", '{"h":"2"}', 0)]
    assert rows(chronicle, "SELECT id, body, status, published_at, tags FROM posts") == [
        ("b1", "more text", "published", 1767319445, '["a"]')]  # 2026-01-02T02:04:05Z
    assert rows(chronicle, "SELECT id, status FROM images") == [("i1", "pending")]
    assert rows(chronicle, "SELECT site_id, name, items FROM navigation") == [
        ("s1", "main", '[{"label":"Home","page_id":"p1"}]')]
    assert rows(chronicle, "SELECT id, title FROM sessions") == [("c1", "Help")]
    assert rows(chronicle, "SELECT id, session_id, role, content FROM messages") == [("m1", "c1", "user", '"hi"')]


def test_the_read_model_is_readable_through_sqlmodel(chronicle: Chronicle) -> None:
    from sqlmodel import Session, select

    from db.engine import engine_for
    from db.models import Page

    chronicle.emit_many([page("a")])
    chronicle.drain()
    engine = engine_for(chronicle.settings.projection_db_path)
    with Session(engine) as session:
        [row] = session.exec(select(Page)).all()
    engine.dispose()
    assert (row.id, row.title, row.meta, row.created_at.year > 2000) == ("a", "Page a", {}, True)


def test_running_the_projector_again_applies_nothing_twice(chronicle: Chronicle) -> None:
    chronicle.emit_many([page("a"), envelope("PageUpdated", {"id": "a", "title": "x"})])
    first = chronicle.project()
    digest = chronicle.checksum()
    assert first == dict.fromkeys(PROJECTIONS, 2)
    assert chronicle.project() == dict.fromkeys(PROJECTIONS, 0)
    assert chronicle.checksum() == digest


def test_racing_projectors_apply_each_event_exactly_once(chronicle: Chronicle) -> None:
    """Two projectors on the same projection, run concurrently in small batches: the checkpoint
    read under the write lock makes the second skip what the first applied."""
    events = []
    for i in range(300):
        events.append(page(f"p{i}"))
        events.append(envelope("SectionEntryCreated", {"id": f"x{i}", "definition_id": "d", "page_id": f"p{i % 7}",
                                                       "order": i}))
    chronicle.emit_many(events)
    applied: list[int] = []

    def run() -> None:
        projector = Projector(chronicle.store, chronicle.settings.projection_db_path, PROJECTIONS["cms"],
                              batch_size=7)
        applied.append(projector.run_until_idle()["cms"])
        projector.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(applied) == 600  # each event applied by exactly one of the two
    assert rows(chronicle, "SELECT count(*) FROM page_sections") == [(300,)]


def test_a_failing_handler_rolls_back_rows_and_checkpoint(chronicle: Chronicle, monkeypatch) -> None:
    chronicle.emit_many([page("a"), page("b")])

    def explode(event, state):
        raise RuntimeError("boom")

    live = chronicle.registry.projections
    handlers = dict(live["cms"].handlers)
    handlers["PageCreated"] = lambda e, s: explode(e, s) if e.data["id"] == "b" else cms.page_created(e, s)
    monkeypatch.setitem(live, "cms", dataclasses.replace(live["cms"], handlers=handlers))
    projector = chronicle.projector("cms")
    try:
        with pytest.raises(ProjectionError, match="position 2"):
            projector.run_batch()
    finally:
        projector.close()
    assert rows(chronicle, "SELECT count(*) FROM pages") == [(0,)]
    assert chronicle.status()["projections"]["cms"]["checkpoint"] == 0


def test_checksum_ignores_how_the_tables_were_built(chronicle: Chronicle, tmp_path) -> None:
    from pipeline import Settings
    from pipeline.notify import NullNotifier

    chronicle.emit_many(CATALOGUE_STORY)
    # Incremental: one event per transaction, in a separate process-like handle.
    small = Projector(chronicle.store, chronicle.settings.projection_db_path, PROJECTIONS["cms"], batch_size=1)
    small.run_until_idle()
    small.close()
    chronicle.project()
    incremental = chronicle.checksum()
    log_url = chronicle.settings.resolved_event_store_url
    other = Chronicle(Settings(data_dir=tmp_path / "other", event_store_url=log_url), notifier=NullNotifier())
    other.project()
    assert other.checksum() == incremental
    other.close()


def test_an_outcome_recorded_after_its_item_was_deleted_does_not_resurrect_it(chronicle: Chronicle) -> None:
    """The race a killed-and-restarted embedding worker exposed (tests/chaos/test_worker_kill.py): the
    worker loads a page, the CMS deletes it, then the worker records ``EmbeddingsComputed``. The ledger
    must keep the tombstone (no document, no vector row); re-creating the id lifts it."""

    def computed(content_hash: str) -> dict[str, Any]:
        return envelope("EmbeddingsComputed", {"model": "m", "dimension": 4, "items": [
            {"kind": "page", "id": "p9", "content_hash": content_hash * 64}]})

    def ledger() -> list[tuple[Any, ...]]:
        return rows(chronicle, "SELECT status, content_hash FROM embedding_state WHERE id='p9'")

    chronicle.emit_many([page("p9"), computed("1"), envelope("PageDeleted", {"id": "p9"}), computed("2"),
                         page("p8"), envelope("PageDeleted", {"id": "p8"}),
                         envelope("EmbeddingsComputed", {"model": "m", "dimension": 4, "items": [
                             {"kind": "page", "id": "p8", "content_hash": "8" * 64}]})])
    chronicle.project()
    assert ledger() == [("deleted", "1" * 64)]
    assert rows(chronicle, "SELECT count(*) FROM embedding_state WHERE id='p8'") == [(0,)], \
        "deleted before its first outcome: still no ledger row"
    chronicle.emit_many([page("p9"), computed("3")])
    chronicle.project()
    assert ledger() == [("embedded", "3" * 64)]


@pytest.mark.parametrize(("kind", "created", "deleted"), [
    ("page", "PageCreated", "PageDeleted"), ("section", "SectionEntryCreated", "SectionEntryDeleted"),
    ("post", "PostCreated", "PostDeleted"), ("image", "ImageUploaded", "ImageDeleted")])
def test_each_kind_gets_and_loses_its_embedding_tombstone(kind: str, created: str, deleted: str) -> None:
    from pipeline.embeddings.projection import HANDLERS

    tomb = [c for c in HANDLERS[deleted](recorded(deleted, {"id": "x"}, position=7), DictState({}))
            if c.table == "embedding_tombstones"]
    assert tomb == [Upsert("embedding_tombstones", {"kind": kind, "id": "x", "position": 7})]
    assert list(HANDLERS[created](recorded(created, {"id": "x"}), DictState({}))) == [
        Delete("embedding_tombstones", {"kind": kind, "id": "x"})]
