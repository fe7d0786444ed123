"""Column types of the read model, as the CMS's Drizzle schema declares them.

- ``UnixTime``: ``integer("created_at", { mode: "timestamp" })`` — whole Unix **seconds** in an INTEGER
  column (Drizzle multiplies by 1000 into a ``Date``). Python readers get an aware UTC ``datetime``.
- ``JSONText``: ``text("metadata", { mode: "json" })`` — canonical JSON (sorted keys, no spaces) in a
  TEXT column. TEXT, not SQLAlchemy's ``JSON`` (whose ``JSON`` declared type has NUMERIC affinity in
  SQLite and would turn the JSON text ``1.0`` into a number).

The projector writes through ``db.changes.Applier``, which uses ``to_unix`` and ``to_json_text`` below;
these types do the same for ORM readers and writers, so both paths store the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Integer, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator
from sqlmodel.sql.sqltypes import AutoString

from .values import to_json_text, to_unix

__all__ = ["JSONText", "UnixTime", "to_json_text", "to_unix"]


class UnixTime(TypeDecorator[datetime]):
    """INTEGER Unix seconds (Drizzle ``mode: "timestamp"``)."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        return to_unix(value)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(int(value), UTC)


class JSONText(TypeDecorator[Any]):
    """TEXT holding JSON (Drizzle ``mode: "json"``)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return to_json_text(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else orjson.loads(value)


@compiles(AutoString, "sqlite")
def _text_in_sqlite(_type: Any, _compiler: Any, **_kw: Any) -> str:
    # Drizzle's ``text()`` columns are declared TEXT; SQLModel's default VARCHAR has the same (TEXT)
    # affinity in SQLite, but ``chronicle schema sql`` should read like the CMS's own migrations.
    return "TEXT"
