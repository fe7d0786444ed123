"""The CMS's own LanceDB tables: ``page_embeddings``, ``section_embeddings``, ``image_embeddings``.

The CMS's ``VectorIndexService`` opens these names and reads rows ``{id, pageId, content, vector}``
(``nearestTo(vector)``). Chronicle's search keeps its per-model tables (``pages__<model>__<dim>``, with
shadow tables for a model change); these three mirror whichever of them is *active*:

- ``id``: the item's id; ``pageId``: a page's own id, a section's page (null while on no page), an
  image's own id (images belong to no page in the CMS; the seed's ``pageId`` names the item the row is
  about); ``content``: the text that was embedded; ``vector``: its embedding under the active model.
- plus ``kind``, ``site``, ``environment``, ``status``, ``model``, ``content_hash``, ``position`` for
  filtering (``where("status = 'published'")``).

Each vectors pass writes the same rows into the mirror as into the active table. When the active model
changes (``EmbeddingIndexActivated``), the next pass rewrites the mirror from the new model's rows in
one overwrite (one new LanceDB version: a reader sees the old model's rows or the new model's, never a
mix, and never no table). Posts keep only their own table (``posts__…``): the CMS has none for them.

``.seed_tables.json`` in the LanceDB directory records which physical table each mirror holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from db.vectors import SEED_TABLE_NAMES, VectorWriter, chunk_row_id, seed_schema, table_names

from .cache import VectorCache
from .config import EmbeddingSettings
from .documents import Document, load_documents
from .ledger import Target, active_target, states
from .runtime import chunker_for

MARKER = ".seed_tables.json"


def page_id_of(doc: Document) -> str | None:
    return doc.parent_id if doc.kind == "section" else doc.id


def seed_rows(doc: Document, target: Target, vectors: dict[str, Any], position: int) -> list[dict[str, Any]]:
    """One row per chunk: ``id`` is the item's id for its first chunk (so a short item has exactly the
    row it always had) and ``<id>#<n>`` after; ``item_id`` names the item for de-duplication."""
    if any(c.hash not in vectors for c in doc.chunks):
        return []
    return [{"id": chunk_row_id(doc.id, c.index), "pageId": page_id_of(doc), "content": c.text,
             "vector": vectors[c.hash], "item_id": doc.id, "chunk": c.index, "kind": doc.kind, "site": doc.site,
             "environment": doc.environment, "status": doc.status, "model": target.model,
             "content_hash": doc.content_hash, "position": position} for c in doc.chunks]


def _marker_path(writer: VectorWriter) -> Path:
    return writer.directory / MARKER


def mirrored(writer: VectorWriter) -> dict[str, str]:
    """Which physical table each mirror holds now (kind → table)."""
    try:
        return json.loads(_marker_path(writer).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def missing(directory: Path) -> bool:
    """Cheap: some CMS table was never written here (a new install, or one from before these tables)."""
    try:
        done = json.loads((directory / MARKER).read_text())
    except (FileNotFoundError, ValueError):
        return True
    return any(kind not in done for kind in SEED_TABLE_NAMES)


def _set_mirrored(writer: VectorWriter, kind: str, table: str) -> None:
    current = mirrored(writer)
    current[kind] = table
    tmp = _marker_path(writer).with_suffix(".tmp")
    tmp.write_text(json.dumps(current, sort_keys=True))
    tmp.replace(_marker_path(writer))


def mirror_rows(writer: VectorWriter, target: Target, docs: Iterable[Document], vectors: dict[str, Any],
                deletes: list[str], position: int) -> None:
    """Write what the active table just got into its mirror (skipped while the mirror holds another
    table: ``sync`` rewrites it whole)."""
    name = SEED_TABLE_NAMES.get(target.kind)
    if name is None or mirrored(writer).get(target.kind) != target.table:
        return
    rows = [r for d in docs for r in seed_rows(d, target, vectors, position)]
    writer.upsert(name, target.dimension, rows, row_schema=seed_schema(target.dimension))
    writer.delete_stale_chunks(name, rows)
    writer.delete(name, deletes)


def sync(writer: VectorWriter, conn: sqlite3.Connection, cache: VectorCache, settings: EmbeddingSettings) -> list[str]:
    """Rewrite every mirror that holds another table than its kind's active one (or does not exist);
    returns the mirrors rewritten."""
    done = mirrored(writer)
    existing = set(table_names(writer.db))
    rewritten = []
    for kind, name in SEED_TABLE_NAMES.items():
        target = active_target(conn, kind, settings)
        if done.get(kind) == target.table and name in existing:
            continue
        docs = load_documents(conn, kind, None, chunker=chunker_for(settings, target.model))
        current = states(conn, kind, target.model, target.dimension)
        wanted = [d for i, d in docs.items() if (s := current.get(i)) is not None and s.status == "embedded"
                  and s.content_hash == d.content_hash]
        vectors = cache.get_many(target.model, target.dimension, (c.hash for d in wanted for c in d.chunks))
        position = conn.execute("SELECT coalesce(max(position), 0) FROM embedding_state WHERE kind=? AND model=? "
                                "AND dimension=?", (kind, target.model, target.dimension)).fetchone()[0]
        rows = [r for d in wanted for r in seed_rows(d, target, vectors, position)]
        writer.replace(name, rows, seed_schema(target.dimension))
        _set_mirrored(writer, kind, target.table)
        rewritten.append(name)
    return rewritten
