"""The event log on SQLite (WAL): the write lock is ``BEGIN IMMEDIATE``, taken up front.

A deferred transaction that reads and then writes can fail with ``SQLITE_BUSY`` instead of waiting under
concurrent emitters, so every writer asks for the lock first and waits up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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

    _position_type = "INTEGER"
    _count_tables = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'subscriptions')"

    def __init__(self, url: str, *, synchronous: str = "FULL", busy_timeout: float = 60.0,
                 create: bool = True) -> None:
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        super().__init__(url, create=create)

    def _open(self, url: str) -> None:
        self.path = sqlite_path(url)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the driver opens no transaction of its own; we issue BEGIN (see _begin).
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    _optimistic_error = sqlite3.IntegrityError

    def _driver_errors(self, where: str) -> DriverErrors:
        return SQLiteErrors(where, self.busy_timeout)

    def _begin(self, cur: Any, *, write: bool, lock_log: bool = True) -> None:
        # Every writer takes the database's one write lock up front (the module docstring says why).
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _commit(self, raw: Any, cur: Any) -> None:
        cur.execute("COMMIT")

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


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///PATH`` URL (``sqlite:////abs/path`` for an absolute one, as SQLAlchemy
    spells them, so existing settings keep working)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite" or not rest or "?" in rest:
        raise ValueError(f"unsupported SQLite URL {url!r}: use sqlite:///PATH (a file; no query options)")
    return rest
