"""The read model is the CMS's own Drizzle schema (issue 12): seed columns, the seed's event fields, old
logs upcast, old databases migrated, checksums deterministic."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from db.engine import connect
from db.schema import drizzle_schema, projection_hash, recorded_schemas
from pipeline import Chronicle, Settings
from pipeline.check import Problem, check_log
from pipeline.notify import NullNotifier
from pipeline.replay import rebuild
from pipeline.store import open_store
from tests.factories import envelope
from tests.helpers import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COLUMNS = ("position", "id", "stream", "version", "type", "schema_version", "data", "metadata", "recorded_at")

# The seed's tables as it writes them: column → (SQLite type, NOT NULL, default).
SEED_TABLES: dict[str, dict[str, tuple[str, bool, str | None]]] = {
    "pages": {"id": ("TEXT", True, None), "site_id": ("TEXT", True, None), "environment_id": ("TEXT", True, None),
              "title": ("TEXT", True, None), "slug": ("TEXT", True, None), "status": ("TEXT", False, "'draft'"),
              "metadata": ("TEXT", False, None), "created_at": ("INTEGER", False, None),
              "updated_at": ("INTEGER", False, None)},
    "section_definitions": {"id": ("TEXT", True, None), "name": ("TEXT", True, None),
                            "schema": ("TEXT", False, None), "default_content": ("TEXT", False, None)},
    "section_entries": {"id": ("TEXT", True, None), "definition_id": ("TEXT", True, None),
                        "content": ("TEXT", False, None), "page_id": ("TEXT", False, None),
                        "order": ("INTEGER", False, None)},
    "images": {"id": ("TEXT", True, None), "filename": ("TEXT", True, None), "original_path": ("TEXT", True, None),
               "mime_type": ("TEXT", True, None), "size": ("INTEGER", True, None), "width": ("INTEGER", False, None),
               "height": ("INTEGER", False, None), "hash": ("TEXT", False, None),
               "status": ("TEXT", False, "'pending'"), "metadata": ("TEXT", False, None),
               "created_at": ("INTEGER", False, None)},
    "image_variants": {"id": ("TEXT", True, None), "image_id": ("TEXT", True, None), "width": ("INTEGER", True, None),
                       "format": ("TEXT", True, None), "path": ("TEXT", True, None), "size": ("INTEGER", True, None)},
    "sessions": {"id": ("TEXT", True, None), "title": ("TEXT", False, None), "created_at": ("INTEGER", False, None),
                 "updated_at": ("INTEGER", False, None)},
    "messages": {"id": ("TEXT", True, None), "session_id": ("TEXT", True, None), "role": ("TEXT", True, None),
                 "content": ("TEXT", False, None), "created_at": ("INTEGER", False, None)},
}


def load_log(data_dir: Path, path: Path = FIXTURES / "v1_log.jsonl") -> int:
    """Write the recorded rows of a log file into ``data_dir/events.db`` as they were (no validation)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    open_store(f"sqlite:///{data_dir / 'events.db'}").close()
    conn = sqlite3.connect(data_dir / "events.db")
    with conn:
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        conn.executemany(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         [tuple(r[c] for c in COLUMNS) for r in rows])
    conn.close()
    return len(rows)


def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def unix(recorded_at: str) -> int:
    return int(datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp())


# --- the schema ----------------------------------------------------------------------------------


def test_seed_tables_are_column_for_column_the_seed(chronicle: Chronicle) -> None:
    conn = connect(chronicle.settings.projection_db_path)
    try:
        for table, expected in SEED_TABLES.items():
            info = {r[1]: (r[2], bool(r[3]) or bool(r[5]), r[4]) for r in conn.execute(f'PRAGMA table_info("{table}")')}
            for column, spec in expected.items():
                assert info.get(column) == spec, (table, column, info.get(column))
            for column, (_type, not_null, default) in info.items():  # extras: nullable or defaulted
                if column not in expected:
                    assert not not_null or default is not None, (table, column)
    finally:
        conn.close()


def test_a_row_inserted_the_seeds_way_gets_the_seeds_defaults(chronicle: Chronicle) -> None:
    path = chronicle.settings.projection_db_path
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO pages (id, site_id, environment_id, title, slug) VALUES ('x', 's', 'e', 'T', 't')")
        conn.execute("INSERT INTO images (id, filename, original_path, mime_type, size) VALUES ('i', 'a', 'b', 'c', 1)")
    conn.close()
    assert query(path, "SELECT status FROM pages") == [("draft",)]
    assert query(path, "SELECT status FROM images") == [("pending",)]


