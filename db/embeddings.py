"""The ``embeddings`` projection: what is embedded with which model, usage, reindexes and the active index.

Built only from events (EmbeddingsComputed/Failed, ReindexRequested/Embedded, EmbeddingIndexActivated and
the CMS deletions), so a replay restores it exactly, without calling any provider. The vectors are not
here (see ``pipeline.embeddings.cache``); this is the ledger that says which ones the site uses.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Field, SQLModel

from pipeline.envelope import Recorded

from .changes import Change, Delete, Update, Upsert
from .handlers import Handler, State


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


_USAGE_COLUMNS = ("requests", "tokens", "embedded", "cached", "failed")


def _usage(e: Recorded, state: State, **delta: int) -> Change:
    key = {"model": e.data["model"], "dimension": e.data["dimension"]}
    row = state.get("embedding_usage", key, _USAGE_COLUMNS) or dict.fromkeys(_USAGE_COLUMNS, 0)
    return Upsert("embedding_usage", {**key, **{c: row[c] + delta.get(c, 0) for c in _USAGE_COLUMNS}})


def _deleted(state: State, kind: str, id: str) -> bool:
    return state.get("embedding_tombstones", {"kind": kind, "id": id}, ("position",)) is not None


def _state_rows(e: Recorded, state: State, status: str, error: str | None) -> list[Change]:
    """One ledger row per item, except for items deleted in the meantime.

    An embedding worker loads a text, the CMS deletes the item, then the worker records its outcome:
    the log holds ``…Deleted`` before ``EmbeddingsComputed``. Applying that outcome would resurrect the
    item in the ledger ("embedded", yet no document and no vector row), so a tombstone
    (``embedding_tombstones``) wins over a later outcome until a creation event of the same id lifts it.
    """
    d = e.data
    rows: list[Change] = []
    for item in d["items"]:
        if _deleted(state, item["kind"], item["id"]):
            continue
        key = {"kind": item["kind"], "id": item["id"], "model": d["model"], "dimension": d["dimension"]}
        rows.append(Upsert("embedding_state", {
            **key, "content_hash": item["content_hash"], "parent_id": item.get("parent_id"), "status": status,
            "error": error, "reindex_id": d.get("reindex_id"), "position": e.position}))
    return rows


def embeddings_computed(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    cached = d.get("cached", 0)
    return [*_state_rows(e, state, "embedded", None),
            _usage(e, state, requests=d.get("requests", 0), tokens=d.get("tokens", 0),
                   embedded=len(d["items"]) - cached, cached=cached)]


def embeddings_failed(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    return [*_state_rows(e, state, "failed", d["error"]),
            _usage(e, state, requests=d.get("requests", 0), failed=len(d["items"]))]


def reindex_requested(e: Recorded, _: State) -> Iterable[Change]:
    d = e.data
    return [Upsert("embedding_reindexes", {
        "id": d["id"], "kind": kind, "item_id": d.get("item_id"), "model": d.get("model"),
        "dimension": d.get("dimension"), "force": bool(d.get("force")), "status": "requested", "total": 0,
        "embedded": 0, "cached": 0, "failed": 0, "position": e.position,
    }) for kind in d["kinds"]]


def reindex_embedded(e: Recorded, _: State) -> Iterable[Change]:
    d = e.data
    return [Update("embedding_reindexes", {"id": d["id"], "kind": d["kind"]}, {
        "status": "embedded", "model": d["model"], "dimension": d["dimension"], "total": d["total"],
        "embedded": d["embedded"], "cached": d["cached"], "failed": d["failed"]})]


def index_activated(e: Recorded, _: State) -> Iterable[Change]:
    d = e.data
    return [Upsert("embedding_indexes", {"kind": d["kind"], "model": d["model"], "dimension": d["dimension"],
                                         "table_name": d["table"], "reindex_id": d["id"], "rows": d["rows"]}),
            Update("embedding_reindexes", {"id": d["id"], "kind": d["kind"]}, {"status": "activated"})]


def _forget(kind: str) -> Handler:
    """Deleted content keeps its ledger rows, marked ``deleted``: a deleted section still names the page
    whose text it changed (``parent_id``), and re-creating the same text later costs nothing."""

    def handler(e: Recorded, _: State) -> Iterable[Change]:
        return [Update("embedding_state", {"kind": kind, "id": e.data["id"]}, {"status": "deleted"}),
                Upsert("embedding_tombstones", {"kind": kind, "id": e.data["id"], "position": e.position})]

    return handler


def _revive(kind: str) -> Handler:
    """Re-creating a deleted id lifts its tombstone, so outcomes recorded from now on count again (an
    outcome computed from the old text then at worst records an old hash, which ``needs_embedding``
    sees differ from the new document's)."""

    def handler(e: Recorded, _: State) -> Iterable[Change]:
        return [Delete("embedding_tombstones", {"kind": kind, "id": e.data["id"]})]

    return handler


HANDLERS: dict[str, Handler] = {
    "EmbeddingsComputed": embeddings_computed,
    "EmbeddingsFailed": embeddings_failed,
    "ReindexRequested": reindex_requested,
    "ReindexEmbedded": reindex_embedded,
    "EmbeddingIndexActivated": index_activated,
    "PageDeleted": _forget("page"),
    "SectionEntryDeleted": _forget("section"),
    "PostDeleted": _forget("post"),
    "ImageDeleted": _forget("image"),
    "PageCreated": _revive("page"),
    "SectionEntryCreated": _revive("section"),
    "PostCreated": _revive("post"),
    "ImageUploaded": _revive("image"),
}
TABLES = ("embedding_state", "embedding_tombstones", "embedding_usage", "embedding_indexes", "embedding_reindexes")
