"""The event log on SQLite (WAL): the write lock is ``BEGIN IMMEDIATE``, taken up front.

A deferred transaction that reads and then writes can fail with ``SQLITE_BUSY`` instead of waiting under
concurrent emitters, so every writer asks for the lock first and waits up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects.sqlite import Insert, insert
from sqlalchemy.engine import Connection

from ..envelope import NewEvent
from .base import AppendResult
from .sql import DriverErrors, SQLEventStore

# Primary result codes (``sqlite_errorcode & 0xff``; extended codes keep them in the low byte).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL = 5, 6, 10, 13


class SQLiteErrors(DriverErrors):
    """sqlite3's errors that mean "not now": locked past the busy timeout, disk full, disk I/O."""

    __slots__ = ("busy_timeout",)

    def __init__(self, where: str, busy_timeout: float) -> None:
        super().__init__(where)
        self.busy_timeout = busy_timeout

    def reason(self, exc: Exception) -> str | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        primary = code & 0xFF
        if primary in (SQLITE_BUSY, SQLITE_LOCKED):
            return f"database is locked (another connection held it past the {self.busy_timeout:g} s busy timeout)"
        if primary == SQLITE_FULL:
            return "database or disk is full"
        if primary == SQLITE_IOERR:
            return f"disk I/O error ({getattr(exc, 'sqlite_errorname', 'SQLITE_IOERR')})"
        return None


class SQLiteEventStore(SQLEventStore):
    """``EventStore`` on a SQLite file in WAL mode.

    ``synchronous`` is the ``PRAGMA synchronous`` of the log (``FULL``: every append is durable);
    ``busy_timeout`` is how long (seconds) a writer waits for the write lock before the append is
    refused with ``StoreUnavailable``.
    """

    def __init__(self, url: str, *, synchronous: str = "FULL", busy_timeout: float = 60.0,
                 create: bool = True) -> None:
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        super().__init__(url, create=create)

    def _make_engine(self, url: str) -> Engine:
        # reset_on_return=None: every checkout ends in our own COMMIT or ROLLBACK (see _dbapi).
        engine = create_engine(url, connect_args={"timeout": self.busy_timeout, "check_same_thread": False},
                               pool_reset_on_return=None)
        synchronous, busy_ms = self.synchronous, int(self.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front (see the module docstring).
            conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

        return engine

    _optimistic_error = sqlite3.IntegrityError

    def _driver_errors(self, where: str) -> DriverErrors:
        return SQLiteErrors(where, self.busy_timeout)

    def _begin(self, cur: Any, *, write: bool) -> None:
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _commit(self, raw: Any, cur: Any) -> None:
        cur.execute("COMMIT")

    def _dialect_insert(self, table: Table) -> Insert:
        return insert(table)

    def _writer(self) -> Connection:
        return self.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE")

    def _append_one(self, e: NewEvent) -> AppendResult:
        """The fast path: the thread's connection and cursor are reused, no context manager."""
        raw = self._raw()
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = raw.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            result = self._insert_or_explain(cur, e)
            cur.execute("COMMIT")
            return result
        except BaseException:
            self._discard(raw)
            raise
