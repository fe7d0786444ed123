"""How far a reindex is (``{kind: {"total": n, "done": m}}``), for ``chronicle status`` and the CLI's bar.

Written by the embedding worker that runs the reindex, read by whoever asks, maybe on another host: so
it lives where the vector cache lives. With the shared cache on PostgreSQL (a multi-host deployment),
in a table beside it; otherwise in a file under this host's data directory. Only a display: losing it
loses nothing (the ledger and the cache say what is done).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .cache import cache_dir
from .runtime import shared_on_postgres

if TYPE_CHECKING:
    from pipeline.context import JobContext

Progress = dict[str, dict[str, int]]

_SCHEMA = ("CREATE TABLE IF NOT EXISTS chronicle_reindex_progress "
           "(id TEXT PRIMARY KEY, progress TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL)")


def progress_path(chronicle: JobContext, reindex_id: str) -> Path:
    """Where a local installation keeps it."""
    return cache_dir(chronicle.settings.resolved_data_dir) / "reindex" / f"{reindex_id}.json"


def write_progress(chronicle: JobContext, reindex_id: str, progress: Progress) -> None:
    if shared_on_postgres(chronicle.settings):
        _on_postgres(chronicle, reindex_id, progress)
        return
    path = progress_path(chronicle, reindex_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(progress))
    tmp.replace(path)


def read_progress(chronicle: JobContext, reindex_id: str) -> Progress:
    if shared_on_postgres(chronicle.settings):
        return _on_postgres(chronicle, reindex_id, None)
    try:
        return orjson.loads(progress_path(chronicle, reindex_id).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}


def _on_postgres(chronicle: JobContext, reindex_id: str, progress: Progress | None) -> Progress:
    """Write ``progress`` (or read, when None): one short connection (a reindex writes once per batch)."""
    import time

    import psycopg

    from pipeline.errors import StoreUnavailable

    from .cache_pg import libpq_url

    try:
        with psycopg.connect(libpq_url(chronicle.settings.resolved_event_store_url), autocommit=True,
                             connect_timeout=10) as conn:
            with conn.transaction():  # concurrent CREATE … IF NOT EXISTS can still collide
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('chronicle_reindex_progress'))")
                conn.execute(_SCHEMA)
            if progress is not None:
                conn.execute("INSERT INTO chronicle_reindex_progress VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                             "SET progress = EXCLUDED.progress, updated = EXCLUDED.updated",
                             (reindex_id, orjson.dumps(progress).decode(), time.time()))
                return progress
            row = conn.execute("SELECT progress FROM chronicle_reindex_progress WHERE id = %s",
                               (reindex_id,)).fetchone()
    except psycopg.OperationalError as exc:
        raise StoreUnavailable("reindex progress", type(exc).__name__) from None
    return {} if row is None else orjson.loads(row[0])
