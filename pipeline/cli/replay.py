"""``chronicle replay``: rebuild projections from the log, blue/green, with progress."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

_terminated: list[int] = []


def _terminate_as_interrupt(signum: int, _frame: object) -> None:
    # SIGTERM (a supervisor stopping us) unwinds like Ctrl-C, so the scratch database is removed. The
    # exception surfaces wherever the main thread is; where that is a finaliser (SQLAlchemy's pool logs
    # and swallows an exception raised while it closes a connection, seen here), it would be lost and the
    # replay would go on, so the signal is also remembered and raised again after the next batch.
    _terminated.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


@app.command()
def replay(
    until: Annotated[str | None, typer.Option(help="Stop at this position, or ISO-8601 time (state as of then).")]
    = None,
    projection: Annotated[list[str] | None, typer.Option("--projection", "-p", help="Only this projection "
                                                          "(repeatable); the others are left as they are.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the rebuilt database here instead of swapping it in. "
                                                "Default with --until: data/sqlite-at-<position>.db.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before replacing the live read model.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Rebuild projections from the log into a fresh database, then swap it in atomically."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from ..api import Chronicle
    from ..replay import rebuild, resolve_until

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    with errors_to_exit_codes(), Chronicle.open(notify=False) as chronicle:
        position = resolve_until(chronicle.store, until)
        live = chronicle.settings.projection_db_path
        if position is not None and output is None:
            output = live.with_name(f"sqlite-at-{position}.db")
        if output is None and not yes:
            if not sys.stdin.isatty():
                console.print("refusing to replace the live read model without --yes (stdin is not a terminal)")
                raise typer.Exit(1)
            typer.confirm(f"Rebuild and replace {live}?", abort=True)
        total = position if position is not None else chronicle.store.head()
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[rate]:>10} ev/s"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=as_json) as progress:
            tasks: dict[str, TaskID] = {}

            def on_progress(name: str, at: int) -> None:
                if _terminated:
                    raise KeyboardInterrupt(f"signal {_terminated[0]}")
                if name not in tasks:
                    tasks[name] = progress.add_task(f"replay {name}", total=total, rate="")
                task = progress.tasks[tasks[name]]
                rate = f"{task.speed:,.0f}" if task.speed else ""
                progress.update(tasks[name], completed=at, rate=rate)

            try:
                report = rebuild(chronicle.store, live, chronicle.registry.projections, projections=projection,
                                 until=position, output=output, on_progress=on_progress,
                                 batch_size=chronicle.settings.replay_batch_size,
                                 writer=chronicle.settings.replay_writer)
            except KeyboardInterrupt:
                console.print("[yellow]interrupted: the live read model is unchanged, scratch files removed")
                raise typer.Exit(130) from None
    summary = {"projections": report.per_projection, "until": report.until, "events": report.events,
               "seconds": round(report.seconds, 3), "events_per_second": round(report.events_per_second),
               "target": str(report.target), "swapped": report.swapped}
    if as_json:
        print_json(summary)
        return
    verb = "swapped into" if report.swapped else "written to"
    console.print(f"replayed {report.events:,} events up to position {report.until:,} in {report.seconds:.2f}s "
                  f"({report.events_per_second:,.0f} events/s); {', '.join(report.projections)} {verb} "
                  f"{report.target}")
