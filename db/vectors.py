"""LanceDB vector tables (``data/lancedb``): naming, schema, and the single-writer lane.

One physical table per (kind, model, dimension), e.g. ``sections__text_embedding_3_small__1536``, so a
model change builds a *shadow* table next to the live one and the swap is just the
``EmbeddingIndexActivated`` event changing which table search reads. Posts have their own table: CMS ids
of pages and posts come from different sequences and may collide, and a merge on ``id`` must never mix
them.

LanceDB's ``merge_insert``/``delete`` from several processes conflict and can duplicate keys, so every
write goes through ``VectorWriter``: callers hold an exclusive file lock for the whole pass (the
``vectors`` Celery queue runs with concurrency 1; the lock makes a second writer wait rather than
corrupt), and rows are written in micro-batches with source keys de-duplicated.
"""

from __future__ import annotations

import fcntl
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("chronicle.vectors")

WRITE_BATCH = 5000
OPTIMIZE_AFTER_UNINDEXED = 2000
OPTIMIZE_EVERY_VERSIONS = 100  # each merge_insert/delete adds a version and small fragments
COLUMNS = ("id", "item_id", "chunk", "kind", "site", "environment", "status", "model", "dimension",
           "content_hash", "chunk_hash", "text", "chunk_text", "vector", "position")
# The row layout's version, part of the table name: a table of another layout is never written to; an
# installation from before chunking (one row per item, ``<kind>s__<model>__<dim>``) migrates through a
# reindex into the new name (pipeline/embeddings/layout.py) while search keeps reading the old one.
LAYOUT = "chunks"


def chunk_row_id(item_id: str, chunk: int) -> str:
    """A chunk row's key: the item's id for its first chunk, ``<id>#<n>`` for the others (so a one-chunk
    item keeps exactly the row id it always had)."""
    return item_id if chunk == 0 else f"{item_id}#{chunk}"


def table_name(kind: str, model: str, dimension: int, *, layout: str | None = LAYOUT) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")
    return f"{kind}s__{slug}__{dimension}" + (f"__{layout}" if layout else "")


def schema(dimension: int) -> pa.Schema:
    """One row per chunk: ``item_id`` groups them; ``text`` (the item's full text, what full-text search
    indexes) is on the first chunk only, so an item matches the text query once; ``chunk_text`` is
    what the vector was computed from (the snippet)."""
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("item_id", pa.string()), ("chunk", pa.int32()), ("kind", pa.string()),
        ("site", pa.string()), ("environment", pa.string()), ("status", pa.string()), ("model", pa.string()),
        ("dimension", pa.int32()), ("content_hash", pa.string()), ("chunk_hash", pa.string()), ("text", pa.string()),
        ("chunk_text", pa.string()), ("vector", pa.list_(pa.float32(), dimension)), ("position", pa.int64()),
    ])


# The CMS's own tables (its ``VectorIndexService`` opens these names): the active model's rows, as
# ``{id, pageId, content, vector}`` plus Chronicle's filter columns (pipeline/embeddings/seed_tables.py),
# one row per chunk: ``item_id`` names the item (a CMS keeps the first row per item_id).
SEED_TABLE_NAMES = {"page": "page_embeddings", "section": "section_embeddings", "image": "image_embeddings"}


