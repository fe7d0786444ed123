"""Core commands: emit, drain, status, checksum, worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer

from ..errors import ConcurrencyConflict, InvalidEvent
from .app import app, console, err_console, errors_to_exit_codes, print_json

# Heavy modules (the facade, settings, rich tables) are imported inside the commands that use
# them: `chronicle --help` and the light commands start without them (tests/test_cli_imports.py).


def _read_envelopes(stream: IO[bytes], lines: list[int]) -> Iterator[dict[str, Any]]:
    """JSON lines → dicts, lazily; records each event's line number for error messages."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        lines.append(number)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"line {number}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise InvalidEvent(f"line {number}: an event must be a JSON object")
        yield value


@app.command()
def emit(
    file: Annotated[str, typer.Argument(help="JSON-lines file of envelopes, or - for stdin.")] = "-",
) -> None:
    """Append events (one JSON envelope per line) as one atomic batch.

    Prints {"appended": N, "duplicates": M, "last_position": P}. On invalid input (exit 2) or a
    version conflict (exit 3) prints a one-line reason and writes nothing from the batch.
    """
    from ..api import Chronicle

    lines: list[int] = []
    with errors_to_exit_codes(), ExitStack() as stack:
        # Appending needs the log and the broker only: no read-model migration, no registry.
        handle = stack.enter_context(Chronicle.open(migrate=False))
        source = sys.stdin.buffer if file == "-" else stack.enter_context(Path(file).open("rb"))
        try:
            result = handle.emit_many(_read_envelopes(source, lines))
        except (InvalidEvent, ConcurrencyConflict) as exc:
            if exc.index is not None and exc.index < len(lines):
                exc.args = (f"line {lines[exc.index]}: {exc}",)
            raise
        print_json(result.to_json())


@app.command()
def drain() -> None:
    """Process everything pending in this process until idle, then exit (cron, scripts, tests)."""
    from ..api import Chronicle
    from ..drain_progress import DrainProgress

    with errors_to_exit_codes(), Chronicle.open(notify=False) as handle:
        with console.status("draining…") as spinner, ExitStack() as stack:
            if console.is_terminal:  # a person is watching: say what the long jobs are doing
                stack.enter_context(DrainProgress(handle.store, handle.settings.projection_db_path,
                                                  spinner.update))
            report = handle.drain()
        projected = ", ".join(f"{name} {count}" for name, count in report.projected.items())
        console.print(f"drained: projected ({projected}), reacted to {report.reacted} events, ran {report.jobs} jobs")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when any lag exceeds --max-lag (health check).")]
    = False,
    max_lag: Annotated[int, typer.Option(help="Largest acceptable lag, in events, for --check.")] = 1000,
    exact: Annotated[bool, typer.Option("--exact", help="Compare every document with the embedding ledger "
                                        "(O(items): seconds on a large site) instead of counting rows.")]
    = False,
) -> None:
    """Log head; projection and subscriber lag; queues; images; failures; embeddings and tokens."""
    from ..api import Chronicle
    from ..settings import Settings
    from ..status import full_status
    from ..status import max_lag as lag_of

    settings = Settings()
    # A look, not a change: the read model is used as it is (a worker or `drain` migrates it), and only
    # created when there is none yet. Answers from aggregate queries unless --exact (docs/operations.md).
    with errors_to_exit_codes(), Chronicle.open(settings, notify=False,
                                                migrate=not settings.projection_db_path.exists()) as handle:
        info = full_status(handle, exact=exact)
    if as_json:
        print_json(info)
    else:
        _print_status(info)
    if check and lag_of(info) > max_lag:
        err_console.print(f"unhealthy: lag {lag_of(info)} > {max_lag}")
        raise typer.Exit(1)


def _print_status(info: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"log head: [bold]{info['head']}[/bold]")
    table = Table("consumer", "checkpoint", "lag", "lag (s)")
    for group in ("projections", "subscribers"):
        for name, entry in info[group].items():
            table.add_row(name, str(entry["checkpoint"]), str(entry["lag"]), f"{entry.get('lag_seconds', 0):.1f}")
    console.print(table)
    queues = info["queues"]
    if queues.get("queues") is not None:
        depths = ", ".join(f"{q} {n}" for q, n in queues["queues"].items())
        console.print(f"queues ({queues['broker']}): {depths}")
        ages = {q: a for q, a in (queues.get("oldest_seconds") or {}).items() if a is not None}
        if ages:
            queue, age = max(ages.items(), key=lambda item: item[1])
            console.print(f"oldest queued job: {age:.1f} s on {queue}")
        else:
            console.print("oldest queued job: none waiting")
    else:
        console.print(f"queues ({queues['broker']}): unavailable — {queues.get('reason')}")
    images = ", ".join(f"{k} {v}" for k, v in sorted(info["images"].items())) or "none"
    console.print(f"images: {images}")
    failures = ", ".join(f"{k} {v}" for k, v in sorted(info["failures"].items())) or "none"
    console.print(f"failures: {failures}")
    emb = info.get("embeddings")
    if emb and "kinds" in emb:
        kinds = ", ".join(f"{k} {v['embedded']}/{v['items']} (pending {v['pending']}, failed {v['failed']})"
                          for k, v in emb["kinds"].items())
        console.print(f"embeddings [{emb.get('provider')}]: {kinds}", markup=False)
        usage = emb.get("usage") or {}
        console.print(f"embedding usage: {usage.get('requests', 0)} requests, {usage.get('tokens', 0)} tokens")


@app.command()
def checksum(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: Annotated[Path | None, typer.Option(help="Digest this database file (e.g. a `replay --until` output).")]
    = None,
) -> None:
    """A deterministic digest of the projection tables (same log → same digest)."""
    if db is not None:
        from ..checksum import checksum as digest_of

        if not db.exists():
            raise typer.BadParameter(f"{db} does not exist", param_hint="--db")
        digest = digest_of(db)
    else:
        from ..api import Chronicle

        with errors_to_exit_codes(), Chronicle.open(notify=False) as handle:
            digest = handle.checksum()
    if as_json:
        print_json(digest)
        return
    for name, entry in digest["tables"].items():
        sys.stdout.write(f"{entry['sha256']}  {entry['rows']:>9}  {name}\n")
    sys.stdout.write(f"{digest['sha256']}  total\n")


@app.command()
def sample(
    events: Annotated[int, typer.Option("--events", "-n", help="How many envelopes to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same events (and ids: re-emitting is a no-op).")] = 7,
) -> None:
    """Print a realistic generated CMS event stream as JSON lines (pipe it into `chronicle emit -`)."""
    from ..sample import generate

    out = sys.stdout.buffer
    for envelope in generate(events, seed=seed):
        out.write(orjson.dumps(envelope) + b"\n")
    out.flush()
