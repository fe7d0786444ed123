"""Failures (dead letters) as the API and the page show them.

The truth is the ``failures`` projection (``pipeline.failures.dead_letters``, shared with ``chronicle failures``):
one row per failing job or image, fed only by events. A retry appends ``FailureRetryRequested``; the
reactor re-dispatches the job and its outcome arrives as events (``FailureResolved`` or another
failure), so the HTTP layer never runs or queues work itself.
"""

from __future__ import annotations

from typing import Any

from pipeline.failures.dead_letters import list_failures, request_retry

from ..api import Chronicle
from ..settings import Settings
from .problems import ApiError
from .readmodel import iso

STATUSES = ("open", "retrying", "resolved")


def failures_json(settings: Settings, *, status: str | None = None, limit: int = 100,
                  include_resolved: bool = True) -> list[dict[str, Any]]:
    rows = list_failures(settings.projection_db_path, status=status, limit=limit)
    out = []
    for row in rows:
        if not include_resolved and row["status"] == "resolved":
            continue
        out.append({**row, "failed_at": iso(row["failed_at"]), "updated_at": iso(row["updated_at"]),
                    "url": f"/images/{row['subject']}" if row["kind"] == "image" and row["subject"] else None})
    return out


def retry(chronicle: Chronicle, failure_id: str) -> dict[str, Any]:
    """Ask for a redrive of one failure; 409 when it is already resolved (``UnknownFailure`` → 404)."""
    outcome = request_retry(chronicle, [failure_id])
    if failure_id in outcome.skipped:
        raise ApiError(409, "not_retryable", f"failure '{failure_id}': {outcome.skipped[failure_id]}")
    return {"id": failure_id, "status": "retry_requested"}
