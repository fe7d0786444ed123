"""The event log on SQLAlchemy Core, for SQLite (WAL) and PostgreSQL.

Positions are allocated as ``head + 1 …`` by a writer that holds the log's write lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE … IN EXCLUSIVE MODE``, which still lets readers in).
Appends are therefore serialised, positions are gapless, and — the point on PostgreSQL — a position
becomes visible only after every lower position is committed, so a projector reading ``position > N``
can never skip an event whose transaction committed late. A sequence would allow concurrent writers
but reintroduces that gap bug; a CMS's write rate is far below what one serialised writer sustains.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .envelope import NewEvent, Recorded
from .errors import ConcurrencyConflict, CorruptEvent
from .store import AppendResult
from .upcasting import UPCASTERS, upcast

loads = orjson.loads

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(200), nullable=False, unique=True),
    Column("stream", String(300), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(200), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Index("ix_events_stream_version", "stream", "version", unique=True),
    Index("ix_events_recorded_at", "recorded_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

_COLUMNS = "position, id, stream, version, type, schema_version, data, metadata, recorded_at"
_CHUNK = 500  # bound on IN (...) lists: well under SQLite's and PostgreSQL's parameter limits


def utc_timestamp() -> str:
    """Fixed-width ISO-8601 UTC (``2026-01-02T03:04:05.123456Z``), so timestamps compare correctly as
    strings (``--until``). ``isoformat`` with fixed microseconds is ~3× cheaper than ``strftime``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def decode_row(row: Any) -> Recorded:
    """Row → ``Recorded``, upcast to the current schema. A row that cannot be decoded raises
    ``CorruptEvent`` naming its position: skipping it would silently fork the read model."""
    position = row[0]
    try:
        data = loads(row[6])
        meta = {} if row[7] == "{}" else loads(row[7])  # most events carry no metadata: skip the parse
        if data.__class__ is not dict or meta.__class__ is not dict:
            raise ValueError("payload is not a JSON object")
        version = row[5]
        if UPCASTERS:
            version, data = upcast(row[4], version, data)
    except Exception as exc:  # any decoding failure is corruption of this one row
        raise CorruptEvent(position, f"{type(exc).__name__}: {exc}") from None
    return Recorded(position, row[1], row[2], row[3], row[4], version, data, meta, row[8])


