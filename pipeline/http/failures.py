"""Failures (dead letters) as the API and the page show them.

The truth is the ``failures`` projection (``pipeline.failures.dead_letters``, shared with ``chronicle failures``):
one row per failing job or image, fed only by events. A retry appends ``FailureRetryRequested``; the
reactor re-dispatches the job and its outcome arrives as events (``FailureResolved`` or another
failure), so the HTTP layer never runs or queues work itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.failures.dead_letters import list_failures, request_retry

from ..api import Chronicle
from ..settings import Settings
from ..sites import SiteResolver
from .auth import Principal
from .problems import ApiError
from .readmodel import iso

STATUSES = ("open", "retrying", "resolved")
#: The stream of what a dead letter is about, by its kind (an embedding's subject is ``<kind>:<id>``).
_EMBEDDED_STREAMS = {"page": "page", "post": "post", "section": "section-entry", "image": "image"}


def failure_site(row: dict[str, Any], sites: SiteResolver) -> str | None:
    """The site a dead letter belongs to: its image's or its embedded item's; None for other jobs
    (only unrestricted keys see those: their arguments can name anything)."""
    subject = row.get("subject")
    if not subject:
        return None
    if row["kind"] == "image":
        return sites.stream_site(f"image-{subject}")
    if row["kind"] == "embedding":
        kind, _, item = subject.partition(":")
        prefix = _EMBEDDED_STREAMS.get(kind)
        return sites.stream_site(f"{prefix}-{item}") if prefix and item else None
    return None


def failures_json(settings: Settings, *, status: str | None = None, limit: int = 100,
                  include_resolved: bool = True, visible: Callable[[dict[str, Any]], bool] | None = None,
                  ) -> list[dict[str, Any]]:
    """Dead letters as JSON; ``visible`` filters rows (a site-restricted key's) before ``limit`` counts."""
    rows = list_failures(settings.projection_db_path, status=status, limit=None if visible else limit)
    out: list[dict[str, Any]] = []
    for row in rows:
        if not include_resolved and row["status"] == "resolved":
            continue
        if visible is not None and not visible(row):
            continue
        if len(out) == limit:
            break
        out.append({**row, "failed_at": iso(row["failed_at"]), "updated_at": iso(row["updated_at"]),
                    "url": f"/images/{row['subject']}" if row["kind"] == "image" and row["subject"] else None})
    return out


def visible_to(caller: Principal, sites: SiteResolver) -> Callable[[dict[str, Any]], bool] | None:
    """The row filter for ``caller`` (None: it sees every failure)."""
    if caller.unrestricted:
        return None
    return lambda row: caller.sees(failure_site(row, sites))


def retry(chronicle: Chronicle, failure_id: str, *, actor: str | None = None,
          visible: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Ask for a redrive of one failure; 409 when it is already resolved (``UnknownFailure`` → 404)."""
    if visible is not None:
        rows = list_failures(chronicle.settings.projection_db_path, ids=[failure_id])
        if not rows or not visible(rows[0]):
            raise ApiError(404, "not_found", f"no failure '{failure_id}'")
    outcome = request_retry(chronicle, [failure_id], actor=actor)
    if failure_id in outcome.skipped:
        raise ApiError(409, "not_retryable", f"failure '{failure_id}': {outcome.skipped[failure_id]}")
    return {"id": failure_id, "status": "retry_requested"}
