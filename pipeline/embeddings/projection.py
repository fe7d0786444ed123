"""The ``embeddings`` projection: what is embedded with which model, usage, reindexes and the active index.

Built only from events (EmbeddingsComputed/Failed, ReindexRequested/Embedded, EmbeddingIndexActivated and
the CMS deletions), so a replay restores it exactly, without calling any provider. The vectors are not
here (see ``pipeline.embeddings.cache``); this is the ledger that says which ones the site uses.
"""

from __future__ import annotations

from collections.abc import Iterable

from db.changes import Change, Delete, Update, Upsert
from pipeline.envelope import Recorded
from pipeline.failures.projection import open_failure, resolve
from pipeline.projection import Handler, State

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


# -- dead letters (fed into the ``failures`` projection) ----------------------------------------------

RETRY_TASK = "chronicle.embeddings.retry"


def embedding_failure_id(kind: str, item_id: str, model: str, dimension: int) -> str:
    return f"embedding:{model}:{dimension}:{kind}:{item_id}"


def embeddings_failed_letters(e: Recorded, state: State) -> Iterable[Change]:
    """One dead letter per refused item; its redrive embeds that one item again (no ``--force`` of a kind)."""
    d = e.data
    return [open_failure(e, state, id=embedding_failure_id(item["kind"], item["id"], d["model"], d["dimension"]),
                         kind="embedding", subject=f"{item['kind']}:{item['id']}", task=RETRY_TASK,
                         queue="embeddings", kwargs={"kind": item["kind"], "item_id": item["id"],
                                                     "model": d["model"], "dimension": d["dimension"]},
                         error=d["error"])
            for item in d["items"]]


def embeddings_computed_resolves(e: Recorded, _: State) -> Iterable[Change]:
    """An item embedded after all (a redrive, an edit, a forced reindex) closes its dead letter."""
    d = e.data
    return [resolve(e, {"id": embedding_failure_id(item["kind"], item["id"], d["model"], d["dimension"])})
            for item in d["items"]]


def _content_deleted_resolves(kind: str) -> Handler:
    """Deleted content has nothing left to embed: its embedding dead letters close."""

    def handler(e: Recorded, _: State) -> Iterable[Change]:
        return [resolve(e, {"kind": "embedding", "subject": f"{kind}:{e.data['id']}"})]

    return handler


FAILURE_HANDLERS: dict[str, Handler] = {
    "EmbeddingsFailed": embeddings_failed_letters,
    "EmbeddingsComputed": embeddings_computed_resolves,
    "PageDeleted": _content_deleted_resolves("page"),
    "SectionEntryDeleted": _content_deleted_resolves("section"),
    "PostDeleted": _content_deleted_resolves("post"),
    "ImageDeleted": _content_deleted_resolves("image"),
}
