"""``embedding_status(chronicle)``: what ``chronicle status`` shows about embeddings and their cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import sync, vector_sync
from .config import EmbeddingSettings
from .documents import KINDS, load_documents
from .ledger import active_target, needs_embedding, states
from .runtime import chunker_for, read_model

if TYPE_CHECKING:
    from pipeline.context import JobContext


def embedding_status(chronicle: JobContext) -> dict[str, Any]:
    """Per kind: active model/table, embedded, pending, failed; usage totals; reindexes in flight; lag.

    ``pending`` compares every current document with the ledger (O(items), fine for a status command).
    """
    settings = chronicle.settings.section(EmbeddingSettings)
    head = chronicle.store.head()
    out: dict[str, Any] = {"provider": settings.provider, "kinds": {}, "reindexes": []}
    with read_model(chronicle) as conn:
        for kind in KINDS:
            target = active_target(conn, kind, settings)
            docs = load_documents(conn, kind, chunker=chunker_for(settings, target.model))
            current = states(conn, kind, target.model, target.dimension)
            pending = sum(needs_embedding(d, current.get(d.id)) for d in docs.values())
            failed = sum(1 for i, s in current.items() if s.status == "failed" and i in docs
                         and s.content_hash == docs[i].content_hash)
            embedded = sum(1 for i, s in current.items() if s.status == "embedded" and i in docs
                           and s.content_hash == docs[i].content_hash)
            out["kinds"][kind] = {"model": target.model, "dimension": target.dimension, "table": target.table,
                                  "items": len(docs), "embedded": embedded, "pending": pending, "failed": failed}
        usage = conn.execute("SELECT coalesce(sum(requests),0), coalesce(sum(tokens),0), coalesce(sum(embedded),0), "
                             "coalesce(sum(cached),0), coalesce(sum(failed),0) FROM embedding_usage").fetchone()
        out["usage"] = dict(zip(("requests", "tokens", "embedded", "cached", "failures"), usage, strict=True))
        for rid, kind, status, model, dimension in conn.execute(
                "SELECT id, kind, status, model, dimension FROM embedding_reindexes WHERE status != 'activated' "
                "ORDER BY position, kind"):
            progress = sync.read_progress(chronicle, rid).get(kind, {})
            out["reindexes"].append({"id": rid, "kind": kind, "status": status, "model": model,
                                     "dimension": dimension, "total": progress.get("total"),
                                     "done": progress.get("done")})
    out["lag"] = {name: head - chronicle.store.subscription_position(name)
                  for name in (sync.SUBSCRIPTION, vector_sync.SUBSCRIPTION)}
    return out
