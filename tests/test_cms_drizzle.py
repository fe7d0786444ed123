"""The CMS's own code reads Chronicle's stores unchanged (issue 12): the seed's Drizzle tables on
``better-sqlite3``, the ``schema.ts`` that ``chronicle schema drizzle`` prints, and ``@lancedb/lancedb``
on ``page_embeddings``, all run by Node on a database Chronicle built from events.

The npm packages go to a cache directory outside the repository (``CHRONICLE_TEST_NODE_CACHE``, default
``~/.cache/chronicle-tests/node``), installed once and reused. Without ``node``/``npm`` the test skips,
saying so; under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel

from db.schema import drizzle_schema
from db.vectors import connect as lance_connect
from pipeline import Chronicle, Settings
from pipeline.notify import NullNotifier
from tests.conftest import IN_CI, REPO
from tests.factories import envelope
from tests.test_read_model_schema import SEED_STORY, unix

NODE_DIR = Path(__file__).resolve().parent / "node"
# Pinned: better-sqlite3 13.x needs Node 22; newer @lancedb/lancedb builds are not served for every platform.
NODE_PACKAGES = {"drizzle-orm": "0.45.4", "better-sqlite3": "12.11.1", "@lancedb/lancedb": "0.31.0",
                 "apache-arrow": "18.1.0", "typescript": "5.9.3"}
MODEL, DIMENSION = "text-embedding-3-small", 1536
PHOTO = REPO / "samples" / "photos" / "Portrait_1.jpg"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run the Node compatibility test")
    pytest.skip(reason)


def node_cache() -> Path:
    return Path(os.environ.get("CHRONICLE_TEST_NODE_CACHE", "~/.cache/chronicle-tests/node")).expanduser()


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """A directory whose ``node_modules`` holds ``NODE_PACKAGES`` (installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are not installed (the CMS compatibility test runs the CMS's Node packages)")
    cache = node_cache()
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / ".chronicle-installed.json"
    with (cache / ".lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once share one install
        installed = all((cache / "node_modules" / name / "package.json").exists() for name in NODE_PACKAGES)
        if not installed or not stamp.exists() or json.loads(stamp.read_text()) != NODE_PACKAGES:
            (cache / "package.json").write_text(json.dumps(
                {"name": "chronicle-tests-node", "private": True, "dependencies": NODE_PACKAGES}, indent=2))
            proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache,
                                  capture_output=True, timeout=1800)
            if proc.returncode != 0:
                _unavailable(f"npm install failed in {cache}: {proc.stderr.decode()[-2000:]}")
            stamp.write_text(json.dumps(NODE_PACKAGES))
    return cache


@pytest.fixture
def run_dir(node_packages: Path) -> Iterator[Path]:
    """A scratch directory inside the cache, so Node resolves the packages from its parent."""
    path = node_packages / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def node(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(["node", *args], cwd=cwd, capture_output=True, timeout=600)
    assert proc.returncode == 0, f"node {' '.join(args)} failed:\n{proc.stdout.decode()}\n{proc.stderr.decode()}"
    return proc.stdout.decode()


def build(data_dir: Path) -> Chronicle:
    """A read model and vector store built from events with the seed's field names, in two batches a
    second apart (so creation and update times differ), embeddings on (1536-d, deterministic)."""
    from pipeline.media.upload import upload

    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    chronicle.emit_many(SEED_STORY)
    upload(chronicle, PHOTO, image_id="img-1", site_id="s1", metadata={"alt": "a portrait"})
    time.sleep(1.1)
    chronicle.emit_many([
        envelope("PageUpdated", {"id": "p1", "title": "Home, updated"}),
        envelope("MessageAdded", {"id": "m3", "session_id": "c1", "role": "tool", "content": {"result": [1, 2]}}),
        envelope("ImageDescribed", {"id": "img-1", "alt_text": "A person", "caption": "Portrait", "tags": ["face"]}),
    ])
    chronicle.drain()
    return chronicle


def times(events_db: Path) -> dict[tuple[str, str], int]:
    """(type, data.id) → the event's time in Unix seconds (the last such event)."""
    conn = sqlite3.connect(events_db)
    try:
        rows = conn.execute("SELECT type, json_extract(data, '$.id'), recorded_at FROM events ORDER BY position")
        return {(t, i): unix(at) for t, i, at in rows}
    finally:
        conn.close()


def expected(chronicle: Chronicle) -> dict[str, Any]:
    settings = chronicle.settings
    t = times(settings.resolved_data_dir / "events.db")
    conn = sqlite3.connect(settings.projection_db_path)
    try:
        counts = {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                  for name in SQLModel.metadata.tables}
    finally:
        conn.close()
    keys = {name: [c.name for c in table.primary_key.columns] for name, table in SQLModel.metadata.tables.items()}
    table = lance_connect(settings.lancedb_dir).open_table("page_embeddings")
    [p1] = [r for r in table.to_arrow().to_pylist() if r["id"] == "p1"]
    story = {(e["type"], e["data"].get("id")): e["data"] for e in SEED_STORY}
    return {
        "sqlite": str(settings.projection_db_path), "lancedb": str(settings.lancedb_dir), "dimension": DIMENSION,
        "counts": counts, "keys": keys,
        "times": {
            "pages": {"p1": {"createdAt": t["PageCreated", "p1"], "updatedAt": t["PageUpdated", "p1"]},
                      "p2": {"createdAt": t["PageCreated", "p2"], "updatedAt": t["PageCreated", "p2"]}},
            "sessions": {"c1": {"createdAt": t["SessionCreated", "c1"], "updatedAt": t["MessageAdded", "m3"]}},
            "messages": {"m1": {"createdAt": t["MessageAdded", "m1"]}, "m3": {"createdAt": t["MessageAdded", "m3"]}},
            "images": {"img-1": {"createdAt": t["ImageUploaded", "img-1"]}},
        },
        "json": {
            "section_definitions": {"hero": {"schema": story["SectionDefinitionCreated", "hero"]["schema"],
                                             "defaultContent": {"heading": "Welcome"}}},
            "pages": {"p1": {"metadata": {"seo": {"title": "Home"}}}},
            "section_entries": {"x1": {"content": {"heading": "Hi"}}},
            "messages": {"m1": {"content": "hi"}, "m2": {"content": story["MessageAdded", "m2"]["content"]},
                         "m3": {"content": {"result": [1, 2]}}},
        },
        "query": {"id": "p1", "vector": list(p1["vector"]), "content": p1["content"]},
    }


def every_time_is_an_events_time(chronicle: Chronicle) -> None:
    """Every timestamp in the read model is the time of an event, or one a CMS sent with it."""
    from db.types import UnixTime

    allowed = set(times(chronicle.settings.resolved_data_dir / "events.db").values()) | {unix("2026-01-02T03:04:05Z")}
    conn = sqlite3.connect(chronicle.settings.projection_db_path)
    try:
        for name, table in SQLModel.metadata.tables.items():
            for column in (c.name for c in table.columns if isinstance(c.type, UnixTime)):
                found = {v for (v,) in conn.execute(f'SELECT "{column}" FROM "{name}"') if v is not None}
                assert found <= allowed, (name, column, found - allowed)
    finally:
        conn.close()


def test_the_cms_reads_chronicles_stores_with_its_own_code(data_dir: Path, run_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    monkeypatch.setenv("CHRONICLE_EMBEDDING_MODEL", MODEL)
    monkeypatch.setenv("CHRONICLE_EMBEDDING_DIMENSION", str(DIMENSION))
    chronicle = build(data_dir)
    try:
        spec = expected(chronicle)
        db = sqlite3.connect(chronicle.settings.projection_db_path)
        [(status,)] = db.execute("SELECT status FROM images WHERE id='img-1'").fetchall()
        db.close()
        assert status == "completed"
        every_time_is_an_events_time(chronicle)
    finally:
        chronicle.close()

    shutil.copy(NODE_DIR / "seed_schema.ts", run_dir / "seed_schema.ts")
    shutil.copy(NODE_DIR / "read_chronicle.mjs", run_dir / "read_chronicle.mjs")
    (run_dir / "schema.ts").write_text(drizzle_schema())
    (run_dir / "expected.json").write_text(json.dumps(spec))
    tsc = str(run_dir.parent / "node_modules" / "typescript" / "bin" / "tsc")
    node([tsc, "--noEmit", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "esnext",
          "--moduleResolution", "bundler", "schema.ts", "seed_schema.ts"], run_dir)  # both compile
    node(["-e", "const ts = require('typescript'), fs = require('fs');"
                "for (const f of ['schema', 'seed_schema']) fs.writeFileSync(f + '.mjs', ts.transpileModule("
                "fs.readFileSync(f + '.ts', 'utf8'), {compilerOptions: {module: ts.ModuleKind.ESNext, "
                "target: ts.ScriptTarget.ES2022}}).outputText);"], run_dir)
    report = json.loads(node(["read_chronicle.mjs", "expected.json"], run_dir).strip().splitlines()[-1])

    seed_tables = {"pages", "section_definitions", "section_entries", "images", "image_variants", "sessions",
                   "messages"}
    assert set(report["tables"]) == seed_tables
    assert all(report["tables"][name] > 0 for name in seed_tables), report["tables"]
    assert set(report["generated"]) == set(SQLModel.metadata.tables)
    assert report["vectors"]["page_embeddings"] == 2 and report["vectors"]["image_embeddings"] == 1
    assert report["vectors"]["sectionPages"] == {"x1": "p1"}
    assert report["vectors"]["top"][0] == "p1"
