"""Hybrid search: vector similarity over chunks + LanceDB full-text search over items, grouped per item
and fused with (weighted) reciprocal-rank fusion.

Filters (kind, site, status, environment) are pushed down into LanceDB as a prefilter, so a filtered
query still returns ``limit`` matches. Each kind is searched in its *active* table (the one the last
``EmbeddingIndexActivated`` named, else the configured default), with the query embedded by that
table's model; query vectors go through the same content-addressed cache as documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from db.vectors import connect, open_table, sql_literal, table_names

from . import layout
from .config import EmbeddingSettings
from .documents import KINDS, PLURALS
from .ledger import Target, active_target
from .runtime import embedder_for, read_model, vector_cache
from .text import content_hash, truncate

if TYPE_CHECKING:
    from pipeline.context import JobContext

# Fusion, tuned on the labelled WordPress queries (``python -m benchmarks search``): see docs/embeddings.md.
RRF_K = 60
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 1.0
CHUNKS_PER_ITEM = 4


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    id: str
    site: str | None
    environment: str | None
    status: str
    score: float
    text: str  # the best matching chunk of the item (its whole text when it is one chunk)
    model: str
    chunk: int = 0

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


def fuse(rankings: Sequence[tuple[Sequence[str], float]], *, k: float = RRF_K) -> dict[str, float]:
    """Pure: weighted reciprocal-rank fusion of ranked item lists, ``Σ weight / (k + rank)`` (rank from 1).

    Fusing *items* (after grouping chunks), not rows: an item with many matching chunks must not
    outvote one whose single chunk is the best match."""
    scores: dict[str, float] = {}
    for ranked, weight in rankings:
        for rank, item in enumerate(ranked, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


def group_best(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pure: the first (best ranked) row of each item, in rank order: one result per document."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        best.setdefault(row.get("item_id") or row["id"], row)
    return best


_TERM = re.compile(r"\w+", re.UNICODE)


def _best_chunk(table: Any, items: list[str], query: str) -> dict[str, dict[str, Any]]:
    """For full-text matches: the item's chunk sharing most words with the query (the snippet)."""
    if not items or "chunk_text" not in table.schema.names:
        return {}
    terms = {t.lower() for t in _TERM.findall(query)}
    rows = (table.search().where(f"item_id IN ({', '.join(map(sql_literal, items))})")
            .select(["item_id", "chunk", "chunk_text"]).limit(len(items) * 1000).to_list())
    best: dict[str, tuple[int, int, dict[str, Any]]] = {}
    for row in rows:
        overlap = len(terms & {t.lower() for t in _TERM.findall(row["chunk_text"] or "")})
        current = best.get(row["item_id"])
        if current is None or (overlap, -row["chunk"]) > (current[0], current[1]):
            best[row["item_id"]] = (overlap, -row["chunk"], row)
    return {item: row for item, (_, _, row) in best.items()}


def _hit(row: dict[str, Any], score: float, snippet: dict[str, Any] | None = None) -> Hit:
    source = snippet or row
    return Hit(row["kind"], row.get("item_id") or row["id"], row["site"], row["environment"], row["status"],
               float(score), source.get("chunk_text") or row.get("text") or "", row["model"],
               int(source.get("chunk") or 0))


def search(chronicle: JobContext, query: str, *, kinds: Sequence[str] | str | None = None, site: str | None = None,
           status: str | None = None, environment: str | None = None, limit: int = 10,
           mode: str = "hybrid") -> list[Hit]:
    """Best ``limit`` items across ``kinds``, each once; ``mode`` is hybrid, vector or fts.

    Per kind: the vector side ranks chunks and keeps each item's best chunk; the full-text side ranks
    items (their full text is on their first row); hybrid fuses the two item rankings (``fuse``). A
    hit's ``text`` is its best matching chunk.
    """
    settings = chronicle.settings.section(EmbeddingSettings)
    db = connect(chronicle.settings.lancedb_dir)
    where = where_clause(site=site, status=status, environment=environment)
    existing = set(table_names(db))
    with read_model(chronicle) as conn:
        chosen = [(t, layout.search_table(conn, t, existing))
                  for t in (active_target(conn, kind, settings) for kind in normalise_kinds(kinds))]
    hits: list[Hit] = []
    vectors: dict[tuple[str, int], list[float]] = {}
    candidates = max(limit * 4, 20)
    for target, name in chosen:
        table = open_table(db, name) if name in existing else None
        if table is None or table.count_rows() == 0:
            continue
        key = (target.model, target.dimension)
        by_vector: dict[str, dict[str, Any]] = {}
        by_text: dict[str, dict[str, Any]] = {}
        if mode != "fts":
            if key not in vectors:
                vectors[key] = _query_vector(chronicle, target, query)
            builder = table.search(vectors[key]).distance_type("cosine")
            if where:
                builder = builder.where(where, prefilter=True)
            # Several chunks of one item can fill the first places: fetch more rows than items wanted.
            by_vector = group_best(builder.limit(candidates * CHUNKS_PER_ITEM).to_list())
        if mode != "vector":
            builder = table.search(query, query_type="fts")
            if where:
                builder = builder.where(where, prefilter=True)
            by_text = group_best(builder.limit(candidates).to_list())
        if mode == "vector":
            hits.extend(_hit(r, 1.0 - float(r.get("_distance", 1.0))) for r in list(by_vector.values())[:candidates])
            continue
        snippets = _best_chunk(table, [i for i in list(by_text)[:candidates] if i not in by_vector], query)
        if mode == "fts":
            hits.extend(_hit(r, float(r.get("_score") or 0.0), snippets.get(i)) for i, r in by_text.items())
            continue
        scores = fuse([(list(by_vector)[:candidates], VECTOR_WEIGHT), (list(by_text), TEXT_WEIGHT)])
        for item, score in scores.items():
            vector_row = by_vector.get(item)
            row = vector_row or by_text[item]
            hits.append(_hit(row, score, None if vector_row else snippets.get(item)))
    hits.sort(key=lambda h: (-h.score, h.kind, h.id))
    return hits[:limit]
