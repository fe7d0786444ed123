"""Embedding a set of documents with one model without ever paying twice.

For each distinct text hash: already in the cache → recorded as a cache hit (0 requests); otherwise a
worker claims a batch of hashes (a lease in the cache), embeds it in requests within the API limits,
stores the vectors, and records ``EmbeddingsComputed`` (or ``EmbeddingsFailed``). Several workers
running this on the same documents split the work batch by batch and wait for each other's leases
instead of embedding the same text again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..metrics import metrics
from .batching import batches
from .cache import VectorCache
from .config import EmbeddingSettings
from .documents import Document
from .embedders import Embedder, PermanentEmbeddingError

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.embeddings")

ITEMS_PER_EVENT = 1000
Progress = Callable[[int], None]


@dataclass(slots=True)
class EmbedReport:
    total: int = 0
    embedded: int = 0
    cached: int = 0
    failed: int = 0
    requests: int = 0
    tokens: int = 0
    #: The run stopped at its deadline with texts left (a bounded slice; the caller continues it).
    incomplete: bool = False

    def add(self, other: EmbedReport) -> None:
        for name in ("total", "embedded", "cached", "failed", "requests", "tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.incomplete = self.incomplete or other.incomplete


def _item(doc: Document) -> dict[str, Any]:
    return {"kind": doc.kind, "id": doc.id, "content_hash": doc.content_hash, "parent_id": doc.parent_id}


def record(chronicle: JobContext, event_type: str, model: str, dimension: int, docs: Sequence[Document], *,
           cost: dict[str, int], cached: bool = False, **fields: Any) -> None:
    """Append outcome events, ≤ ITEMS_PER_EVENT items each; the request cost goes on the first one only."""
    for start in range(0, max(len(docs), 1), ITEMS_PER_EVENT):
        chunk = docs[start:start + ITEMS_PER_EVENT]
        data = {"model": model, "dimension": dimension, "items": [_item(d) for d in chunk], **fields}
        data.update({k: (v if start == 0 else 0) for k, v in cost.items()})
        if event_type == "EmbeddingsComputed":
            data["cached"] = len(chunk) if cached else 0
        chronicle.emit(event_type, data, metadata={"actor": "chronicle-embeddings"})


class EmbeddingRun:
    """One pass over ``docs`` with ``embedder``; call ``run()``."""

    def __init__(self, chronicle: JobContext, embedder: Embedder, cache: VectorCache, settings: EmbeddingSettings,
                 *, reindex_id: str | None = None, force: bool = False, on_progress: Progress | None = None,
                 poll_seconds: float = 0.05, deadline: float | None = None) -> None:
        self.chronicle, self.embedder, self.cache, self.settings = chronicle, embedder, cache, settings
        self.reindex_id, self.force, self.on_progress, self.poll = reindex_id, force, on_progress, poll_seconds
        self.report = EmbedReport()
        #: ``time.monotonic()`` after which no new batch is started (a bounded slice); None: no limit.
        self.deadline = deadline

    def run(self, docs: Sequence[Document]) -> EmbedReport:
        model, dim = self.embedder.model, self.embedder.dimension
        self.report.total += len(docs)
        by_hash: dict[str, list[Document]] = {}
        for doc in docs:
            by_hash.setdefault(doc.content_hash, []).append(doc)
        if not self.force:
            self._record_cached(self.cache.has_many(model, dim, by_hash), by_hash)
        batches_done = 0
        while by_hash:
            if self.deadline is not None and batches_done and time.monotonic() >= self.deadline:
                self.report.incomplete = True  # the rest goes to the next slice (found cached or claimed)
                break
            claimed = self.cache.claim(model, dim, list(by_hash), seconds=self.settings.embedding_claim_seconds,
                                       limit=self.settings.claim_batch, skip_cached=not self.force)
            batches_done += 1
            if claimed:
                self._embed(claimed, by_hash)
                continue
            # Everything left is leased by other workers (or was just cached by them): wait, then collect.
            time.sleep(self.poll)
            self._record_cached(self.cache.has_many(model, dim, by_hash), by_hash)
        return self.report

    def _record_cached(self, hits: set[str], by_hash: dict[str, list[Document]]) -> None:
        docs = [d for h in hits for d in by_hash.pop(h, [])]
        if not docs:
            return
        record(self.chronicle, "EmbeddingsComputed", self.embedder.model, self.embedder.dimension, docs,
               cost={"requests": 0, "tokens": 0}, cached=True, reindex_id=self.reindex_id)
        self.report.cached += len(docs)
        metrics().embedding_cache_hits.labels(self._provider, self.embedder.model).inc(len(docs))
        self._progress(len(docs))

    def _embed(self, hashes: list[str], by_hash: dict[str, list[Document]]) -> None:
        s = self.settings
        texts = {h: by_hash[h][0].embed_text for h in hashes}
        for batch in batches(hashes, [texts[h] for h in hashes], max_inputs=s.embedding_batch_size,
                             max_tokens=s.embedding_batch_tokens):
            self._attempt(batch, texts, {h: by_hash.pop(h) for h in batch}, may_split=True)

    def _attempt(self, hashes: list[str], texts: dict[str, str], docs_by_hash: dict[str, list[Document]], *,
                 may_split: bool) -> bool:
        """One request for ``hashes``; True if it (or part of it, after splitting) succeeded.

        A 400 on a batch usually means one bad input, so the batch is halved to isolate it instead of
        failing every neighbour. A half is halved again only while its sibling succeeded; a request-wide
        refusal (wrong model, bad key) therefore stops after ~2·log2(batch) refused requests, which are
        not billed.
        """
        model, dim = self.embedder.model, self.embedder.dimension
        docs = [d for h in hashes for d in docs_by_hash[h]]
        try:
            with tracing.span("chronicle.embed", kind="client", attributes={
                    "chronicle.embedding.provider": self._provider, "chronicle.embedding.model": model,
                    "chronicle.embedding.dimension": dim, "chronicle.embedding.texts": len(hashes)}) as span:
                result = self.embedder.embed([texts[h] for h in hashes])
                if span is not None:
                    span.set_attributes({"chronicle.embedding.tokens": result.tokens,
                                         "chronicle.embedding.requests": result.requests})
        except PermanentEmbeddingError as exc:
            self.report.requests += exc.requests
            metrics().embedding_requests.labels(self._provider, model).inc(exc.requests)
            if exc.splittable and may_split and len(hashes) > 1:
                self._record_requests(exc.requests)
                mid = len(hashes) // 2
                left = self._attempt(hashes[:mid], texts, docs_by_hash, may_split=True)
                right = self._attempt(hashes[mid:], texts, docs_by_hash, may_split=left)
                return left or right
            self.cache.release(model, dim, hashes)
            log.warning("embedding %d items with %s failed: %s", len(docs), model, exc)
            metrics().embedding_errors.labels(self._provider, model).inc()
            record(self.chronicle, "EmbeddingsFailed", model, dim, docs, error=str(exc)[:1900],
                   cost={"requests": exc.requests}, reindex_id=self.reindex_id)
            self.report.failed += len(docs)
            self._progress(len(docs))
            return False
        self.cache.put_many(model, dim, list(zip(hashes, result.vectors, strict=True)), replace=self.force)
        record(self.chronicle, "EmbeddingsComputed", model, dim, docs, reindex_id=self.reindex_id,
               cost={"requests": result.requests, "tokens": result.tokens})
        self.report.embedded += len(docs)
        self.report.requests += result.requests
        self.report.tokens += result.tokens
        m = metrics()
        m.embedding_requests.labels(self._provider, model).inc(result.requests)
        m.embedding_tokens.labels(self._provider, model).inc(result.tokens)
        m.embedding_cost.labels(self._provider, model).inc(
            result.tokens * self.settings.price_per_million(model) / 1_000_000)
        self._progress(len(docs))
        return True

    @property
    def _provider(self) -> str:
        return str(getattr(self.embedder, "provider", "unknown"))

    def _record_requests(self, requests: int) -> None:
        """A refused request that led to a split still counts in usage (as an empty failure)."""
        record(self.chronicle, "EmbeddingsFailed", self.embedder.model, self.embedder.dimension, [],
               error="refused batch split to isolate the bad input", cost={"requests": requests},
               reindex_id=self.reindex_id)

    def _progress(self, n: int) -> None:
        if self.on_progress is not None:
            self.on_progress(n)
