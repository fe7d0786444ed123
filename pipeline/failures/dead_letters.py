"""Dead letters for people: list failures and ask for a redrive (CLI and HTTP share these).

A redrive appends ``FailureRetryRequested`` carrying the exact job to run; the reactor dispatches it
like any other job. A failure that is already resolved is not redriven: asking again changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from db.engine import connect, count_by
from pipeline.errors import NotFound
from pipeline.jobs.execution import FAILURE_KEY

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.failures")

COLUMNS = ("id", "kind", "subject", "task", "queue", "kwargs", "error", "attempts", "permanent", "status",
           "retries", "source_position", "failed_at", "updated_at")


class UnknownFailure(NotFound):
    """No failure with that id."""


def list_failures(db_path: Path, *, status: str | None = None, ids: list[str] | None = None,
                  limit: int | None = 1000) -> list[dict[str, Any]]:
    """Failures, newest first: all of them, those with ``status``, or those in ``ids``; at most ``limit``
    rows (None: all of them)."""
    conn = connect(db_path)
    try:
        sql = f"SELECT {', '.join(COLUMNS)} FROM failures"
        where: list[str] = []
        params: list[Any] = []
        if status:
            where.append("status = ?")
            params.append(status)
        if ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(orjson.dumps(ids).decode())
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY source_position DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the projection has not been created yet
        return []
    finally:
        conn.close()
    out = []
    for row in rows:
        item = dict(zip(COLUMNS, row, strict=True))
        item["kwargs"] = orjson.loads(item["kwargs"]) if item["kwargs"] else {}
        item["permanent"] = bool(item["permanent"])
        out.append(item)
    return out


def counts(db_path: Path) -> dict[str, int]:
    return count_by(db_path, "failures", "status")


@dataclass
class RetryOutcome:
    requested: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class ItemGone(NotFound):
    """The failed work was about content that has been deleted since: nothing is left to redo."""


def _job_for(ctx: JobContext, failure: dict[str, Any], event_id: str) -> tuple[str, str, dict[str, Any]]:
    """The job a redrive runs: the subsystem that owns this kind of failure plans it (media needs the
    upload's facts and a fresh cause), else the recorded job runs again, marked as a redrive."""
    planner = ctx.registry.redrive_planners.get(failure["kind"])
    if planner is not None:
        return planner(ctx, failure, event_id)
    return failure["task"], failure["queue"], {**failure["kwargs"], FAILURE_KEY: failure["id"]}


def request_retry(chronicle: JobContext, ids: list[str] | None = None, *, actor: str | None = None) -> RetryOutcome:
    """Redrive the given failures (default: every open one). Resolved ones are skipped; one whose
    content was deleted since is resolved instead (there is nothing left to redo). ``actor`` goes into
    the events' metadata (the HTTP API's key)."""
    db_path = chronicle.settings.projection_db_path
    found = list_failures(db_path, ids=ids, limit=None) if ids is not None else list_failures(
        db_path, status="open", limit=None)
    known = {f["id"]: f for f in found}
    wanted = ids if ids is not None else list(known)
    outcome = RetryOutcome()
    envelopes = []
    for failure_id in wanted:
        failure = known.get(failure_id)
        if failure is None:
            raise UnknownFailure(f"no failure with id {failure_id!r}")
        if failure["status"] == "resolved":
            outcome.skipped[failure_id] = "already resolved"
            continue
        # One redrive per recorded failure: the id names the failure event being redriven, so a double
        # click (or two operators) appends one request; once the redrive fails again, a new failure
        # event (a new position) can be redriven in turn.
        event_id = f"{failure_id}:retry:{failure['source_position']}"
        try:
            task, queue, kwargs = _job_for(chronicle, failure, event_id)
        except ItemGone as exc:
            envelopes.append({"id": f"{failure_id}:gone:{failure['source_position']}", "type": "FailureResolved",
                              "data": {"id": failure_id}})
            outcome.skipped[failure_id] = f"{exc}; resolved"
            continue
        envelopes.append({"id": event_id, "type": "FailureRetryRequested",
                          "data": {"id": failure_id, "task": task, "queue": queue, "kwargs": kwargs}})
        outcome.requested.append(failure_id)
    if envelopes:
        if actor is not None:
            envelopes = [{**e, "metadata": {"actor": actor}} for e in envelopes]
        result = chronicle.emit_many(envelopes)
        if result.duplicates:
            log.info("%d redrive request(s) were already recorded", result.duplicates)
    return outcome
