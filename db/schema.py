"""The read model's schema as others need it: its DDL, a Drizzle ``schema.ts``, and a hash per
projection that says which tables a database was built with.

Everything is generated from the SQLModel tables (``db.models`` and each projection's own), so what
``chronicle schema drizzle`` prints is exactly what the projector writes: Drizzle users import it
instead of re-typing the tables (docs/read-model.md).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Boolean, Float, Integer, Numeric, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from .types import JSONText, UnixTime

SCHEMA_TABLE = "projection_schemas"


def _tables() -> list[Table]:
    from .engine import metadata  # every table module registered

    return sorted(metadata().tables.values(), key=lambda t: t.name)


def _table_ddl(table: Table) -> list[str]:
    dialect = sqlite.dialect()
    statements = [str(CreateTable(table).compile(dialect=dialect)).strip()]
    statements += [str(CreateIndex(i).compile(dialect=dialect)).strip()
                   for i in sorted(table.indexes, key=lambda i: i.name or "")]
    return statements


def ddl() -> str:
    """``CREATE TABLE``/``CREATE INDEX`` statements of the whole read model (SQLite), in name order."""
    return "\n\n".join(";\n".join(_table_ddl(t)) + ";" for t in _tables()) + "\n"


@cache
def projection_hash(tables: tuple[str, ...], version: int) -> str:
    """What a projection's tables look like (their DDL) and its handlers' ``version``: when either
    changes, databases built before hold rows this release cannot read or write, and are rebuilt."""
    by_name = {t.name: t for t in _tables()}
    digest = hashlib.sha256(f"v{version}\n".encode())
    for name in sorted(tables):
        for statement in _table_ddl(by_name[name]):
            digest.update(re.sub(r"\s+", " ", statement).encode() + b"\n")
    return digest.hexdigest()[:16]


def recorded_schemas(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute(f"SELECT name, hash FROM {SCHEMA_TABLE}").fetchall())
    except sqlite3.OperationalError:  # a database from before schema versions
        return {}


class ProjectionTables(Protocol):
    """What the schema layer needs of a projection (``pipeline.projection.Projection`` is one)."""

    @property
    def tables(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> int: ...


def record_schemas(conn: sqlite3.Connection, known: Mapping[str, ProjectionTables], names: list[str]) -> None:
    """Record that ``names`` are built with this release's tables (inside the caller's transaction)."""
    for name in names:
        p = known[name]
        conn.execute(f"INSERT INTO {SCHEMA_TABLE} (name, version, hash) VALUES (?, ?, ?) ON CONFLICT (name) "
                     "DO UPDATE SET version=excluded.version, hash=excluded.hash",
                     (name, p.version, projection_hash(p.tables, p.version)))


def live_columns(conn: sqlite3.Connection, table: str) -> set[tuple[str, str]]:
    """``(name, declared type)`` of a table's columns in a database."""
    return {(r[1], r[2].upper()) for r in conn.execute(f'PRAGMA table_info("{table}")')}


def model_columns(table: str) -> set[tuple[str, str]]:
    """``(name, declared type)`` of a table's columns in this release."""
    from .engine import metadata

    dialect = sqlite.dialect()
    return {(c.name, c.type.compile(dialect=dialect).upper()) for c in metadata().tables[table].columns}


# --- Drizzle ---------------------------------------------------------------------------------------


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _ts_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _default(column: Any) -> str:
    default = column.server_default
    if default is None:
        return ""
    text = str(default.arg)
    if isinstance(column.type, Integer) and not isinstance(column.type, UnixTime):
        return f".default({int(text)})"
    return f".default({_ts_string(text)})"


def _column(column: Any, composite_key: bool) -> tuple[str, str]:
    """``(builder, drizzle import)`` for one column."""
    name, kind = _ts_string(column.name), column.type
    if isinstance(kind, UnixTime):
        builder, imported = f'integer({name}, {{ mode: "timestamp" }})', "integer"
    elif isinstance(kind, JSONText):
        builder, imported = f'text({name}, {{ mode: "json" }})', "text"
    elif isinstance(kind, Boolean):
        builder, imported = f'integer({name}, {{ mode: "boolean" }})', "integer"
    elif isinstance(kind, Float | Numeric):
        builder, imported = f"real({name})", "real"
    elif isinstance(kind, Integer):
        builder, imported = f"integer({name})", "integer"
    else:
        builder, imported = f"text({name})", "text"
    if column.primary_key and not composite_key:
        builder += ".primaryKey()"
    elif not column.nullable:
        builder += ".notNull()"
    return builder + _default(column), imported


def drizzle_schema() -> str:
    """A Drizzle ORM ``schema.ts`` (``drizzle-orm/sqlite-core``) for every read-model table."""
    imports = {"sqliteTable"}
    blocks = []
    for table in _tables():
        keys = list(table.primary_key.columns)
        composite = len(keys) > 1
        lines = []
        for column in table.columns:
            builder, imported = _column(column, composite)
            imports.add(imported)
            lines.append(f"\t{camel(column.name)}: {builder},")
        extra = []
        if composite:
            imports.add("primaryKey")
            extra.append(f"primaryKey({{ columns: [{', '.join(f't.{camel(c.name)}' for c in keys)}] }})")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            kind = "uniqueIndex" if index.unique else "index"
            imports.add(kind)
            extra.append(f"{kind}({_ts_string(index.name or '')}).on("
                         f"{', '.join(f't.{camel(c.name)}' for c in index.columns)})")
        body = "\n".join(lines)
        joined = ",\n\t".join(extra)
        tail = f", (t) => [\n\t{joined},\n]" if extra else ""
        name = _ts_string(table.name)
        blocks.append(f"export const {camel(table.name)} = sqliteTable({name}, {{\n{body}\n}}{tail});")
    header = ("// Generated by `chronicle schema drizzle` from Chronicle's read model (SQLModel tables).\n"
              "// Timestamps are Unix seconds (mode: \"timestamp\" -> Date); JSON columns are JSON text.\n"
              f"import {{ {', '.join(sorted(imports))} }} from \"drizzle-orm/sqlite-core\";\n")
    return header + "\n" + "\n\n".join(blocks) + "\n"
