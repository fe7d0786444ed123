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

# Fusion, tuned on the labelled WordPress queries (``python -m benchmarks search``, docs/embeddings.md):
# a small k trusts the first places of each side more (k = 60, the usual default, let items that both
# sides rank mid-list overtake one that a side ranks first); the vector side, which finds paraphrases,
# weighs 1.5× full-text search, which finds exact words.
RRF_K = 10
VECTOR_WEIGHT = 1.5
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


def where_clause(*, site: str | None = None, status: str | None = None, environment: str | None = None,
                 sites: Sequence[str] | None = None) -> str | None:
    """Pure: the SQL prefilter LanceDB evaluates before ranking. ``sites``: only hits of these sites
    (a site-restricted API key's; an empty list matches nothing)."""
    parts = [f"{col} = {sql_literal(v)}" for col, v in (("site", site), ("status", status),
                                                        ("environment", environment)) if v]
    if sites is not None:
        parts.append(f"site IN ({', '.join(sql_literal(s) for s in sites)})" if sites else "false")
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


Key = tuple[str, str]  # kind, item id


def fuse(rankings: Sequence[tuple[Sequence[Key], float]], *, k: float | None = None) -> dict[Key, float]:
    """Pure: weighted reciprocal-rank fusion of ranked item lists, ``Σ weight / (k + rank)`` (rank from 1).

    Fusing *items* (after grouping chunks), not rows: an item with many matching chunks must not
    outvote one whose single chunk is the best match."""
    k = RRF_K if k is None else k
    scores: dict[Key, float] = {}
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
           mode: str = "hybrid", sites: Sequence[str] | None = None) -> list[Hit]:
    """Best ``limit`` items across ``kinds``, each once; ``mode`` is hybrid, vector or fts; ``sites``
    restricts hits to those sites (a site-restricted API key's view).

    The vector side ranks chunks and keeps each item's best chunk; the full-text side ranks items (their
    full text is on their first row). Both rankings are global across kinds (cosine similarity under
    one model, BM25), then hybrid fuses the two *item* rankings (``fuse``): fusing per kind and merging
    the fused scores would tie every kind's first item. A hit's ``text`` is its best matching chunk.
    """
    settings = chronicle.settings.section(EmbeddingSettings)
    db = connect(chronicle.settings.lancedb_uri)
    where = where_clause(site=site, status=status, environment=environment, sites=sites)
    existing = set(table_names(db))
    with read_model(chronicle) as conn:
        chosen = [(t, layout.search_table(conn, t, existing))
                  for t in (active_target(conn, kind, settings) for kind in normalise_kinds(kinds))]
    vectors: dict[tuple[str, int], list[float]] = {}
    candidates = max(limit * 4, 20)
    by_vector: list[tuple[float, Key, dict[str, Any]]] = []
    by_text: list[tuple[float, Key, dict[str, Any]]] = []
    tables: dict[str, Any] = {}
    for target, name in chosen:
        table = open_table(db, name) if name in existing else None
        if table is None or table.count_rows() == 0:
            continue
        tables[target.kind] = table
        key = (target.model, target.dimension)
        if mode != "fts":
            if key not in vectors:
                vectors[key] = _query_vector(chronicle, target, query)
            builder = table.search(vectors[key]).distance_type("cosine")
            if where:
                builder = builder.where(where, prefilter=True)
            # Several chunks of one item can fill the first places: fetch more rows than items wanted.
            for item, row in group_best(builder.limit(candidates * CHUNKS_PER_ITEM).to_list()).items():
                by_vector.append((1.0 - float(row.get("_distance", 1.0)), (target.kind, item), row))
        if mode != "vector":
            builder = table.search(query, query_type="fts")
            if where:
                builder = builder.where(where, prefilter=True)
            for item, row in group_best(builder.limit(candidates).to_list()).items():
                by_text.append((float(row.get("_score") or 0.0), (target.kind, item), row))
    by_vector.sort(key=lambda t: (-t[0], t[1]))
    by_text.sort(key=lambda t: (-t[0], t[1]))
    vector_rows = {k: (score, row) for score, k, row in by_vector[:candidates]}
    text_rows = {k: (score, row) for score, k, row in by_text[:candidates]}
    if mode == "vector":
        scores = {k: score for k, (score, _) in vector_rows.items()}
    elif mode == "fts":
        scores = {k: score for k, (score, _) in text_rows.items()}
    else:
        scores = fuse([(list(vector_rows), VECTOR_WEIGHT), (list(text_rows), TEXT_WEIGHT)])
    best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    # Items found by full-text search alone: their best chunk (for the snippet) is the one sharing most words.
    text_only: dict[str, list[str]] = {}
    for (kind, item), _ in best:
        if (kind, item) not in vector_rows:
            text_only.setdefault(kind, []).append(item)
    snippets = {(kind, item): row for kind, items in text_only.items()
                for item, row in _best_chunk(tables[kind], items, query).items()}
    hits = []
    for k, score in best:
        if k in vector_rows:
            hits.append(_hit(vector_rows[k][1], score))
        else:
            hits.append(_hit(text_rows[k][1], score, snippets.get(k)))
    return hits
