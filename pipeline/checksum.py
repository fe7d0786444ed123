"""A deterministic digest of the read model's content.

Rows are hashed in primary-key order with canonical encoding, one digest per table and one over all
tables. Bookkeeping (checkpoints) is excluded and no column holds wall-clock time of projection, so
the same log yields the same digest whichever path built the tables: incremental, replay, restarts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from db.engine import connect, metadata, projection_tables


def table_digest(conn: Any, table: str) -> tuple[int, str]:
    meta = metadata().tables[table]
    columns = sorted(c.name for c in meta.columns)
    keys = [c.name for c in meta.primary_key.columns]
    sql = (f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM \"{table}\" "
           f"ORDER BY {', '.join(f'{chr(34)}{k}{chr(34)}' for k in keys)}")
    digest = hashlib.sha256(orjson.dumps(columns))
    count = 0
    for row in conn.execute(sql):
        digest.update(orjson.dumps(row))
        digest.update(b"\n")
        count += 1
    return count, digest.hexdigest()


def checksum(db_path: Path, tables: list[str] | None = None) -> dict[str, Any]:
    """``{"sha256": total, "tables": {name: {"rows": n, "sha256": digest}}}``."""
    conn = connect(db_path)
    try:
        conn.execute("BEGIN")  # one snapshot across all tables
        result: dict[str, dict[str, Any]] = {}
        total = hashlib.sha256()
        for table in tables or projection_tables():
            rows, digest = table_digest(conn, table)
            result[table] = {"rows": rows, "sha256": digest}
            total.update(f"{table}:{digest}\n".encode())
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return {"sha256": total.hexdigest(), "tables": result}