def test_drizzle_schema_mirrors_the_tables() -> None:
    ts = drizzle_schema()
    assert 'export const pages = sqliteTable("pages", {' in ts
    assert '\tcreatedAt: integer("created_at", { mode: "timestamp" }),' in ts
    assert '\tmetadata: text("metadata", { mode: "json" }),' in ts
    assert '\tstatus: text("status").default("draft"),' in ts
    assert '\tenvironmentId: text("environment_id").notNull(),' in ts
    assert '\tdefaultContent: text("default_content", { mode: "json" }),' in ts
    assert "export const sectionDefinitions = " in ts and "export const imageVariants = " in ts
    assert cli("schema", "drizzle", check=True).stdout.decode() == ts
    sql = cli("schema", "sql", check=True).stdout.decode()
    assert "CREATE TABLE pages (" in sql and "created_at INTEGER" in sql


# --- the catalogue speaks the seed's names ------------------------------------------------------------


SEED_STORY = [
    envelope("TeamCreated", {"id": "t1", "name": "Team"}),
    envelope("SiteCreated", {"id": "s1", "team_id": "t1", "name": "Site"}),
    envelope("EnvironmentCreated", {"id": "e1", "site_id": "s1", "name": "production"}),
    envelope("EnvironmentCreated", {"id": "e2", "site_id": "s1", "name": "staging"}),
    envelope("SectionDefinitionCreated", {"id": "hero", "name": "hero", "schema": {"type": "object", "properties": {
        "heading": {"type": "string"}}}, "default_content": {"heading": "Welcome"}}),
    envelope("PageCreated", {"id": "p1", "site_id": "s1", "environment_id": "e2", "title": "Home", "slug": "home",
                             "status": "published", "metadata": {"seo": {"title": "Home"}}}),
    envelope("PageCreated", {"id": "p2", "site_id": "s1", "title": "About", "slug": "about"}),
    envelope("PostCreated", {"id": "b1", "site_id": "s1", "title": "News", "slug": "news", "status": "published",
                             "published_at": "2026-01-02T03:04:05Z"}),
    envelope("SectionEntryCreated", {"id": "x1", "definition_id": "hero", "page_id": "p1",
                                     "content": {"heading": "Hi"}, "order": 0}),
    envelope("NavigationUpdated", {"site_id": "s1", "environment_id": "e2", "name": "main",
                                   "items": [{"label": "Home", "page_id": "p1"}]}),
    envelope("NavigationUpdated", {"site_id": "s1", "items": [{"label": "About", "page_id": "p2"}]}),
    envelope("SiteSettingsUpdated", {"id": "s1", "settings": {"theme": "dark", "seo": {"x": 1}}}),
    envelope("SessionCreated", {"id": "c1", "title": "Help"}),
    envelope("MessageAdded", {"id": "m1", "session_id": "c1", "role": "user", "content": "hi"}),
    envelope("MessageAdded", {"id": "m2", "session_id": "c1", "role": "assistant",
                              "content": [{"type": "text", "text": "Hello"}, {"type": "tool_call", "name": "x"}]}),
]


def test_events_with_the_seeds_field_names_are_accepted_and_projected(chronicle: Chronicle) -> None:
    chronicle.emit_many(SEED_STORY)
    chronicle.project()
    db = chronicle.settings.projection_db_path
    times = {r[0]: unix(r[1]) for r in query(Path(chronicle.settings.resolved_data_dir / "events.db"),
                                             "SELECT json_extract(data, '$.id'), recorded_at FROM events")}
    assert query(db, "SELECT name, schema, default_content, site_id FROM section_definitions") == [
        ("hero", '{"properties":{"heading":{"type":"string"}},"type":"object"}', '{"heading":"Welcome"}', None)]
    assert query(db, "SELECT id, environment_id, status, published_at, created_at FROM pages ORDER BY id") == [
        ("p1", "e2", "published", times["p1"], times["p1"]), ("p2", "e1", "draft", None, times["p2"])]
    assert query(db, "SELECT status, published_at FROM posts") == [("published", 1767323045)]
    assert query(db, "SELECT id, environment_id, items FROM navigation ORDER BY id") == [
        ("s1:e1:main", "e1", '[{"label":"About","page_id":"p2"}]'),
        ("s1:e2:main", "e2", '[{"label":"Home","page_id":"p1"}]')]
    assert query(db, "SELECT key, value FROM site_settings ORDER BY key") == [("seo", '{"x":1}'), ("theme", '"dark"')]
    assert query(db, "SELECT id, content FROM messages ORDER BY id") == [
        ("m1", '"hi"'), ("m2", '[{"text":"Hello","type":"text"},{"name":"x","type":"tool_call"}]')]
    [(created, updated)] = query(db, "SELECT created_at, updated_at FROM sessions")
    assert (created, updated) == (times["c1"], times["m2"])


