"""Embedding a set of documents with one model without ever paying twice.

The unit is the chunk (``Document.chunks``, see ``chunking``). For each distinct chunk hash: already in
the cache → a cache hit (0 requests); otherwise a worker claims a batch of hashes (a lease in the
cache), embeds it in requests within the API limits and stores the vectors. An item is recorded
(``EmbeddingsComputed``, or ``EmbeddingsFailed`` if a chunk of it is refused) once all its chunks are
cached, so an edit in one paragraph of a long page pays for that paragraph's chunk only. Several workers
running this on the same documents split the work batch by batch and wait for each other's leases
instead of embedding the same text again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..metrics import metrics
from .batching import batches
from .cache import VectorCache
from .chunking import Chunk
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
    #: Chunks sent to the provider (an item has one or more).
    chunks: int = 0
    #: The run stopped at its deadline with texts left (a bounded slice; the caller continues it).
    incomplete: bool = False

    def add(self, other: EmbedReport) -> None:
        for name in ("total", "embedded", "cached", "failed", "requests", "tokens", "chunks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.incomplete = self.incomplete or other.incomplete


def _item(doc: Document) -> dict[str, Any]:
    item: dict[str, Any] = {"kind": doc.kind, "id": doc.id, "content_hash": doc.content_hash,
                            "parent_id": doc.parent_id}
    if len(doc.chunks) > 1:
        item["chunk_hashes"] = [c.hash for c in doc.chunks]
    return item


def record(chronicle: JobContext, event_type: str, model: str, dimension: int, docs: Sequence[Document], *,
           cost: dict[str, int], cached: bool = False, **fields: Any) -> None:
    """Append outcome events, ≤ ITEMS_PER_EVENT items each; the request cost goes on the first one only."""
    if not docs and not any(cost.values()):
        return
    for start in range(0, max(len(docs), 1), ITEMS_PER_EVENT):
        chunk = docs[start:start + ITEMS_PER_EVENT]
        data = {"model": model, "dimension": dimension, "items": [_item(d) for d in chunk], **fields}
        data.update({k: (v if start == 0 else 0) for k, v in cost.items()})
        if event_type == "EmbeddingsComputed":
            data["cached"] = len(chunk) if cached else 0
        chronicle.emit(event_type, data, metadata={"actor": "chronicle-embeddings"})


class EmbeddingRun:
    """One pass over ``docs`` with ``embedder``; call ``run()``.

    The unit of payment is the *chunk* (``Document.chunks``): its text's hash is the cache key, so an
    item whose edit changed one chunk costs that one chunk. An item is recorded (``EmbeddingsComputed``)
    once all of its chunks are in the cache; the event carries the cost of the request that completed it.
    """

    def __init__(self, chronicle: JobContext, embedder: Embedder, cache: VectorCache, settings: EmbeddingSettings,
                 *, reindex_id: str | None = None, force: bool = False, on_progress: Progress | None = None,
                 poll_seconds: float = 0.05, deadline: float | None = None) -> None:
        self.chronicle, self.embedder, self.cache, self.settings = chronicle, embedder, cache, settings
        self.reindex_id, self.force, self.on_progress, self.poll = reindex_id, force, on_progress, poll_seconds
        self.report = EmbedReport()
        #: ``time.monotonic()`` after which no new batch is started (a bounded slice); None: no limit.
        self.deadline = deadline
        self._texts: dict[str, str] = {}  # chunk hash → text, for every chunk still missing
        self._missing: dict[int, set[str]] = {}  # doc index → its chunk hashes not in the cache yet
        self._users: dict[str, set[int]] = {}  # chunk hash → docs waiting for it
        self._docs: list[Document] = []

    def run(self, docs: Sequence[Document]) -> EmbedReport:
        model, dim = self.embedder.model, self.embedder.dimension
        self.report.total += len(docs)
        self._docs = list(docs)
        for i, doc in enumerate(self._docs):
            chunks = doc.chunks or (Chunk(0, doc.embed_text, doc.content_hash),)
            self._missing[i] = {c.hash for c in chunks}
            for c in chunks:
                self._texts[c.hash] = c.text
                self._users.setdefault(c.hash, set()).add(i)
        if not self.force:
            self._arrived(self.cache.has_many(model, dim, self._texts), cost=None)
        batches_done = 0
        while self._texts:
            if self.deadline is not None and batches_done and time.monotonic() >= self.deadline:
                self.report.incomplete = True  # the rest goes to the next slice (found cached or claimed)
                break
            claimed = self.cache.claim(model, dim, list(self._texts), seconds=self.settings.embedding_claim_seconds,
                                       limit=self.settings.claim_batch, skip_cached=not self.force)
            batches_done += 1
            if claimed:
                self._embed(claimed)
                continue
            # Everything left is leased by other workers (or was just cached by them): wait, then collect.
            time.sleep(self.poll)
            self._arrived(self.cache.has_many(model, dim, self._texts), cost=None)
        return self.report

    def _arrived(self, hashes: Iterable[str], *, cost: dict[str, int] | None) -> None:
        """Chunks now in the cache: record the items they complete. ``cost`` None: found cached (free)."""
        complete: list[int] = []
        for h in hashes:
            self._texts.pop(h, None)
            for i in self._users.pop(h, set()):
                missing = self._missing.get(i)
                if missing is not None:
                    missing.discard(h)
                    if not missing:
                        complete.append(i)
                        del self._missing[i]
        docs = [self._docs[i] for i in sorted(complete)]
        model, dim = self.embedder.model, self.embedder.dimension
        if cost is None:
            if not docs:
                return
            record(self.chronicle, "EmbeddingsComputed", model, dim, docs, cost={"requests": 0, "tokens": 0},
                   cached=True, reindex_id=self.reindex_id)
            self.report.cached += len(docs)
            metrics().embedding_cache_hits.labels(self._provider, model).inc(len(docs))
        else:
            # A request that completes no item (a long one spread over several requests) still records its
            # cost, so usage in the log stays exact.
            record(self.chronicle, "EmbeddingsComputed", model, dim, docs, reindex_id=self.reindex_id, cost=cost)
            self.report.embedded += len(docs)
        self._progress(len(docs))

    def _failed(self, hashes: Sequence[str], exc: PermanentEmbeddingError) -> None:
        """The items needing any of ``hashes`` are refused; chunks only they needed are dropped too."""
        model, dim = self.embedder.model, self.embedder.dimension
        victims = sorted({i for h in hashes for i in self._users.get(h, set()) if i in self._missing})
        dropped: list[str] = []
        for i in victims:
            for h in self._missing.pop(i):
                users = self._users.get(h)
                if users is not None:
                    users.discard(i)
                    if not users:
                        del self._users[h]
                        self._texts.pop(h, None)
                        dropped.append(h)
        self.cache.release(model, dim, sorted(set(hashes) | set(dropped)))
        docs = [self._docs[i] for i in victims]
        log.warning("embedding %d items with %s failed: %s", len(docs), model, exc)
        metrics().embedding_errors.labels(self._provider, model).inc()
        record(self.chronicle, "EmbeddingsFailed", model, dim, docs, error=str(exc)[:1900],
               cost={"requests": exc.requests}, reindex_id=self.reindex_id)
        self.report.failed += len(docs)
        self._progress(len(docs))

    def _embed(self, hashes: list[str]) -> None:
        s = self.settings
        for batch in batches(hashes, [self._texts.get(h, "") for h in hashes], max_inputs=s.embedding_batch_size,
                             max_tokens=s.embedding_batch_tokens):
            wanted = [h for h in batch if h in self._texts]  # not dropped by a refusal since the claim
            if len(wanted) < len(batch):
                self.cache.release(self.embedder.model, self.embedder.dimension,
                                   [h for h in batch if h not in self._texts])
            if wanted:
                self._attempt(wanted, may_split=True)

    def _attempt(self, hashes: list[str], *, may_split: bool) -> bool:
        """One request for ``hashes``; True if it (or part of it, after splitting) succeeded.

        A 400 on a batch usually means one bad input, so the batch is halved to isolate it instead of
        failing every neighbour. A half is halved again only while its sibling succeeded; a request-wide
        refusal (wrong model, bad key) therefore stops after ~2·log2(batch) refused requests, which are
        not billed.
        """
        model, dim = self.embedder.model, self.embedder.dimension
        hashes = [h for h in hashes if h in self._texts]
        if not hashes:
            return False
        try:
            with tracing.span("chronicle.embed", kind="client", attributes={
                    "chronicle.embedding.provider": self._provider, "chronicle.embedding.model": model,
                    "chronicle.embedding.dimension": dim, "chronicle.embedding.texts": len(hashes)}) as span:
                result = self.embedder.embed([self._texts[h] for h in hashes])
                if span is not None:
                    span.set_attributes({"chronicle.embedding.tokens": result.tokens,
                                         "chronicle.embedding.requests": result.requests})
        except PermanentEmbeddingError as exc:
            self.report.requests += exc.requests
            metrics().embedding_requests.labels(self._provider, model).inc(exc.requests)
            if exc.splittable and may_split and len(hashes) > 1:
                self._record_requests(exc.requests)
                mid = len(hashes) // 2
                left = self._attempt(hashes[:mid], may_split=True)
                right = self._attempt(hashes[mid:], may_split=left)
                return left or right
            self._failed(hashes, exc)
            return False
        self.cache.put_many(model, dim, list(zip(hashes, result.vectors, strict=True)), replace=self.force)
        self.report.chunks += len(hashes)
        self._arrived(hashes, cost={"requests": result.requests, "tokens": result.tokens})
        self.report.requests += result.requests
        self.report.tokens += result.tokens
        m = metrics()
        m.embedding_requests.labels(self._provider, model).inc(result.requests)
        m.embedding_tokens.labels(self._provider, model).inc(result.tokens)
        m.embedding_cost.labels(self._provider, model).inc(
            result.tokens * self.settings.price_per_million(model) / 1_000_000)
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
