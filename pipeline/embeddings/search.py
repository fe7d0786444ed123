"""Hybrid search: vector similarity + LanceDB full-text search, fused with reciprocal-rank fusion.

Filters (kind, site, status, environment) are pushed down into LanceDB as a prefilter, so a filtered
query still returns ``limit`` matches. Each kind is searched in its *active* table (the one the last
``EmbeddingIndexActivated`` named, else the configured default), with the query embedded by that
table's model; query vectors go through the same content-addressed cache as documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from db.vectors import connect, open_table, sql_literal

from .config import EmbeddingSettings
from .documents import KINDS, PLURALS
from .ledger import Target, active_target
from .runtime import embedder_for, read_model, vector_cache
from .text import content_hash, truncate

if TYPE_CHECKING:
    from pipeline.context import JobContext

RRF_K = 60


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    id: str
    site: str | None
    environment: str | None
    status: str
    score: float
    text: str
    model: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalise_kinds(kinds: Sequence[str] | str | None) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    if not kinds or "all" in kinds:
        return list(KINDS)
    return [PLURALS.get(k, k) for k in kinds if PLURALS.get(k, k) in KINDS]


def where_clause(*, site: str | None = None, status: str | None = None, environment: str | None = None) -> str | None:
    """Pure: the SQL prefilter LanceDB evaluates before ranking."""
    parts = [f"{col} = {sql_literal(v)}" for col, v in (("site", site), ("status", status),
                                                        ("environment", environment)) if v]
    return " AND ".join(parts) or None


def _query_vector(chronicle: JobContext, target: Target, query: str) -> list[float]:
    settings = chronicle.settings.section(EmbeddingSettings)
    text = truncate(query, settings.embedding_input_tokens)
    key = content_hash(text)
    with vector_cache(chronicle) as cache:
        hit = cache.get_many(target.model, target.dimension, [key]).get(key)
        if hit is not None:
            return hit.tolist()
        vector = embedder_for(settings, target.model, target.dimension).embed([text]).vectors[0]
        cache.put_many(target.model, target.dimension, [(key, vector)])
        return list(vector)


def search(chronicle: JobContext, query: str, *, kinds: Sequence[str] | str | None = None, site: str | None = None,
           status: str | None = None, environment: str | None = None, limit: int = 10,
           mode: str = "hybrid") -> list[Hit]:
    """Best ``limit`` matches across ``kinds``; ``mode`` is hybrid, vector or fts."""
    from lancedb.rerankers import RRFReranker

    settings = chronicle.settings.section(EmbeddingSettings)
    db = connect(chronicle.settings.lancedb_uri)
    where = where_clause(site=site, status=status, environment=environment)
    with read_model(chronicle) as conn:
        chosen = [active_target(conn, kind, settings) for kind in normalise_kinds(kinds)]
    hits: list[Hit] = []
    vectors: dict[tuple[str, int], list[float]] = {}
    for target in chosen:
        table = open_table(db, target.table)
        if table is None or table.count_rows() == 0:
            continue
        key = (target.model, target.dimension)
        if mode != "fts" and key not in vectors:
            vectors[key] = _query_vector(chronicle, target, query)
        if mode == "hybrid":
            builder = (table.search(query_type="hybrid").vector(vectors[key]).text(query)
                       .distance_type("cosine").rerank(RRFReranker(K=RRF_K)))
        elif mode == "vector":
            builder = table.search(vectors[key]).distance_type("cosine")
        else:
            builder = table.search(query, query_type="fts")
        if where:
            builder = builder.where(where, prefilter=True)
        # Each side of a hybrid query is cut at the limit before fusion; ask for more candidates so an item
        # ranked well by both sides is not lost to one ranked first by only one of them.
        for row in builder.limit(max(limit * 4, 20)).to_list():
            score = row.get("_relevance_score")
            if score is None:
                score = row.get("_score") if mode == "fts" else 1.0 - float(row.get("_distance", 1.0))
            hits.append(Hit(row["kind"], row["id"], row["site"], row["environment"], row["status"],
                            float(score or 0.0), row["text"], row["model"]))
    hits.sort(key=lambda h: (-h.score, h.kind, h.id))
    return hits[:limit]
