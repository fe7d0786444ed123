"""The typer application and the error → exit-code mapping shared by every command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import typer

from ..errors import ChronicleError, ConcurrencyConflict, InvalidEvent, StoreUnavailable

app = typer.Typer(name="chronicle", help="Event-sourced background processing for a CMS.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A rich ``Console`` made on first use. ``emit`` and the ``--json`` outputs never print through
    it, and importing rich costs ~30 ms of every start (``chronicle emit`` has 0.5 s in all)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # Special methods are looked up on the type, not through ``__getattr__`` (rich's Live uses ``with``).
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)


console: Console = LazyConsole()  # type: ignore[assignment]
err_console: Console = LazyConsole(stderr=True)  # type: ignore[assignment]

EXIT_ERROR = 1  # any other ChronicleError
EXIT_INVALID = 2  # bad input: fix it, do not retry
EXIT_CONFLICT = 3  # expected_version did not match
EXIT_UNAVAILABLE = 4  # the log or read model is unavailable (locked, disk full, server down): retry later

#: Error class → exit code, most specific first: the one place the CLI decides.
EXIT_CODES: tuple[tuple[type[ChronicleError], int], ...] = (
    (ConcurrencyConflict, EXIT_CONFLICT),
    (InvalidEvent, EXIT_INVALID),
    (StoreUnavailable, EXIT_UNAVAILABLE),
    (ChronicleError, EXIT_ERROR),
)


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    sys.stdout.flush()


@contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """One line on stderr and a distinct exit code; never a traceback for a user's mistake."""
    try:
        yield
    except ChronicleError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        code = next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
        raise typer.Exit(code) from None
