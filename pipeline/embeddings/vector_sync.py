"""The vector writer lane: make LanceDB rows agree with the read model, the ledger and the cache.

Runs on the ``vectors`` queue (concurrency 1) under ``vectors_lock`` (one writer, across hosts too). Like
the embedding subscriber it has its own log checkpoint (``vectors``) and collapses many wake-ups into one
micro-batched pass: every item touched by content events (status/site changes included, which cost no
embedding) or by embedding outcomes is re-derived and upserted or deleted, table by table. The active
tables' rows also go to the CMS's own tables (``page_embeddings``…, see ``seed_tables``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from db.vectors import VectorWriter, chunk_row_id, table_names
from pipeline import tracing
from pipeline.envelope import Recorded

from . import layout, seed_tables
from .cache import VectorCache
from .config import EmbeddingSettings
from .documents import Document, chunked, load_documents
from .jobs import VECTORS_SUBSCRIPTION
from .ledger import StateRow, Target, active_target, expand, states, targets
from .runtime import chunker_for, read_model, vector_cache
from .touched import Key, group, outcome_keys, touched_by
from .vector_lock import vectors_lock
from .working_copy import ensure_projected, forget_erased, projected_until

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.vectors")

SUBSCRIPTION = VECTORS_SUBSCRIPTION


def plan_rows(target: Target, ids: Iterable[str], docs: dict[str, Document],
              current: dict[str, StateRow]) -> tuple[list[Document], list[str]]:
    """Pure: which items get a row (embedded, hash matches the current text) and which lose theirs.

    An item whose text changed but whose new vector is not recorded yet keeps its old row until the
    outcome event arrives (search keeps finding it); a failed or deleted one is removed.
    """
    upserts, deletes = [], []
    for id in ids:
        doc, state = docs.get(id), current.get(id)
        if doc is None or (state is not None and state.status in ("failed", "deleted")):
            deletes.append(id)
        elif state is not None and state.status == "embedded" and state.content_hash == doc.content_hash:
            upserts.append(doc)
    return upserts, deletes


def to_rows(doc: Document, target: Target, vectors: dict[str, Any], position: int) -> list[dict[str, Any]] | None:
    """One row per chunk (None if a chunk's vector is missing from the cache). Only the first chunk
    carries the item's full text, which full-text search indexes: an item is one FTS match, not N."""
    if any(c.hash not in vectors for c in doc.chunks):
        return None
    return [{"id": chunk_row_id(doc.id, c.index), "item_id": doc.id, "chunk": c.index, "kind": doc.kind,
             "site": doc.site, "environment": doc.environment, "status": doc.status, "model": target.model,
             "dimension": target.dimension, "content_hash": doc.content_hash, "chunk_hash": c.hash,
             "text": doc.text if c.index == 0 else "", "chunk_text": c.text, "vector": vectors[c.hash],
             "position": position} for c in doc.chunks]


def write_target(writer: VectorWriter, cache: VectorCache, conn: sqlite3.Connection, target: Target,
                 ids: Iterable[str] | None, docs: dict[str, Document], position: int, *,
                 active: bool = False) -> tuple[int, list[str]]:
    """Upsert/delete the rows of ``ids`` (None: every document) in ``target``'s table (and, for the
    ``active`` target, in the CMS's table of that kind)."""
    wanted = list(docs) if ids is None else list(ids)
    current = states(conn, target.kind, target.model, target.dimension, None if ids is None else wanted)
    upserts, deletes = plan_rows(target, wanted, docs, current)
    vectors = cache.get_many(target.model, target.dimension, (c.hash for d in upserts for c in d.chunks))
    rows, found = [], []
    for doc in upserts:
        doc_rows = to_rows(doc, target, vectors, position)
        if doc_rows is None:
            log.warning("no cached vector for %s %s (%s); skipped", doc.kind, doc.id, target.model)
            continue
        rows.extend(doc_rows)
        found.append(doc)
    with tracing.span("chronicle.vectors.write", attributes={
            "chronicle.vectors.table": target.table, "chronicle.embedding.model": target.model,
            "chronicle.vectors.upserts": len(rows), "chronicle.vectors.deletes": len(deletes),
            "chronicle.position.last": position}):
        writer.upsert(target.table, target.dimension, rows)
        writer.delete_stale_chunks(target.table, rows)
        writer.delete(target.table, deletes)
        if active:
            seed_tables.mirror_rows(writer, target, found, vectors, deletes, position)
    return len(found), deletes


def catch_up(chronicle: JobContext, position: int | None = None) -> int:
    """Apply every change since the ``vectors`` checkpoint; returns rows written."""
    return _catch_up(chronicle, position, limit=None)[0]


def catch_up_slice(chronicle: JobContext, position: int | None = None) -> bool:
    """One bounded slice (``CHRONICLE_SLICE_EVENTS`` events); True if the log has more after it."""
    return _catch_up(chronicle, position, limit=chronicle.settings.slice_events)[1]


def _catch_up(chronicle: JobContext, position: int | None, *, limit: int | None) -> tuple[int, bool]:
    store = chronicle.store
    subscriber = chronicle.registry.subscribers[SUBSCRIPTION]
    if subscriber.already_past(store, position):
        return 0, False
    if not chronicle.settings.section(EmbeddingSettings).enabled:
        return 0, False
    if position is not None:
        ensure_projected(chronicle, position)
    directory = chronicle.settings.lancedb_dir
    with vectors_lock(chronicle.settings):
        # An install from before chunking: migrate by reindexing. Local tables only: installs on object
        # storage began with the chunked layout (the directory here then holds just the lock and marker).
        if layout.legacy_on_disk(directory):
            with read_model(chronicle) as conn:
                existing = set(table_names(VectorWriter(directory, chronicle.settings.lancedb_uri).db))
                layout.request_migrations(chronicle, conn, existing, chronicle.settings.section(EmbeddingSettings))
            layout.mark_requested(directory)
        start = subscriber.position(store)
        until = projected_until(chronicle)
        if until <= start:
            if seed_tables.missing(directory):  # an install from before the CMS's tables: write them now
                settings = chronicle.settings.section(EmbeddingSettings)
                with read_model(chronicle) as conn, vector_cache(chronicle) as cache:
                    seed_tables.sync(VectorWriter(directory, chronicle.settings.lancedb_uri), conn, cache, settings)
            return 0, False
        keys: list[Key] = []
        erasures: list[Recorded] = []
        last = start
        for count, event in enumerate(store.iter_all(after=start, until=until), 1):
            keys.extend(touched_by(event))
            keys.extend(outcome_keys(event))
            if event.type == "SubjectErased":
                erasures.append(event)
            last = event.position
            if limit is not None and count >= limit:
                break
        forget_erased(chronicle, erasures)  # a working copy: its rows of an erased subject go first
        settings = chronicle.settings.section(EmbeddingSettings)
        writer = VectorWriter(directory, chronicle.settings.lancedb_uri)
        written = 0
        with read_model(chronicle) as conn, vector_cache(chronicle) as cache:
            for kind, ids in sorted(expand(conn, group(keys)).items()):
                loaded = load_documents(conn, kind, ids)
                for n, target in enumerate(targets(conn, kind, settings)):  # the active one first
                    docs = chunked(loaded, chunker_for(settings, target.model))
                    count, _ = write_target(writer, cache, conn, target, ids, docs, last, active=n == 0)
                    written += count
                gone = [i for i in ids if i not in loaded]
                for name in writer.tables_for_kind(kind):
                    writer.delete(name, gone)
                if kind in seed_tables.SEED_TABLE_NAMES:
                    writer.delete(seed_tables.SEED_TABLE_NAMES[kind], gone)
            # A model activated since (or a first pass): the CMS's tables take the active model's rows.
            seed_tables.sync(writer, conn, cache, settings)
        subscriber.advance(store, start=start, to=last)
        return written, last < until


def rebuild(chronicle: JobContext, *, id: str, kind: str, model: str, dimension: int, item_id: str | None = None,
            position: int = 0, **_: Any) -> int:
    """Write a kind's whole table for (model, dimension) from the ledger and cache, then swap it in.

    Until the ``EmbeddingIndexActivated`` event is projected, search keeps reading the previous table, so
    a model change never leaves search without answers.
    """
    ensure_projected(chronicle, position)
    settings = chronicle.settings.section(EmbeddingSettings)
    target = Target(kind, model, dimension)
    directory = chronicle.settings.lancedb_dir
    with vectors_lock(chronicle.settings), read_model(chronicle) as conn, vector_cache(chronicle) as cache:
        writer = VectorWriter(directory, chronicle.settings.lancedb_uri)
        docs = load_documents(conn, kind, [item_id] if item_id else None, chunker=chunker_for(settings, model))
        active = active_target(conn, kind, settings) == target  # a forced reindex of the model in use
        written, _deleted = write_target(writer, cache, conn, target, [item_id] if item_id else None, docs,
                                         position, active=active)
        if item_id is not None:
            return written
        writer.table(target.table, dimension)  # an empty kind still gets its (empty) table
        keep = {d.id for d in docs.values()}
        current = states(conn, kind, model, dimension)
        keep &= {i for i, s in current.items() if s.status == "embedded"}
        writer.keep_only(target.table, keep)
        rows = writer.table(target.table, dimension).count_rows()
    chronicle.emit("EmbeddingIndexActivated", {"id": id, "kind": kind, "model": model, "dimension": dimension,
                                               "table": target.table, "rows": rows},
                   id=f"index-activated:{id}:{kind}", metadata={"actor": "chronicle-vectors"})
    return written
