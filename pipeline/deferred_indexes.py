"""Secondary indexes built after a bulk load instead of row by row (used by ``pipeline.replay``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any


class DeferredIndexes:
    """The non-unique secondary indexes of ``tables``, dropped for the bulk load and created after it.

    Maintaining an index row by row costs a B-tree descent per insert (and per update of its columns);
    creating it once sorts the finished table. Unique indexes stay: they enforce constraints, and a
    rebuild must fail where the live projector would. An index whose leading column a handler looks
    rows up by (an ``Update``/``Delete`` ``WHERE``, a ``get``) is created as soon as such a statement is
    prepared (``needed``, the ``Applier``'s ``on_filter``), so no look-up becomes a table scan.
    """

    def __init__(self, conn: sqlite3.Connection, tables: list[str]) -> None:
        #: Where ``needed`` and ``create`` run their statements: ``conn``, or the writer process of a
        #: pipelined rebuild (``pipeline.replay_pipeline``) while it owns the file.
        self.execute: Callable[[str], Any] = conn.execute
        #: table → [(index name, its columns, its CREATE INDEX statement)], in creation order
        self.pending: dict[str, list[tuple[str, tuple[str | None, ...], str]]] = {}
        for table in tables:
            for _seq, name, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
                if unique or origin != "c":  # UNIQUE and PRIMARY KEY indexes are constraints: kept
                    continue
                (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND name=?",
                                      (name,)).fetchone()
                columns = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")').fetchall())
                self.pending.setdefault(table, []).append((name, columns, sql))
        if self.pending:
            conn.execute("BEGIN")
            for indexes in self.pending.values():
                for name, _columns, _sql in indexes:
                    conn.execute(f'DROP INDEX "{name}"')
            conn.execute("COMMIT")

    def needed(self, table: str, columns: tuple[str, ...]) -> None:
        """Create now the pending indexes of ``table`` that lead with one of ``columns``."""
        indexes = self.pending.get(table)
        if not indexes:
            return
        for index in [i for i in indexes if i[1][0] in columns]:
            self.execute(index[2])
            indexes.remove(index)

    def create(self) -> None:
        """Create every index still pending (inside the caller's transaction)."""
        for indexes in self.pending.values():
            for _name, _columns, sql in indexes:
                self.execute(sql)
        self.pending.clear()