class SQLEventStore:
    """``EventStore`` on SQLite or PostgreSQL; see the module docstring for the locking design."""

    def __init__(self, url: str, *, synchronous: str = "FULL", create: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = self._make_engine(url, synchronous)
        if create:
            metadata.create_all(self.engine)
        self._local = threading.local()
        self._insert = self._sql(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._insert_one = self._sql(
            f"INSERT INTO events ({_COLUMNS}) SELECT (SELECT COALESCE(MAX(position), 0) + 1 FROM events), ?, ?, "
            "(SELECT COALESCE(MAX(version), 0) + 1 FROM events WHERE stream = ?), ?, ?, ?, ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM events WHERE id = ?) "
            "AND (CAST(? AS INTEGER) IS NULL OR CAST(? AS INTEGER) = "
            "(SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?)) RETURNING position")
        self._select_one = self._sql(
            "SELECT (SELECT COALESCE(MAX(position), 0) FROM events), (SELECT position FROM events WHERE id = ?), "
            "(SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?)")

    # -- engine ------------------------------------------------------------------------------------

    def _make_engine(self, url: str, synchronous: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
        # reset_on_return=None: every checkout ends in our own COMMIT or ROLLBACK (see _dbapi).
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_reset_on_return=None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that reads and then writes
            # can fail with SQLITE_BUSY instead of waiting, under concurrent emitters.
            conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

        return engine

    def _writer(self) -> Connection:
        conn = self.engine.connect()
        if self.is_sqlite:
            conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        return conn

    # -- writing -----------------------------------------------------------------------------------

    @contextmanager
    def _dbapi(self, *, write: bool) -> Iterator[Any]:
        """A DBAPI cursor in a transaction (committed on success, rolled back on error).

        The append path speaks plain SQL to the driver: SQLAlchemy's per-statement overhead (~100 µs)
        would otherwise cost more than a durable SQLite commit. Each thread keeps one raw connection
        (checked out of SQLAlchemy's pool once) for the same reason.
        """
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self.engine.raw_connection()
        cur = raw.cursor()
        try:
            if self.is_sqlite:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif write:
                cur.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            yield cur
            if self.is_sqlite:
                cur.execute("COMMIT")
            else:
                raw.commit()
        except BaseException:
            self._local.raw = self._local.cursor = None  # never reuse a connection in an unknown state
            try:
                raw.rollback()
            finally:
                raw.close()
            raise
        finally:
            cur.close()

    def _sql(self, sql: str) -> str:
        return sql if self.is_sqlite else sql.replace("?", "%s")

    def _append_one(self, e: NewEvent) -> AppendResult:
        """The common CMS call, one event, in ONE statement: insert at head + 1 with the next stream
        version unless the id exists or the expected version is wrong, returning the position. Next to
        a durable commit (~150 µs) every extra statement shows. When nothing is inserted, a second
        query tells a duplicate from a conflict (both rare)."""
        if not self.is_sqlite:
            with self._dbapi(write=True) as cur:
                return self._insert_or_explain(cur, e)
        # SQLite fast path: the thread's connection and cursor are reused, no context manager.
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self.engine.raw_connection()
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = raw.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            result = self._insert_or_explain(cur, e)
            cur.execute("COMMIT")
            return result
        except BaseException:
            self._local.raw = self._local.cursor = None
            try:
                raw.rollback()
            finally:
                raw.close()
            raise

    def _insert_or_explain(self, cur: Any, e: NewEvent) -> AppendResult:
        expected = e.expected_version
        cur.execute(self._insert_one, (e.id, e.stream, e.stream, e.type, e.schema_version, e.data_json,
                                       e.metadata_json, utc_timestamp(), e.id, expected, expected, e.stream))
        row = cur.fetchone()
        if row is not None:
            return AppendResult(1, 0, row[0], [row[0]])
        cur.execute(self._select_one, (e.id, e.stream))
        _head, existing, version = cur.fetchone()
        if existing is not None:
            return AppendResult(0, 1, existing, [existing])
        raise ConcurrencyConflict(e.stream, e.expected_version or 0, version, index=0)

    def append(self, new_events: Iterable[NewEvent]) -> AppendResult:
        if isinstance(new_events, list) and len(new_events) == 1:
            return self._append_one(new_events[0])
        result = AppendResult()
        recorded_at = utc_timestamp()
        sql, insert = self._sql, self._insert
        with self._dbapi(write=True) as cur:
            seen: dict[str, int] = {}
            versions: dict[str, int] = {}
            cur.execute("SELECT COALESCE(MAX(position), 0) FROM events")
            head = cur.fetchone()[0]
            for index_base, chunk in _enumerate_chunks(new_events, _CHUNK):
                ids = list({e.id for e in chunk if e.id not in seen})
                if ids:
                    cur.execute(sql(f"SELECT id, position FROM events WHERE id IN ({_marks(len(ids))})"), ids)
                    seen.update(cur.fetchall())
                missing = list({e.stream for e in chunk if e.stream not in versions and e.id not in seen})
                if missing:
                    versions.update(dict.fromkeys(missing, 0))
                    cur.execute(sql(f"SELECT stream, MAX(version) FROM events WHERE stream IN ({_marks(len(missing))}) "
                                    "GROUP BY stream"), missing)
                    versions.update(cur.fetchall())
                rows = []
                for offset, e in enumerate(chunk):
                    if e.id in seen:
                        result.duplicates += 1
                        result.positions.append(seen[e.id])
                        continue
                    current = versions[e.stream]
                    if e.expected_version is not None and e.expected_version != current:
                        raise ConcurrencyConflict(e.stream, e.expected_version, current, index=index_base + offset)
                    head += 1
                    versions[e.stream] = current + 1
                    seen[e.id] = head
                    result.positions.append(head)
                    rows.append((head, e.id, e.stream, current + 1, e.type, e.schema_version,
                                 e.data_json, e.metadata_json, recorded_at))
                if rows:
                    cur.executemany(insert, rows)
                    result.appended += len(rows)
            if result.appended:
                result.last_position = head
        if result.last_position is None and result.positions:
            result.last_position = max(result.positions)
        return result

    # -- reading -----------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._dbapi(write=False) as cur:
            cur.execute(self._sql(sql), params)
            return cur.fetchall()

    def read_raw(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Any]:
        """Undecoded rows: ``events check`` must report bad rows rather than stop at them."""
        if until is None:
            return self._query(f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
                               (after, limit))
        return self._query(f"SELECT {_COLUMNS} FROM events WHERE position > ? AND position <= ? "
                           "ORDER BY position LIMIT ?", (after, until, limit))

    def read(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Recorded]:
        return [decode_row(r) for r in self.read_raw(after, limit, until)]

    def iter_all(self, after: int = 0, until: int | None = None, batch: int = 5000) -> Iterator[Recorded]:
        while True:
            page = self.read(after, batch, until)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].position

    def read_stream(self, stream: str) -> list[Recorded]:
        rows = self._query(f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version", (stream,))
        return [decode_row(r) for r in rows]

    def head(self) -> int:
        return self._query("SELECT COALESCE(MAX(position), 0) FROM events")[0][0]

    def recorded_at_after(self, position: int) -> str | None:
        """When the first event after ``position`` was recorded (None when there is none): the age of
        the oldest event a consumer at ``position`` has not applied yet."""
        rows = self._query("SELECT recorded_at FROM events WHERE position > ? ORDER BY position LIMIT 1", (position,))
        return rows[0][0] if rows else None

    def position_at(self, timestamp: str) -> int:
        return self._query("SELECT COALESCE(MAX(position), 0) FROM events WHERE recorded_at <= ?", (timestamp,))[0][0]

    def stream_version(self, stream: str) -> int:
        return self._query("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?", (stream,))[0][0]

    # -- subscriber checkpoints ----------------------------------------------------------------------

    def subscription_position(self, name: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(subscriptions.c.position).where(subscriptions.c.name == name)
            ).scalar_one_or_none()
        return value or 0

    def set_subscription_position(self, name: str, position: int, *, expected: int | None = None) -> bool:
        with self._writer() as conn, conn.begin():
            if expected is None:
                ins = (sqlite_insert if self.is_sqlite else pg_insert)(subscriptions)
                conn.execute(ins.values(name=name, position=position).on_conflict_do_update(
                    index_elements=["name"], set_={"position": position}))
                return True
            current = conn.execute(
                select(subscriptions.c.position).where(subscriptions.c.name == name)
            ).scalar_one_or_none()
            if (current or 0) != expected:
                return False
            if current is None:
                conn.execute(subscriptions.insert().values(name=name, position=position))
            else:
                conn.execute(update(subscriptions).where(subscriptions.c.name == name).values(position=position))
            return True

    def close(self) -> None:
        raw = getattr(self._local, "raw", None)
        if raw is not None:
            self._local.raw = None
            raw.close()
        self.engine.dispose()


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _enumerate_chunks(items: Iterable[NewEvent], size: int) -> Iterator[tuple[int, list[NewEvent]]]:
    base = 0
    for chunk in _chunks(items, size):
        yield base, chunk
        base += len(chunk)


def open_store(url: str, *, synchronous: str = "FULL") -> SQLEventStore:
    """Open (and create if needed) the log at ``url``."""
    return SQLEventStore(url, synchronous=synchronous)
