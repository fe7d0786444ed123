"""The ``embeddings`` projection's tables: the ledger of what is embedded with which model, usage,
reindexes and the active index (the handlers are in ``pipeline.embeddings.projection``)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class EmbeddingState(SQLModel, table=True):
    """One item's embedding under one (model, dimension): the hash of the text it was computed from."""

    __tablename__ = "embedding_state"
    kind: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    dimension: int = Field(primary_key=True)
    content_hash: str
    parent_id: str | None = None
    status: str = "embedded"  # embedded | failed | deleted
    error: str | None = None
    reindex_id: str | None = None
    position: int = 0


class EmbeddingTombstone(SQLModel, table=True):
    """An item deleted in the CMS (until an event re-creates the id): outcomes recorded later are ignored.

    Separate from ``embedding_state`` because a deletion names no model: an item deleted before its
    first outcome has no ledger row to mark."""

    __tablename__ = "embedding_tombstones"
    kind: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    position: int = 0


class EmbeddingUsage(SQLModel, table=True):
    """Running cost per (model, dimension): requests, tokens, items embedded, cache hits, failures."""

    __tablename__ = "embedding_usage"
    model: str = Field(primary_key=True)
    dimension: int = Field(primary_key=True)
    requests: int = 0
    tokens: int = 0
    embedded: int = 0
    cached: int = 0
    failed: int = 0


class EmbeddingIndex(SQLModel, table=True):
    """Which LanceDB table search uses for a kind (absent: the configured default model)."""

    __tablename__ = "embedding_indexes"
    kind: str = Field(primary_key=True)
    model: str
    dimension: int
    table_name: str
    reindex_id: str
    rows: int = 0


class EmbeddingReindex(SQLModel, table=True):
    """One reindex request, per kind: requested → embedded → activated."""

    __tablename__ = "embedding_reindexes"
    id: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    item_id: str | None = None
    model: str | None = None
    dimension: int | None = None
    force: bool = False
    status: str = "requested"
    total: int = 0
    embedded: int = 0
    cached: int = 0
    failed: int = 0
    position: int = 0
