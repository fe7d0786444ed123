"""Redriving an image's dead letter: the media job records its own outcome events, so it needs the
upload's facts and a fresh cause (its events are then new ones, not duplicates of the failed attempt's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.engine import connect
from pipeline.failures.dead_letters import UnknownFailure

if TYPE_CHECKING:
    from pipeline.context import JobContext


def plan_image_redrive(ctx: JobContext, failure: dict[str, Any], event_id: str) -> tuple[str, str, dict[str, Any]]:
    conn = connect(ctx.settings.projection_db_path)
    try:
        row = conn.execute("SELECT original_path, mime_type, hash FROM images WHERE id = ?",
                           (failure["subject"],)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise UnknownFailure(f"image {failure['subject']} no longer exists")
    return failure["task"], failure["queue"], {"image_id": failure["subject"], "original_path": row[0],
                                               "mime_type": row[1], "hash": row[2], "cause": event_id}
