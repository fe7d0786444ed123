"""Connections to the projection database (``data/sqlite.db``) with the pragmas it depends on.

WAL lets readers (the CMS, ``chronicle status``, the HTTP API) read while the projector writes;
``busy_timeout`` turns lock contention into waiting instead of ``database is locked`` errors;
``synchronous=NORMAL`` is safe in WAL mode for a projection, because a lost tail is re-applied from the
log (the checkpoint is lost with it, in the same transaction).

SQLAlchemy and the table modules load on first use of ``engine_for``/``create_schema``/``metadata``:
``connect`` and ``count_by`` (the projector's and ``chronicle status``'s path) need only ``sqlite3``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine, MetaData

BUSY_TIMEOUT_MS = 60_000


def connect(path: Path | str) -> sqlite3.Connection:
    """A raw connection for the projector's hot path, in autocommit mode (we issue BEGIN ourselves)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    _apply_pragmas(conn)
    return conn


def _apply_pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def metadata() -> MetaData:
    """``SQLModel.metadata`` with every read-model table registered on it."""
    from sqlmodel import SQLModel

    from . import embedding_models, failure_models, models  # noqa: F401  (register the tables)

    return SQLModel.metadata


def engine_for(path: Path | str) -> Engine:
    """A SQLAlchemy engine for readers and for creating the schema."""
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        _apply_pragmas(dbapi_conn)

    return engine


def create_schema(path: Path | str) -> None:
    """Create every projection table that does not exist yet (idempotent)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_for(path)
    try:
        metadata().create_all(engine)
    finally:
        engine.dispose()


def count_by(path: Path | str, table: str, column: str) -> dict[str, int]:
    """Rows of ``table`` per value of ``column``; empty when the table does not exist yet (a
    projection that never ran), because status readers must not fail on a fresh install."""
    conn = connect(path)
    try:
        return dict(conn.execute(f'SELECT "{column}", count(*) FROM "{table}" GROUP BY "{column}"').fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def projection_tables() -> list[str]:
    """Names of the read-model tables, bookkeeping excluded, in a stable order."""
    return sorted(t for t in metadata().tables if t != "projection_checkpoints")
