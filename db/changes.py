"""Row changes: what a handler returns, and the one place that turns them into SQL.

Handlers stay pure by describing changes (``Upsert``, ``Update``, ``Delete``) instead of executing
them. ``Applier`` executes them on the projector's connection with statements built once per shape
and cached, because replay runs them millions of times (an ORM object per row is ~10× slower).
Identifiers come from the SQLModel metadata, never from event data: an unknown table or column is a
programming error and raises before any SQL is built.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from .values import to_json_text, to_unix

# SQLAlchemy and SQLModel are imported where the schema is read (an ``Applier`` is built), not here:
# handlers import this module for ``Upsert``/``Update``/``Delete``, and a command that only registers
# projections (``chronicle status``, ``emit``) should not pay for the ORM.


class Upsert(NamedTuple):
    """Insert ``row``, or overwrite the given columns of the row with the same primary key."""

    table: str
    row: dict[str, Any]


class Update(NamedTuple):
    """Set ``values`` on the rows matching ``key`` (no row: nothing happens)."""

    table: str
    key: dict[str, Any]
    values: dict[str, Any]


class Delete(NamedTuple):
    """Delete the rows matching every ``where`` column."""

    table: str
    where: dict[str, Any]


Change = Upsert | Update | Delete
# Tuples, not frozen dataclasses: a replay builds one per row change, and a tuple is built in a third
# of the time. ``Applier.apply`` tells them apart by class, never by comparing them.


def to_sql_value(value: Any) -> Any:
    """Python → SQLite value, canonical so that equal content is equal bytes (checksums)."""
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return to_unix(value)
    return value


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Schema:
    """Column sets, primary keys and the columns whose values need converting, per table, read once
    from the SQLModel metadata."""

    def __init__(self) -> None:
        from sqlalchemy import JSON, Boolean, DateTime

        from .engine import metadata
        from .types import JSONText, UnixTime

        tables = metadata().tables
        self.columns = {name: {c.name for c in t.columns} for name, t in tables.items()}
        self.keys = {name: [c.name for c in t.primary_key.columns] for name, t in tables.items()}
        self.converted = {name: {c.name: _converter(c.type) for c in t.columns
                                 if isinstance(c.type, JSONText | UnixTime | JSON | DateTime | Boolean)}
                          for name, t in tables.items()}

    def check(self, table: str, cols: tuple[str, ...]) -> None:
        known = self.columns.get(table)
        if known is None:
            raise KeyError(f"unknown table {table!r}")
        unknown = [c for c in cols if c not in known]
        if unknown:
            raise KeyError(f"unknown column(s) {unknown} in table {table!r}")

    def conversions(self, table: str, cols: tuple[str, ...]) -> tuple[tuple[int, Any], ...]:
        """Positions of values that need converting, with their converter; the rest go to SQLite as
        they are."""
        converted = self.converted[table]
        return tuple((i, converted[c]) for i, c in enumerate(cols) if c in converted)


def _converter(column_type: Any) -> Any:
    """JSON text columns encode every value (a string too); timestamp columns store Unix seconds."""
    from .types import JSONText, UnixTime

    if isinstance(column_type, JSONText):
        return to_json_text
    if isinstance(column_type, UnixTime):
        return to_unix
    return to_sql_value


def convert_params(convert: tuple[tuple[int, Any], ...], params: list[Any]) -> None:
    """Turn the values at ``convert``'s positions into what SQLite stores (JSON text, Unix seconds)."""
    for i, converter in convert:
        value = params[i]
        if converter is not to_unix or value.__class__ is not int:  # handlers pass times as ints already
            params[i] = converter(value)


class Prepared(NamedTuple):
    sql: str
    #: (position, converter) of the parameters that need converting; converters are module-level
    #: functions, so a statement can be sent to another process (pickled by name)
    convert: tuple[tuple[int, Any], ...]


