"""The event log on PostgreSQL: the write lock is ``LOCK TABLE events IN EXCLUSIVE MODE``.

The lock conflicts with other writers but not with readers (``ACCESS SHARE``), and it is held until
commit, so positions are allocated and committed in order (see ``sql.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine

from .sql import DriverErrors, SQLEventStore, first_line

#: SQLSTATE classes that mean the server cannot serve us now: connection exception, insufficient
#: resources (disk full, out of memory, too many connections), operator intervention (shutdown, crash
#: recovery, cancelled by a timeout), system error (I/O).
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
LOCK_NOT_AVAILABLE = "55P03"


class PostgresErrors(DriverErrors):
    """The driver's errors that mean "not now": no server, a lost connection, a full disk, a shutdown.

    The driver's classes come from the engine's dialect (psycopg, or psycopg2 for a bare
    ``postgresql://``), so merely importing this module does not load a driver.
    """

    __slots__ = ("lost",)

    def __init__(self, where: str, dbapi: Any) -> None:
        super().__init__(where)
        self.lost: tuple[type[Exception], ...] = (dbapi.OperationalError, dbapi.InterfaceError)

    def reason(self, exc: Exception) -> str | None:
        if not isinstance(exc, self.lost):
            return None
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if sqlstate is None:  # refused, terminated, closed: libpq reports no SQLSTATE
            return f"cannot reach the server: {first_line(exc)}"
        if sqlstate[:2] in UNAVAILABLE_CLASSES or sqlstate == LOCK_NOT_AVAILABLE:
            return f"{first_line(exc)} [SQLSTATE {sqlstate}]"
        return None


class PostgresEventStore(SQLEventStore):
    """``EventStore`` on PostgreSQL (``postgresql+psycopg://…``).

    Connections come from SQLAlchemy's pool, which also reads the URL and picks the driver (psycopg, or
    psycopg2 for a bare ``postgresql://``); statements go to the driver directly (``sql.py``)."""

    engine: Engine

    def _open(self, url: str) -> None:
        self.engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)

    def _describe(self, url: str) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _connect(self) -> Any:
        return self.engine.raw_connection()

    def _driver_errors(self, where: str) -> DriverErrors:
        return PostgresErrors(where, self.engine.dialect.dbapi)

    def _begin(self, cur: Any, *, write: bool, lock_log: bool = True) -> None:
        if write and lock_log:  # anything else runs in the driver's implicit transaction
            cur.execute("LOCK TABLE events IN EXCLUSIVE MODE")

    def _commit(self, raw: Any, cur: Any) -> None:
        raw.commit()

    def close(self) -> None:
        super().close()
        self.engine.dispose()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")
