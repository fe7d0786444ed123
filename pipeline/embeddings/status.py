"""``embedding_status(chronicle)``: what ``chronicle status`` shows about embeddings and their cost.

Two ways to count, same JSON shape (``"exact"`` says which):

* quick (``exact=False``, ``chronicle status``): aggregate queries on the ledger and the source tables,
  milliseconds at any size. ``items`` is the rows of the kind's table, ``embedded``/``failed`` the ledger
  rows of the active model for items that still exist, ``pending`` the rest. An edit not embedded yet
  still counts as ``embedded`` (its older text is); the embed subscriber's ``lag`` is what says edits
  are waiting. A row with no text at all (an empty section) counts as pending, though it never needs a
  vector.
* exact (``exact=True``, ``chronicle status --exact``, ``GET /status``): every current document is
  rendered and its content hash compared with the ledger: O(items), seconds on a large site.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from db.engine import connect

from .config import EmbeddingSettings
from .documents import KINDS, SOURCE_TABLES, load_documents
from .jobs import EMBED_SUBSCRIPTION, VECTORS_SUBSCRIPTION
from .ledger import Target, active_target, needs_embedding, states

if TYPE_CHECKING:
    from pipeline.context import JobContext


def embedding_status(chronicle: JobContext, *, exact: bool = True) -> dict[str, Any]:
    """Per kind: active model/table, items, embedded, pending, failed; usage totals; reindexes in flight;
    the two subscribers' lag."""
    settings = chronicle.settings.section(EmbeddingSettings)
    head = chronicle.store.head()
    out: dict[str, Any] = {"provider": settings.provider, "exact": exact, "kinds": {}, "reindexes": []}
    conn = connect(chronicle.settings.projection_db_path)
    try:
        for kind in KINDS:
            target = active_target(conn, kind, settings)
            counts = _exact_counts(conn, kind, target, settings) if exact else _quick_counts(conn, kind, target)
            out["kinds"][kind] = {"model": target.model, "dimension": target.dimension, "table": target.table,
                                  **counts}
        usage = conn.execute("SELECT coalesce(sum(requests),0), coalesce(sum(tokens),0), coalesce(sum(embedded),0), "
                             "coalesce(sum(cached),0), coalesce(sum(failed),0) FROM embedding_usage").fetchone()
        out["usage"] = dict(zip(("requests", "tokens", "embedded", "cached", "failures"), usage, strict=True))
        reindexes = conn.execute("SELECT id, kind, status, model, dimension FROM embedding_reindexes "
                                 "WHERE status != 'activated' ORDER BY position, kind").fetchall()
    finally:
        conn.close()
    if reindexes:
        from .progress import read_progress

        for rid, kind, status, model, dimension in reindexes:
            progress = read_progress(chronicle, rid).get(kind, {})
            out["reindexes"].append({"id": rid, "kind": kind, "status": status, "model": model,
                                     "dimension": dimension, "total": progress.get("total"),
                                     "done": progress.get("done")})
    out["lag"] = {name: head - chronicle.store.subscription_position(name)
                  for name in (EMBED_SUBSCRIPTION, VECTORS_SUBSCRIPTION)}
    return out


def _quick_counts(conn: sqlite3.Connection, kind: str, target: Target) -> dict[str, int]:
    """Two aggregate queries: the kind's rows, and its ledger rows by status (the ledger's primary key
    starts with ``kind``; the join probes each source table's primary key)."""
    table = SOURCE_TABLES[kind]
    items = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    by_status = dict(conn.execute(
        f'SELECT s.status, count(*) FROM embedding_state s JOIN "{table}" t ON t.id = s.id '
        "WHERE s.kind = ? AND s.model = ? AND s.dimension = ? AND s.status IN ('embedded', 'failed') "
        "GROUP BY s.status", (kind, target.model, target.dimension)).fetchall())
    embedded, failed = by_status.get("embedded", 0), by_status.get("failed", 0)
    return {"items": items, "embedded": embedded, "pending": max(0, items - embedded - failed), "failed": failed}


def _exact_counts(conn: sqlite3.Connection, kind: str, target: Target, settings: EmbeddingSettings) -> dict[str, int]:
    """Every current document against the ledger (O(items): each is chunked with the model's tokenizer)."""
    from .runtime import chunker_for  # the tokenizer loads only for --exact

    docs = load_documents(conn, kind, chunker=chunker_for(settings, target.model))
    current = states(conn, kind, target.model, target.dimension)
    pending = sum(needs_embedding(d, current.get(d.id)) for d in docs.values())
    failed = sum(1 for i, s in current.items() if s.status == "failed" and i in docs
                 and s.content_hash == docs[i].content_hash)
    embedded = sum(1 for i, s in current.items() if s.status == "embedded" and i in docs
                   and s.content_hash == docs[i].content_hash)
    return {"items": len(docs), "embedded": embedded, "pending": pending, "failed": failed}
