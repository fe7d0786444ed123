"""The typer application and the error → exit-code mapping shared by every command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import typer
from rich.console import Console

from ..errors import ChronicleError, ConcurrencyConflict, InvalidEvent

app = typer.Typer(name="chronicle", help="Event-sourced background processing for a CMS.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err_console = Console(stderr=True)

EXIT_INVALID = 2
EXIT_CONFLICT = 3
EXIT_ERROR = 1


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


@contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """One line on stderr and a distinct exit code; never a traceback for a user's mistake."""
    try:
        yield
    except ConcurrencyConflict as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFLICT) from None
    except InvalidEvent as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    except ChronicleError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
