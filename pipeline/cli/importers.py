"""``chronicle import …``: content from other systems as events (today: WordPress WXR exports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

if TYPE_CHECKING:
    from ..importers.wxr_report import ImportReport

import_app = typer.Typer(help="Import content from other systems as Chronicle events.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _print_report(report: ImportReport) -> None:
    from rich.table import Table

    table = Table("", "what", "as / why", "count", title="WXR import")
    for verdict, what, detail, count in report.rows():
        colour = "green" if verdict == "mapped" else "yellow"
        table.add_row(f"[{colour}]{verdict}[/{colour}]", what, detail, str(count))
    console.print(table)
    console.print(f"events: {report.events}, appended: {report.appended}, duplicates: {report.duplicates}",
                  highlight=False)


@import_app.command("wxr")
def import_wxr_command(
    file: Annotated[Path, typer.Argument(help="A WordPress export (WXR XML).", exists=True, dir_okay=False)],
    media_dir: Annotated[Path | None, typer.Option("--media-dir", help="Folder holding attachment files by name; "
                                                   "images found there become ImageUploaded.",
                                                   exists=True, file_okay=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Events per atomic append.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Import pages, posts, menus and the site from a WXR file; prints what was mapped and what was skipped.

    Event ids are derived from the export, so running it again appends nothing new.
    """
    from ..api import Chronicle
    from ..importers.wxr_import import import_wxr

    with errors_to_exit_codes(), Chronicle.open() as handle:
        report = import_wxr(handle, file, media_dir=media_dir, batch_size=batch_size)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
