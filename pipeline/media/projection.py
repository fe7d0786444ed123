"""Handlers for the media projection (``media``): the ``images`` and ``image_variants`` tables.

Status moves pending (ImageUploaded) → processing (ImageProcessingStarted) → completed
(ImageProcessed) | failed (ImageProcessingFailed). A late ``Started`` (a retry racing a result) never
moves a finished image back to processing, so the row always shows the last outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from db.changes import Change, Delete, Update, Upsert
from pipeline.envelope import Recorded
from pipeline.failures.projection import open_failure, resolve
from pipeline.projection import Handler, State, event_time


def image_uploaded(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("images", {
        "id": d["id"], "site_id": d.get("site_id"), "filename": d["filename"], "original_path": d["original_path"],
        "mime_type": d["mime_type"], "size": d["size"], "width": None, "height": None, "hash": d.get("hash"),
        "status": "pending", "metadata": d.get("metadata") or {}, "error": None, "created_at": now,
        "updated_at": now,
    })]


def image_deleted(e: Recorded, _: State) -> Iterable[Change]:
    image_id = e.data["id"]
    return [Delete("image_variants", {"image_id": image_id}), Delete("images", {"id": image_id})]


def processing_started(e: Recorded, state: State) -> Iterable[Change]:
    row = state.get("images", {"id": e.data["id"]}, ("status",))
    if row is None or row["status"] in ("completed", "failed"):
        return []
    return [Update("images", {"id": e.data["id"]}, {"status": "processing", "updated_at": event_time(e)})]


def processed(e: Recorded, state: State) -> Iterable[Change]:
    d, image_id = e.data, e.data["id"]
    row = state.get("images", {"id": image_id}, ("metadata",))
    if row is None:
        return []
    meta = _merged(row["metadata"], {"media": d.get("metadata") or {}, "media_config": d.get("config", "")})
    changes: list[Change] = [
        Update("images", {"id": image_id}, {
            "status": "completed", "width": d["width"], "height": d["height"], "hash": d["hash"],
            "metadata": meta, "error": None, "updated_at": event_time(e)}),
        Delete("image_variants", {"image_id": image_id}),
    ]
    changes.extend(Upsert("image_variants", {
        "id": f"{image_id}:{v['width']}:{v['format']}", "image_id": image_id, "width": v["width"],
        "height": v["height"], "format": v["format"], "path": v["path"], "size": v["size"],
    }) for v in d.get("variants", ()))
    return changes


def processing_failed(e: Recorded, state: State) -> Iterable[Change]:
    row = state.get("images", {"id": e.data["id"]}, ("status",))
    if row is None or row["status"] == "completed":
        return []  # a failed backfill leaves the image as it was: its existing variants still serve
    return [Update("images", {"id": e.data["id"]}, {
        "status": "failed", "error": e.data["reason"], "updated_at": event_time(e)})]


def described(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    row = state.get("images", {"id": d["id"]}, ("metadata",))
    if row is None:
        return []
    ai = {"alt_text": d.get("alt_text", ""), "caption": d.get("caption", ""), "tags": d.get("tags", []),
          "model": d.get("model", "")}
    return [Update("images", {"id": d["id"]}, {"metadata": _merged(row["metadata"], {"ai": ai}),
                                               "updated_at": event_time(e)})]


def _merged(current: str | bytes | dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Current metadata (as stored JSON or a dict) with ``extra`` keys replaced."""
    base = orjson.loads(current) if isinstance(current, str | bytes) else dict(current or {})
    base.update(extra)
    return base


HANDLERS: dict[str, Handler] = {
    "ImageUploaded": image_uploaded,
    "ImageDeleted": image_deleted,
    "ImageProcessingStarted": processing_started,
    "ImageProcessed": processed,
    "ImageProcessingFailed": processing_failed,
    "ImageDescribed": described,
}
TABLES = ("images", "image_variants")


# -- dead letters (fed into the ``failures`` projection) ----------------------------------------------

PROCESS_TASK = "chronicle.media.process"


def image_failure_id(image_id: str) -> str:
    return f"image:{image_id}"


def image_processing_failed(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    return [open_failure(e, state, id=image_failure_id(d["id"]), kind="image", subject=d["id"],
                         task=PROCESS_TASK, queue="media", kwargs={"image_id": d["id"]}, error=d["reason"],
                         attempts=d.get("attempts", 1), permanent=d.get("permanent", True))]


def image_processed_resolves(e: Recorded, _: State) -> Iterable[Change]:
    return [resolve(e, {"id": image_failure_id(e.data["id"])})]


FAILURE_HANDLERS: dict[str, Handler] = {
    "ImageProcessingFailed": image_processing_failed,
    "ImageProcessed": image_processed_resolves,
    "ImageDeleted": image_processed_resolves,  # nothing left to process
}
