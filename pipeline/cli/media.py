"""``chronicle upload FILE…`` and ``chronicle media …`` (backfill, status)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from .app import app, console, err_console, errors_to_exit_codes, print_json

if TYPE_CHECKING:
    from ..api import Chronicle

media_app = typer.Typer(help="The media pipeline: variants, backfill, gc, status.", no_args_is_help=True)
app.add_typer(media_app, name="media")


@app.command()
def upload(
    files: Annotated[list[Path], typer.Argument(help="Image files to upload.", exists=True, dir_okay=False)],
    site: Annotated[str | None, typer.Option("--site", help="site_id of the images.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Process them now, in this process (no worker).")] = False,
) -> None:
    """Store originals content-addressed under data/media/originals and emit ImageUploaded for each.

    Prints one JSON line per file: {id, filename, hash, original_path, mime_type, size}; with --wait,
    also its final status.
    """
    from pipeline.media.upload import upload as upload_one

    from ..api import Chronicle

    with errors_to_exit_codes(), Chronicle.open(notify=not wait) as handle:
        uploaded = [upload_one(handle, path, site_id=site) for path in files]
        statuses: dict[str, dict[str, Any]] = {}
        if wait:
            with console.status("processing…"):
                handle.drain()
            statuses = {row["id"]: row for row in _images(handle, ids=[u["id"] for u in uploaded])}
        for data in uploaded:
            line = {k: data[k] for k in ("id", "filename", "hash", "original_path", "mime_type", "size")}
            if data["id"] in statuses:
                line.update(status=statuses[data["id"]]["status"], error=statuses[data["id"]]["error"])
            print_json(line)


def _images(handle: Chronicle, *, ids: list[str] | None = None, status: str | None = None) -> list[dict[str, Any]]:
    db = sqlite3.connect(handle.settings.projection_db_path)
    db.row_factory = sqlite3.Row
    try:
        sql, args = "SELECT id, original_path, mime_type, hash, status, error, metadata FROM images", []
        if status:
            sql, args = sql + " WHERE status = ?", [status]
        rows = [dict(r) for r in db.execute(sql + " ORDER BY id", args)]
    finally:
        db.close()
    return [r for r in rows if ids is None or r["id"] in ids]


def needs_backfill(row: dict[str, Any], fingerprint: str) -> bool:
    """Processed under another variant configuration than today's (recorded in the image metadata)."""
    meta = orjson.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"] or {}
    return meta.get("media_config") != fingerprint


@media_app.command()
def backfill(
    wait: Annotated[bool, typer.Option("--wait/--no-wait",
                                       help="Run the jobs here with a progress bar (default), or only record "
                                            "them for the media workers.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the images that need it.")] = False,
) -> None:
    """Bring every completed image up to the current variant configuration.

    Each image processed under another configuration gets an ImageBackfillRequested event (a recorded
    job); the media job makes only the variants that are missing on disk and records the new list.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..api import Chronicle
    from ..media.settings import MediaSettings

    settings = MediaSettings()
    fingerprint = settings.render_fingerprint()
    with errors_to_exit_codes(), Chronicle.open(notify=not wait) as handle:
        if wait:
            handle.drain()  # the read model must be current to know what is missing
        todo = [r for r in _images(handle, status="completed") if needs_backfill(r, fingerprint)]
        if dry_run or not todo:
            print_json({"images": len(todo), "config": fingerprint, "requested": 0})
            return
        progress = Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err_console, disable=not wait)
        with progress:
            task = progress.add_task("backfill", total=len(todo))
            for row in todo:
                handle.emit("ImageBackfillRequested", {"id": row["id"], "original_path": row["original_path"],
                                                       "mime_type": row["mime_type"], "hash": row["hash"]})
                if wait:
                    handle.drain()
                progress.advance(task)
        print_json({"images": len(todo), "config": fingerprint, "requested": len(todo)})


@media_app.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    grace: Annotated[float, typer.Option("--grace", min=0, help="Keep files modified within this many seconds "
                                         "(uploads in flight).")] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove the files (original, variants, manifests, AI descriptions) of content no image uses any more.

    Files are shared by uploads of the same bytes, so deleting an image leaves them.
    This collects what the read model no longer names; re-uploading it under a new image id processes it again.
    """
    from pipeline.media.gc import collect

    from ..api import Chronicle

    with errors_to_exit_codes(), Chronicle.open(notify=False) as handle:
        report = collect(handle, grace_seconds=grace, dry_run=dry_run)
    if as_json:
        print_json(report.as_json())
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {report.files} files ({report.bytes / 1e6:.1f} MB) of {report.contents} "
                  "unused contents", highlight=False)


@media_app.command("status")
def media_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """How many images are pending, processing, completed and failed, and the latest failures."""
    from rich.table import Table

    from ..api import Chronicle

    with errors_to_exit_codes(), Chronicle.open(notify=False) as handle:
        rows = _images(handle)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    failures = [{"id": r["id"], "error": r["error"]} for r in rows if r["status"] == "failed"][:20]
    if as_json:
        print_json({"counts": counts, "failures": failures})
        return
    table = Table("status", "images")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    console.print(table)
    for failure in failures:
        console.print(f"[red]failed[/red] {failure['id']}: {failure['error']}", highlight=False)
