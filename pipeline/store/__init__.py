"""The event log: one interface (``EventStore``), three backends, chosen by the URL's scheme.

=====================================  =================================================================
``sqlite:///PATH``                     ``SQLiteEventStore`` — the default, a WAL file in the data dir
``postgresql+psycopg://…``             ``PostgresEventStore`` — a shared server for several hosts
``memory://``                          ``InMemoryEventStore`` — tests, programs embedding Chronicle
=====================================  =================================================================

``base`` holds the interface and what every backend shares (decoding, paging), ``sql`` the algorithm
the two SQL backends share; each backend module holds only what differs, including the translation of
its driver's exceptions into ``StoreUnavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import AppendResult, EventStore, Row, decode_row, utc_timestamp
from .memory import InMemoryEventStore

if TYPE_CHECKING:
    from .postgres import PostgresEventStore
    from .sql import SQLEventStore
    from .sqlite import SQLiteEventStore

# The SQL backends (SQLAlchemy, its PostgreSQL dialect) load when first named or opened: a process on
# the default SQLite log never imports the PostgreSQL dialect, and one that only names the interface
# imports neither.
_LAZY = {"PostgresEventStore": ".postgres", "SQLEventStore": ".sql", "SQLiteEventStore": ".sqlite"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AppendResult",
    "EventStore",
    "InMemoryEventStore",
    "PostgresEventStore",
    "Row",
    "SQLEventStore",
    "SQLiteEventStore",
    "decode_row",
    "open_store",
    "utc_timestamp",
]


def open_store(url: str, *, synchronous: str = "FULL", busy_timeout: float = 60.0,
               create: bool = True) -> EventStore:
    """Open (and with ``create`` create if needed) the log at ``url``.

    ``synchronous`` and ``busy_timeout`` (seconds a writer waits for the lock) apply to SQLite only.
    Every ``memory://`` store is a new, empty one.
    """
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    if backend == "sqlite":
        from .sqlite import SQLiteEventStore

        return SQLiteEventStore(url, synchronous=synchronous, busy_timeout=busy_timeout, create=create)
    if backend == "postgresql":
        from .postgres import PostgresEventStore

        return PostgresEventStore(url, create=create)
    if backend == "memory":
        return InMemoryEventStore(url)
    raise ValueError(f"unsupported event store URL scheme '{backend}': "
                     "use sqlite:///PATH, postgresql+psycopg://USER@HOST/DB or memory://")
