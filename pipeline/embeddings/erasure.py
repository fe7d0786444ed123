"""Erasure's part in the embeddings pipeline: an erased subject's text leaves LanceDB and the vector cache.

Called by ``pipeline.erase`` with the items (kind, id) whose documents held the subject's text. Their
vector rows are deleted from every table of their kind, and LanceDB's old table versions are cleaned
up at once (a delete alone leaves the rows in earlier versions' files). The vector cache entries of
every text those items were ever embedded from — whole texts and each chunk of a chunked one (the
``EmbeddingsComputed`` events name them) — are deleted too, except a hash another item's embedding
uses (the cache must keep what the log says exists, or a replay would pay again). ``SubjectErased``
then makes the subscriber re-embed the items from their placeholder text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from db.vectors import VectorWriter
from pipeline.context import JobContext
from pipeline.envelope import Recorded

from .runtime import read_model, vector_cache
from .touched import Key
from .vector_lock import vectors_lock


def items_of(events: Iterable[Recorded]) -> set[Key]:
    """The search items an erased subject's events wrote text into."""
    from .touched import touched_by

    found: set[Key] = set()
    for e in events:
        found.update(touched_by(e))
    return found


def forget(chronicle: JobContext, items: set[Key]) -> dict[str, int]:
    """Delete the items' vectors and their texts' cache entries; returns what was deleted."""
    if not items:
        return {"vector_rows": 0, "cache_entries": 0}
    hashes: set[tuple[str, int, str]] = set()
    in_use: set[tuple[str, int, str]] = set()  # named by another item's outcome: its text too
    for e in chronicle.store.iter_all():
        if e.type in ("EmbeddingsComputed", "EmbeddingsFailed"):
            for item in e.data["items"]:
                mine = (item["kind"], item["id"]) in items
                for h in (item["content_hash"], *(item.get("chunk_hashes") or ())):
                    (hashes if mine else in_use).add((e.data["model"], e.data["dimension"], h))
    with read_model(chronicle) as conn:
        in_use |= {(m, d, h) for k, i, m, d, h in conn.execute(
            "SELECT kind, id, model, dimension, content_hash FROM embedding_state") if (k, i) not in items}
    deleted_rows = 0
    directory = chronicle.settings.lancedb_dir  # the writer lock; the tables may be on object storage
    if directory.exists() or chronicle.settings.lancedb_url:
        with vectors_lock(chronicle.settings):
            writer = VectorWriter(directory, chronicle.settings.lancedb_uri)
            for kind in {k for k, _ in items}:
                ids = sorted(i for k, i in items if k == kind)
                for name in writer.tables_for_kind(kind):
                    table: Any = writer.table(name, 1)
                    before = table.count_rows()
                    writer.delete(name, ids)
                    deleted_rows += before - table.count_rows()
                    table.optimize(cleanup_older_than=timedelta(0))  # no old version keeps the rows
    with vector_cache(chronicle) as cache:
        removed = cache.delete(hashes - in_use)
    return {"vector_rows": deleted_rows, "cache_entries": removed}