def seed_schema(dimension: int) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("pageId", pa.string()), ("content", pa.string()),
        ("vector", pa.list_(pa.float32(), dimension)), ("item_id", pa.string()), ("chunk", pa.int32()),
        ("kind", pa.string()), ("site", pa.string()),
        ("environment", pa.string()), ("status", pa.string()), ("model", pa.string()),
        ("content_hash", pa.string()), ("position", pa.int64()),
    ])


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def storage_options() -> dict[str, str]:
    """Object-storage options for LanceDB from the usual ``AWS_*`` variables (Lance reads most of them
    itself; the endpoint and plain-HTTP switch of an S3-compatible server are passed explicitly)."""
    import os

    options: dict[str, str] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    for name, key in (("AWS_REGION", "aws_region"), ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
                      ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"), ("AWS_SESSION_TOKEN", "aws_session_token")):
        if os.environ.get(name):
            options[key] = os.environ[name]
    return options


def connect(location: Path | str) -> Any:
    """A local directory, or an object-storage URL (``s3://bucket/prefix``: Lance commits with
    conditional puts there, so concurrent writers on several hosts are safe)."""
    import lancedb  # imported here: a process that never touches vectors does not pay ~1 s for it

    if isinstance(location, str) and "://" in location:
        return lancedb.connect(location, storage_options=storage_options())
    directory = Path(location)
    directory.mkdir(parents=True, exist_ok=True)
    return lancedb.connect(str(directory))


def table_names(db: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        page = db.list_tables(page_token=token)
        names.extend(page.tables)
        token = getattr(page, "page_token", None)
        if not token:
            return names


def open_table(db: Any, name: str) -> Any | None:
    return db.open_table(name) if name in table_names(db) else None


@contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """Exclusive, cross-process: the one-writer rule, enforced even if two `vectors` workers run."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".writer.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class VectorWriter:
    """Upserts and deletes against the vector tables; use inside ``writer_lock``."""

    def __init__(self, directory: Path, uri: str | None = None) -> None:
        """``directory``: local bookkeeping (lock, markers); ``uri``: where the tables are (default there)."""
        self.directory = directory
        self.db = connect(uri or directory)
        self._tables: dict[str, Any] = {}

    def table(self, name: str, dimension: int, row_schema: pa.Schema | None = None) -> Any:
        table = self._tables.get(name)
        if table is None:
            table = open_table(self.db, name)
            if table is None:
                table = self.db.create_table(name, schema=row_schema or schema(dimension), exist_ok=True)
            self._tables[name] = table
        return table

    def replace(self, name: str, rows: Sequence[dict[str, Any]], row_schema: pa.Schema) -> int:
        """Overwrite table ``name`` with ``rows`` as one new version: readers see the old rows or the new
        ones, never a mix (how the CMS's tables switch to another model)."""
        unique = list({r["id"]: r for r in rows}.values())
        import pyarrow as pa

        data = pa.Table.from_pylist(unique, schema=row_schema)
        self._tables[name] = self.db.create_table(name, data=data, mode="overwrite")
        return len(unique)

    def tables_for_kind(self, kind: str) -> list[str]:
        """This layout's tables of ``kind`` (any model)."""
        return [n for n in table_names(self.db) if n.startswith(f"{kind}s__") and n.endswith(f"__{LAYOUT}")]

    def upsert(self, name: str, dimension: int, rows: Sequence[dict[str, Any]], *,
               row_schema: pa.Schema | None = None) -> int:
        """Insert or replace rows by ``id`` (last row per id wins), in micro-batches. ``row_schema``:
        another table layout than Chronicle's own (the CMS's tables), without full-text index."""
        if not rows:
            return 0
        import pyarrow as pa

        unique = list({r["id"]: r for r in rows}.values())
        table = self.table(name, dimension, row_schema)
        for start in range(0, len(unique), WRITE_BATCH):
            batch = pa.Table.from_pylist(unique[start:start + WRITE_BATCH], schema=row_schema or schema(dimension))
            table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)
        if row_schema is None:
            self._ensure_fts(table)
        return len(unique)

    def delete(self, name: str, ids: Iterable[str]) -> None:
        """Delete every row (every chunk) of the items ``ids``."""
        wanted = sorted(set(ids))
        if not wanted or name not in table_names(self.db):
            return
        table = self.table(name, 1)
        column = "item_id" if "item_id" in table.schema.names else "id"  # a table from before chunking
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start:start + 1000]
            table.delete(f"{column} IN ({', '.join(map(sql_literal, chunk))})")

    def delete_stale_chunks(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        """After an upsert of ``rows``: delete the chunks of those items that are not among them (a text
        that got shorter has fewer chunks)."""
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["item_id"]] = max(counts.get(row["item_id"], 0), row["chunk"] + 1)
        if not counts or name not in table_names(self.db):
            return
        table = self.table(name, 1)
        if "chunk" not in table.schema.names:
            return
        by_count: dict[int, list[str]] = {}
        for item, n in counts.items():
            by_count.setdefault(n, []).append(item)
        for n, items in sorted(by_count.items()):
            for start in range(0, len(items), 1000):
                part = ", ".join(map(sql_literal, sorted(items[start:start + 1000])))
                table.delete(f"item_id IN ({part}) AND chunk >= {n}")

    def keep_only(self, name: str, ids: set[str]) -> int:
        """Delete every row whose item is not in ``ids`` (a full rebuild's cleanup); returns items deleted."""
        if name not in table_names(self.db):
            return 0
        table = self.table(name, 1)
        present = set(table.to_arrow().column("item_id").to_pylist()) if table.count_rows() else set()
        stale = present - ids
        self.delete(name, stale)
        return len(stale)

    def _ensure_fts(self, table: Any) -> None:
        """Full-text index on ``text``; rows written after it are still searched (unindexed, flat) until
        enough accumulate to be worth folding in with ``optimize``."""
        indices = {i.name: i for i in table.list_indices()}
        if "text_idx" not in indices:
            from lancedb.index import FTS

            table.create_index("text", config=FTS(), replace=True, name="text_idx")
            return
        stats = table.index_stats("text_idx")
        unindexed = stats.num_unindexed_rows if stats is not None else 0
        if unindexed >= OPTIMIZE_AFTER_UNINDEXED or table.version % OPTIMIZE_EVERY_VERSIONS == 0:
            table.optimize()  # compacts fragments, folds new rows into the FTS index, prunes old versions
