"""Embedding outcomes and reindex requests as events.

Every result of the (paid) embedding side effect comes back into the log, so the read model of "what is
embedded with which model" is a projection and a replay rebuilds it without one API call.

Vectors themselves are *not* in these events: a 1 536-d vector is ~6 KB binary and ~30 KB as JSON, so a
10 000-section site would add hundreds of MB to the log and a 2 048-input batch would not fit the
1 MB event limit. They live in a content-addressed cache (``data/cache/embeddings``) keyed by
(model, dimension, content hash), which replay never touches. The events carry that key, so the log
says exactly which cache entries the read model depends on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.events.base import EventData, Id, Sha256, Title, event

Kind = Literal["page", "section", "post", "image"]


class EmbeddedItem(EventData):
    """One content item whose text (hashed) has a vector in the cache."""

    kind: Kind
    id: Id
    content_hash: Sha256
    parent_id: Id | None = None
    #: A chunked text's chunk hashes (the cache keys of its vectors); absent when the text is one chunk
    #: (its chunk hash is ``content_hash``). Erasure reads them to delete every vector of an erased text.
    chunk_hashes: list[Sha256] | None = Field(default=None, max_length=256)


@event("EmbeddingsComputed", stream="embeddings", key="model")
class EmbeddingsComputed(EventData):
    """Vectors for ``items`` are in the cache under (model, dimension, content_hash).

    ``requests``/``tokens`` are what this batch cost (0 for cache hits), so cost is auditable from the log.
    """

    model: Title
    dimension: int = Field(ge=1, le=65_536)
    items: list[EmbeddedItem] = Field(max_length=5000)
    requests: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    cached: int = Field(default=0, ge=0)
    reindex_id: Id | None = None


@event("EmbeddingsFailed", stream="embeddings", key="model")
class EmbeddingsFailed(EventData):
    """The provider refused ``items`` permanently (e.g. HTTP 400) or retries ran out; not retried until the
    text changes or a forced reindex asks again."""

    model: Title
    dimension: int = Field(ge=1, le=65_536)
    items: list[EmbeddedItem] = Field(max_length=5000)
    error: Title
    requests: int = Field(default=0, ge=0)
    reindex_id: Id | None = None


@event("ReindexRequested", stream="reindex", key="id")
class ReindexRequested(EventData):
    """Someone asked for (re)embedding: which kinds, optionally one id, optionally another model."""

    id: Id
    kinds: list[Kind] = Field(min_length=1, max_length=4)
    item_id: Id | None = None
    model: Title | None = None
    dimension: int | None = Field(default=None, ge=1, le=65_536)
    force: bool = False
    actor: Title | None = None


@event("ReindexEmbedded", stream="reindex", key="id")
class ReindexEmbedded(EventData):
    """The embedding phase of a reindex finished for ``kind``; the vector table may now be (re)built."""

    id: Id
    kind: Kind
    model: Title
    dimension: int = Field(ge=1, le=65_536)
    total: int = Field(ge=0)
    embedded: int = Field(ge=0)
    cached: int = Field(ge=0)
    failed: int = Field(ge=0)


@event("EmbeddingIndexActivated", stream="reindex", key="id")
class EmbeddingIndexActivated(EventData):
    """Search for ``kind`` now answers from the LanceDB table built with (model, dimension): the swap."""

    id: Id
    kind: Kind
    model: Title
    dimension: int = Field(ge=1, le=65_536)
    table: Title
    rows: int = Field(ge=0)
