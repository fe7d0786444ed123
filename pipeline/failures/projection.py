"""The ``failures`` projection (dead letters): one row per failing job, fed only by events.

Its own events: ``JobFailed`` (recorded by the job runner for any job that failed for good),
``FailureRetryRequested`` (a redrive: the row is ``retrying``) and ``FailureResolved`` (the redriven
job succeeded). Other subsystems feed it their domain outcomes through ``Registry.extend_projection``,
because those are failures an editor should see with their reason (media: an image that is not an
image; embeddings: a text the provider refused). They build their rows with ``open_failure`` and
``resolve``, so this module names no other subsystem's events, tasks or queues.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from db.changes import Change, Update, Upsert
from pipeline.envelope import Recorded
from pipeline.projection import Handler, State, event_time

TABLES = ("failures",)


def retries_so_far(state: State, failure_id: str) -> int:
    row = state.get("failures", {"id": failure_id}, ("retries",))
    return row["retries"] if row else 0


def open_failure(e: Recorded, state: State, *, id: str, kind: str, subject: str | None, task: str, queue: str,
                 kwargs: dict[str, Any], error: str, attempts: int = 1, permanent: bool = True) -> Upsert:
    """The row of an open dead letter: redriving it runs ``task`` on ``queue`` with ``kwargs``."""
    now = event_time(e)
    return Upsert("failures", {"id": id, "kind": kind, "subject": subject, "task": task, "queue": queue,
                               "kwargs": kwargs, "error": error, "attempts": attempts, "permanent": permanent,
                               "status": "open", "retries": retries_so_far(state, id),
                               "source_position": e.position, "failed_at": now, "updated_at": now})


def resolve(e: Recorded, key: dict[str, Any]) -> Update:
    """Close the dead letter(s) matching ``key`` (an id, or a kind and subject)."""
    return Update("failures", key, {"status": "resolved", "updated_at": event_time(e)})


def job_failed(e: Recorded, state: State) -> Iterable[Change]:
    """A job failed for good. A redrive that fails again reports under the redriven row's id: that row
    keeps its kind and subject (an embedding dead letter stays one), with the new error."""
    d = e.data
    row = state.get("failures", {"id": d["id"]}, ("kind", "subject")) or {"kind": "job", "subject": None}
    return [open_failure(e, state, id=d["id"], kind=row["kind"], subject=row["subject"], task=d["task"],
                         queue=d["queue"], kwargs=d.get("kwargs") or {}, error=d["error"],
                         attempts=d.get("attempts", 1), permanent=d.get("permanent", False))]


def failure_retry_requested(e: Recorded, state: State) -> Iterable[Change]:
    row = state.get("failures", {"id": e.data["id"]}, ("status", "retries"))
    if row is None or row["status"] == "resolved":
        return []
    return [Update("failures", {"id": e.data["id"]},
                   {"status": "retrying", "retries": row["retries"] + 1, "updated_at": event_time(e)})]


def failure_resolved(e: Recorded, _: State) -> Iterable[Change]:
    return [resolve(e, {"id": e.data["id"]})]


HANDLERS: dict[str, Handler] = {
    "JobFailed": job_failed,
    "FailureRetryRequested": failure_retry_requested,
    "FailureResolved": failure_resolved,
}