# --- old logs, old databases --------------------------------------------------------------------------


def test_a_log_written_by_the_previous_release_upcasts_and_checks_clean(data_dir: Path) -> None:
    count = load_log(data_dir)
    store = open_store(f"sqlite:///{data_dir / 'events.db'}")
    try:
        problems = [p for p in check_log(store) if isinstance(p, Problem)]
        [definition] = [e for e in store.read(after=0, limit=10) if e.type == "SectionDefinitionCreated"][:1]
    finally:
        store.close()
    assert problems == []
    assert definition.schema_version == 2 and "fields" not in definition.data
    assert definition.data["schema"] == [{"name": "heading", "type": "text"}, {"name": "body", "type": "richtext"}]
    proc = cli("events", "check", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert orjson.loads(proc.stdout) == {"checked": count, "problems": []}
    with Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier()) as chronicle:
        chronicle.project()
        assert chronicle.status()["projections"]["cms"]["lag"] == 0
        db = chronicle.settings.projection_db_path
        assert query(db, "SELECT schema FROM section_definitions WHERE id='def-1'") == [
            ('[{"name":"heading","type":"text"}]',)]  # v1 "fields" of the SectionDefinitionUpdated
        assert query(db, "SELECT content FROM messages WHERE id='msg-x'") == [('"plain text"',)]
        assert query(db, "SELECT created_at, published_at FROM pages WHERE id='page-x'") == [
            (int(datetime(2025, 6, 1, 10, 30, 45, tzinfo=UTC).timestamp()),
             int(datetime(2025, 6, 2, 8, tzinfo=UTC).timestamp()))]
        assert query(db, "SELECT typeof(created_at) FROM pages GROUP BY 1") == [("integer",)]


def test_a_database_of_the_previous_schema_is_migrated_blue_green(data_dir: Path) -> None:
    load_log(data_dir)
    live = data_dir / "sqlite.db"
    old = sqlite3.connect(live)
    old.executescript((FIXTURES / "v1_read_model.sql").read_text())
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    reader = sqlite3.connect(live, isolation_level=None)  # a CMS reading while the new release starts
    reader.execute("BEGIN")
    [(before,)] = reader.execute("SELECT created_at FROM pages WHERE id='page-x'").fetchall()
    assert isinstance(before, str)  # the previous schema: ISO text

    with Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier()) as chronicle:  # migrates on open
        assert reader.execute("SELECT created_at FROM pages WHERE id='page-x'").fetchall() == [(before,)]
        reader.execute("COMMIT")
        [(after,)] = reader.execute("SELECT created_at FROM pages WHERE id='page-x'").fetchall()
        assert isinstance(after, int)
        chronicle.project()  # no "no such column"
        assert chronicle.status()["projections"]["cms"]["lag"] == 0
        conn = connect(live)
        try:
            schemas = recorded_schemas(conn)
        finally:
            conn.close()
        known = chronicle.registry.projections
        assert schemas == {n: projection_hash(p.tables, p.version) for n, p in known.items()}
        migrated = chronicle.checksum()
    reader.close()

    fresh = data_dir.parent / "fresh"
    load_log(fresh)
    with Chronicle(Settings(data_dir=fresh), notifier=NullNotifier()) as chronicle:
        chronicle.project()
        assert chronicle.checksum() == migrated  # the same rows as a build from scratch


def test_a_changed_projection_is_detected_and_rebuilt_alone(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    load_log(data_dir)
    settings = Settings(data_dir=data_dir)
    with Chronicle(settings, notifier=NullNotifier()) as chronicle:
        chronicle.project()
    from dataclasses import replace

    from pipeline.subsystems import build_registry

    registry = build_registry(settings)
    registry.projections["media"] = replace(registry.projections["media"], version=99)
    with caplog.at_level("WARNING", logger="chronicle.migrations"), Chronicle(settings, notifier=NullNotifier(),
                                                                              registry=registry):
        pass
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "the tables of media changed" in messages and "rebuilt for the new schema" in messages
    assert "cms" not in messages


# --- determinism ---------------------------------------------------------------------------------------


def test_two_builds_of_one_log_are_byte_identical(data_dir: Path) -> None:
    load_log(data_dir)
    with Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier()) as chronicle:
        for _ in range(50):  # incremental, in small batches
            chronicle.project(max_events=10)
        incremental = chronicle.checksum()
        report = rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections,
                         output=data_dir / "replayed.db")
        assert report.target is not None
    from pipeline.checksum import checksum

    assert checksum(data_dir / "replayed.db") == incremental
    assert query(data_dir / "replayed.db", "SELECT count(*) FROM pages WHERE typeof(updated_at) != 'integer'") == [(0,)]
