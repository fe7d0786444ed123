"""Redriving an embedding's dead letter: embed that one item again, unless it was deleted since (then
the dead letter is resolved: nothing is left to redo)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.engine import connect
from pipeline.failures.dead_letters import ItemGone
from pipeline.jobs.execution import FAILURE_KEY

if TYPE_CHECKING:
    from pipeline.context import JobContext

_CONTENT_TABLES = {"page": "pages", "section": "section_entries", "post": "posts", "image": "images"}


def _exists(ctx: JobContext, kind: str, item_id: str) -> bool:
    conn = connect(ctx.settings.projection_db_path)
    try:
        return conn.execute(f"SELECT 1 FROM {_CONTENT_TABLES[kind]} WHERE id = ?", (item_id,)).fetchone() is not None
    finally:
        conn.close()


def plan_embedding_redrive(ctx: JobContext, failure: dict[str, Any],
                           event_id: str) -> tuple[str, str, dict[str, Any]]:
    kwargs = failure["kwargs"]
    if kwargs.get("kind") in _CONTENT_TABLES and not _exists(ctx, kwargs["kind"], kwargs["item_id"]):
        raise ItemGone(f"{kwargs['kind']} {kwargs['item_id']} no longer exists")
    return failure["task"], failure["queue"], {**kwargs, FAILURE_KEY: failure["id"]}
