"""``chronicle failures …``: the dead letters, and redriving them."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

failures_app = typer.Typer(help="Jobs that failed for good, and their redrive.", no_args_is_help=True)
app.add_typer(failures_app, name="failures")


@failures_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    status: Annotated[str | None, typer.Option(help="open, retrying or resolved")] = None,
) -> None:
    """Failures with their error, attempts and the event position that recorded them."""
    from rich.table import Table

    from ..api import Chronicle
    from ..failures.dead_letters import list_failures

    with errors_to_exit_codes(), Chronicle.open(notify=False) as chronicle:
        failures = list_failures(chronicle.settings.projection_db_path, status=status)
    if as_json:
        print_json(failures)
        return
    table = Table("id", "kind", "task", "status", "attempts", "permanent", "error", "position")
    for f in failures:
        table.add_row(f["id"], f["kind"], f["task"], f["status"], str(f["attempts"]), str(f["permanent"]),
                      f["error"][:80], str(f["source_position"]))
    console.print(table)
    console.print(f"{len(failures)} failure(s)")


@failures_app.command("retry")
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Failure ids (see `failures list`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Redrive every open failure.")] = False,
) -> None:
    """Redrive failures: appends FailureRetryRequested; workers (or `chronicle drain`) run the job again."""
    if not ids and not all_:
        raise typer.BadParameter("give failure ids or --all")
    from ..api import Chronicle
    from ..failures.dead_letters import request_retry

    with errors_to_exit_codes(), Chronicle.open() as chronicle:
        outcome = request_retry(chronicle, None if all_ else list(ids or []))
    print_json({"requested": outcome.requested, "skipped": outcome.skipped})
