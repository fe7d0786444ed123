"""The embeddings subsystem's Python API: hybrid search, reindex requests, status.

Python API::

    from pipeline.embeddings.api import search, request_reindex, embedding_status
    hits = search(chronicle, "how do I nest pages", kinds=["pages"], status="published", limit=5)

See docs/embeddings.md for the design, settings and cost model.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .documents import KINDS, PLURALS
from .search import Hit, search
from .status import embedding_status

if TYPE_CHECKING:
    from pipeline.context import JobContext


def request_reindex(chronicle: JobContext, *, kinds: Sequence[str] = ("all",), item_id: str | None = None,
                    model: str | None = None, dimension: int | None = None, force: bool = False,
                    actor: str | None = None) -> str:
    """Append a ``ReindexRequested`` event (workers carry it out); returns the reindex id."""
    chosen = list(KINDS) if "all" in kinds else list(dict.fromkeys(PLURALS.get(k, k) for k in kinds))
    reindex_id = uuid.uuid4().hex[:16]
    chronicle.emit("ReindexRequested", {"id": reindex_id, "kinds": chosen, "item_id": item_id, "model": model,
                                        "dimension": dimension, "force": force, "actor": actor})
    return reindex_id


__all__ = ["Hit", "embedding_status", "request_reindex", "search"]
