"""The ``failures`` projection (dead letters): one row per failing job, fed only by events.

Three sources feed it: the generic ``JobFailed`` that the task wrapper records for any job, and the
domain outcomes that jobs record themselves because they are failures an editor should see, with
their reason: ``ImageProcessingFailed`` (an image that is not an image) and ``EmbeddingsFailed`` (the
provider refused a text; one row per item and model). ``ImageProcessed``, ``EmbeddingsComputed`` and
``FailureResolved`` close rows; ``FailureRetryRequested`` marks them ``retrying``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from pipeline.envelope import Recorded

from .changes import Change, Update, Upsert
from .handlers import Handler, State, event_time
from .types import JSONText, UnixTime

MEDIA_TASK = "chronicle.media.process"
EMBEDDING_RETRY_TASK = "chronicle.embeddings.retry"


class Failure(SQLModel, table=True):
    __tablename__ = "failures"
    id: str = Field(primary_key=True)
    kind: str  # "job" (generic), "image" (media outcome) or "embedding" (a refused text)
    subject: str | None = Field(default=None, index=True)  # the image id; "<kind>:<id>" for an embedding
    task: str
    queue: str
    kwargs: dict[str, Any] = Field(default=None, sa_column=Column("kwargs", JSONText))
    error: str
    attempts: int = 1
    permanent: bool = False
    status: str = Field(default="open", index=True)  # open | retrying | resolved
    retries: int = 0
    source_position: int  # the log position of the event that recorded the failure
    failed_at: datetime = Field(sa_column=Column("failed_at", UnixTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column("updated_at", UnixTime, nullable=False))


def image_failure_id(image_id: str) -> str:
    return f"image:{image_id}"


def embedding_failure_id(kind: str, item_id: str, model: str, dimension: int) -> str:
    return f"embedding:{model}:{dimension}:{kind}:{item_id}"


def _retries_so_far(state: State, failure_id: str) -> int:
    row = state.get("failures", {"id": failure_id}, ("retries",))
    return row["retries"] if row else 0


def job_failed(e: Recorded, state: State) -> Iterable[Change]:
    """A job failed for good. A redrive that fails again reports under the redriven row's id: that row
    keeps its kind and subject (an embedding dead letter stays one), with the new error."""
    d, now = e.data, event_time(e)
    row = state.get("failures", {"id": d["id"]}, ("kind", "subject")) or {"kind": "job", "subject": None}
    return [Upsert("failures", {"id": d["id"], "kind": row["kind"], "subject": row["subject"], "task": d["task"],
                                "queue": d["queue"],
                                "kwargs": d.get("kwargs") or {}, "error": d["error"], "attempts": d.get("attempts", 1),
                                "permanent": d.get("permanent", False), "status": "open",
                                "retries": _retries_so_far(state, d["id"]), "source_position": e.position,
                                "failed_at": now, "updated_at": now})]


def image_processing_failed(e: Recorded, state: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    failure_id = image_failure_id(d["id"])
    return [Upsert("failures", {"id": failure_id, "kind": "image", "subject": d["id"],
                                "task": MEDIA_TASK, "queue": "media", "kwargs": {"image_id": d["id"]},
                                "error": d["reason"], "attempts": d.get("attempts", 1),
                                "permanent": d.get("permanent", True), "status": "open",
                                "retries": _retries_so_far(state, failure_id), "source_position": e.position,
                                "failed_at": now, "updated_at": now})]


def image_processed(e: Recorded, _: State) -> Iterable[Change]:
    return [Update("failures", {"id": image_failure_id(e.data["id"])},
                   {"status": "resolved", "updated_at": event_time(e)})]


def embeddings_failed(e: Recorded, state: State) -> Iterable[Change]:
    """One dead letter per refused item; its redrive embeds that one item again (no ``--force`` of a kind)."""
    d, now = e.data, event_time(e)
    changes: list[Change] = []
    for item in d["items"]:
        failure_id = embedding_failure_id(item["kind"], item["id"], d["model"], d["dimension"])
        changes.append(Upsert("failures", {
            "id": failure_id, "kind": "embedding", "subject": f"{item['kind']}:{item['id']}",
            "task": EMBEDDING_RETRY_TASK,
            "queue": "embeddings", "kwargs": {"kind": item["kind"], "item_id": item["id"], "model": d["model"],
                                              "dimension": d["dimension"]},
            "error": d["error"], "attempts": 1, "permanent": True, "status": "open",
            "retries": _retries_so_far(state, failure_id), "source_position": e.position,
            "failed_at": now, "updated_at": now}))
    return changes


def embeddings_computed(e: Recorded, _: State) -> Iterable[Change]:
    """An item embedded after all (a redrive, an edit, a forced reindex) closes its dead letter."""
    d, now = e.data, event_time(e)
    return [Update("failures", {"id": embedding_failure_id(item["kind"], item["id"], d["model"], d["dimension"])},
                   {"status": "resolved", "updated_at": now}) for item in d["items"]]


def _content_deleted(kind: str) -> Handler:
    """Deleted content has nothing left to embed: its embedding dead letters close."""

    def handler(e: Recorded, _: State) -> Iterable[Change]:
        return [Update("failures", {"kind": "embedding", "subject": f"{kind}:{e.data['id']}"},
                       {"status": "resolved", "updated_at": event_time(e)})]

    return handler


def image_deleted(e: Recorded, state: State) -> Iterable[Change]:
    """A deleted image has nothing left to process or embed: its media and embedding dead letters close."""
    return [Update("failures", {"id": image_failure_id(e.data["id"])},
                   {"status": "resolved", "updated_at": event_time(e)}),
            *_content_deleted("image")(e, state)]


def failure_retry_requested(e: Recorded, state: State) -> Iterable[Change]:
    row = state.get("failures", {"id": e.data["id"]}, ("status", "retries"))
    if row is None or row["status"] == "resolved":
        return []
    return [Update("failures", {"id": e.data["id"]},
                   {"status": "retrying", "retries": row["retries"] + 1, "updated_at": event_time(e)})]


def failure_resolved(e: Recorded, _: State) -> Iterable[Change]:
    return [Update("failures", {"id": e.data["id"]}, {"status": "resolved", "updated_at": event_time(e)})]


HANDLERS: dict[str, Handler] = {
    "JobFailed": job_failed,
    "ImageProcessingFailed": image_processing_failed,
    "ImageProcessed": image_processed,
    "EmbeddingsFailed": embeddings_failed,
    "EmbeddingsComputed": embeddings_computed,
    "PageDeleted": _content_deleted("page"),
    "SectionEntryDeleted": _content_deleted("section"),
    "PostDeleted": _content_deleted("post"),
    "ImageDeleted": image_deleted,
    "FailureRetryRequested": failure_retry_requested,
    "FailureResolved": failure_resolved,
}
TABLES = ("failures",)
