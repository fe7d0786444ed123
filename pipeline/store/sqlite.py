"""The event log on SQLite (WAL): the write lock is ``BEGIN IMMEDIATE``, taken up front.

A deferred transaction that reads and then writes can fail with ``SQLITE_BUSY`` instead of waiting under
concurrent emitters, so every writer asks for the lock first and waits up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..envelope import NewEvent
from .base import AppendResult, utc_timestamp
from .sql import _COLUMNS, DriverErrors, SQLEventStore

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
            # A batch is inserted inside a SAVEPOINT (``_insert_optimistically``); SQLite keeps the
            # pages it may have to restore in a sub-journal, by default a temporary *file*. In memory
            # it is a few pages per 500-event chunk: measured, a batched append went from 12.7 (26.5
            # with the disk busy) to 10.8 µs per event, level with inserting without a savepoint.
            conn.execute("PRAGMA temp_store=MEMORY")
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

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One statement needs no ``BEGIN``/``COMMIT``: SQLite runs it in a read transaction of its own
        (autocommit), so a read is one call into the driver instead of three."""
        with self._errors:
            raw = self._raw()
            try:
                return raw.execute(sql, params).fetchall()
            except BaseException:
                self._discard(raw)
                raise

    #: One event with no expected version: a plain ``INSERT … VALUES``, the stream's next version a
    #: scalar subquery, a duplicate id refused by the UNIQUE index. Measured per durable append on a
    #: quiet disk, the conditional ``INSERT … SELECT … WHERE NOT EXISTS … RETURNING`` cost ~25 µs more
    #: than a plain insert: it reads the table it writes (SQLite stages the row in a temporary table)
    #: and RETURNING buffers its output in another. Where ``position`` is the rowid (logs created since
    #: it is ``INTEGER PRIMARY KEY``) SQLite assigns max + 1 itself and ``lastrowid`` reads it back;
    #: an older log's ``BIGINT`` position keeps the subquery and RETURNING.
    _insert_next_rowid = (f"INSERT INTO events ({_COLUMNS}) VALUES (NULL, ?, ?, "
                          "(SELECT COALESCE(MAX(version), 0) + 1 FROM events WHERE stream = ?), ?, ?, ?, ?, ?)")
    _insert_next_returning = (f"INSERT INTO events ({_COLUMNS}) VALUES ((SELECT COALESCE(MAX(position), 0) + 1 "
                              "FROM events), ?, ?, (SELECT COALESCE(MAX(version), 0) + 1 FROM events "
                              "WHERE stream = ?), ?, ?, ?, ?, ?) RETURNING position")
    _position_is_rowid: bool | None = None  # found out on the first single append

    def _insert_or_explain(self, cur: Any, e: NewEvent) -> AppendResult:
        if e.expected_version is not None:
            return super()._insert_or_explain(cur, e)
        rowid = self._position_is_rowid
        if rowid is None:
            cur.execute("SELECT type, pk FROM pragma_table_info('events') WHERE name = 'position'")
            rowid = self._position_is_rowid = tuple(cur.fetchone() or ()) == ("INTEGER", 1)
        params = (e.id, e.stream, e.stream, e.type, e.schema_version, e.data_json, e.metadata_json, utc_timestamp())
        try:
            # Under BEGIN IMMEDIATE nothing else writes, so the stream version is free: only a duplicate
            # id fails the insert, and SQLite then undoes just this statement.
            if rowid:
                cur.execute(self._insert_next_rowid, params)
                position = cur.lastrowid
            else:
                cur.execute(self._insert_next_returning, params)
                position = cur.fetchone()[0]
        except sqlite3.IntegrityError:
            return self._explain_refusal(cur, e)
        return AppendResult(1, 0, position, [position])

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