class Applier:
    """Executes changes on one SQLite connection, inside the caller's transaction.

    Statements are prepared once per *shape* (kind, table, columns) with the positions of the values
    that need converting (JSON, timestamps), so the per-change cost is a dict lookup and one execute.

    ``readable``: the tables ``get`` may read (None: any). The projector passes those its projections
    declare (``Projection.reads``), so a handler reading another table fails in every rebuild alike, not
    only in one that keeps a copy of the declared tables (``pipeline.replay_pipeline``).

    ``on_filter(table, columns)`` is called once per statement shape that finds rows by ``columns``
    (an ``Update``, a ``Delete``, a ``get``) before it first runs: a rebuild that builds secondary
    indexes after the bulk load creates the ones such a statement needs there (``pipeline.replay``).
    """

    def __init__(self, conn: sqlite3.Connection, *,
                 on_filter: Callable[[str, tuple[str, ...]], None] | None = None,
                 readable: frozenset[str] | None = None) -> None:
        self.conn = conn
        self.on_filter = on_filter
        self.readable = readable
        self.cur = conn.cursor()
        self.reader = conn.cursor()  # for ``get``: one cursor kept, not one made per read
        self.schema = _Schema()
        self._prepared: dict[tuple[Any, ...], Prepared] = {}

    def apply(self, change: Change) -> None:
        bound = self.statement(change)
        if bound is not None:
            self.execute(*bound)

    def execute(self, prep: Prepared, params: list[Any]) -> None:
        """Convert ``params`` in place (see ``convert``) and execute ``prep`` with them."""
        convert_params(prep.convert, params)
        self.cur.execute(prep.sql, params)

    def statement(self, change: Change) -> tuple[Prepared, list[Any]] | None:
        """The prepared statement that applies ``change`` and its parameters, not yet converted (None: the
        change changes nothing). ``apply`` converts and executes them here; a rebuild's writer process
        executes them there (``pipeline.replay_pipeline``)."""
        kind = change.__class__
        if kind is Upsert:
            row = change.row  # type: ignore[union-attr]
            shape = ("u", change.table, *row)
            prep = self._prepared.get(shape) or self._prepare(shape, self._upsert_sql, change.table, tuple(row))
            return prep, list(row.values())
        if kind is Update:
            values, key = change.values, change.key  # type: ignore[union-attr]
            if not values:
                return None
            shape = ("p", change.table, *values, "|", *key)
            prep = self._prepared.get(shape) or self._prepare(shape, self._update_sql, change.table, tuple(values),
                                                               tuple(key))
            return prep, [*values.values(), *key.values()]
        where = change.where  # type: ignore[union-attr]
        shape = ("d", change.table, *where)
        prep = self._prepared.get(shape) or self._prepare(shape, self._delete_sql, change.table, tuple(where))
        return prep, list(where.values())

    def get(self, table: str, key: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any] | None:
        """Read one row (``columns`` only): what handlers see as "current rows"."""
        shape = ("g", table, *columns, "|", *key)
        prep = self._prepared.get(shape)
        if prep is None:
            if self.readable is not None and table not in self.readable:
                raise KeyError(f"a handler read table {table!r}, which its projection does not declare in "
                               "Projection.reads")
            prep = self._prepare(shape, self._select_sql, table, columns, tuple(key))
        row = self.reader.execute(prep.sql, list(key.values())).fetchone()
        return dict(zip(columns, row, strict=True)) if row is not None else None

    # -- statement building (once per shape) ----------------------------------------------------------

    def _prepare(self, shape: tuple[Any, ...], build: Any, table: str, *column_groups: tuple[str, ...]) -> Prepared:
        sql = build(table, *column_groups)
        if self.on_filter is not None and shape[0] != "u":
            self.on_filter(table, column_groups[-1])  # the WHERE columns
        convert = self.schema.conversions(table, tuple(c for group in column_groups for c in group))
        if shape[0] in ("d", "g"):
            convert = ()  # keys are plain values
        prepared = self._prepared[shape] = Prepared(sql, convert)
        return prepared

    def _upsert_sql(self, table: str, cols: tuple[str, ...]) -> str:
        self.schema.check(table, cols)
        keys = self.schema.keys[table]
        updates = [c for c in cols if c not in keys]
        conflict = ", ".join(map(_quote, keys))
        action = ("DO UPDATE SET " + ", ".join(f"{_quote(c)}=excluded.{_quote(c)}" for c in updates)
                  if updates else "DO NOTHING")
        return (f"INSERT INTO {_quote(table)} ({', '.join(map(_quote, cols))}) "
                f"VALUES ({', '.join('?' * len(cols))}) ON CONFLICT ({conflict}) {action}")

    def _update_sql(self, table: str, cols: tuple[str, ...], keys: tuple[str, ...]) -> str:
        self.schema.check(table, cols + keys)
        return (f"UPDATE {_quote(table)} SET {', '.join(f'{_quote(c)}=?' for c in cols)} "
                f"WHERE {' AND '.join(f'{_quote(k)}=?' for k in keys)}")

    def _delete_sql(self, table: str, keys: tuple[str, ...]) -> str:
        self.schema.check(table, keys)
        return f"DELETE FROM {_quote(table)} WHERE {' AND '.join(f'{_quote(k)}=?' for k in keys)}"

    def _select_sql(self, table: str, cols: tuple[str, ...], keys: tuple[str, ...]) -> str:
        self.schema.check(table, cols + keys)
        return (f"SELECT {', '.join(map(_quote, cols))} FROM {_quote(table)} "
                f"WHERE {' AND '.join(f'{_quote(k)}=?' for k in keys)}")
