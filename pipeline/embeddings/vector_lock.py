"""The one-writer rule for the LanceDB tables, across hosts.

LanceDB's ``merge_insert``/``delete`` from concurrent writers conflict (``db.vectors``), and a vectors
pass is several commits (upserts, stale-chunk deletes, the CMS's tables) that another pass must not
interleave, so every vector write runs under one lock. ``db.vectors.writer_lock`` is a file lock: it
holds for the processes of one host. When the tables are on object storage, ``vectors`` workers on
several hosts write the same tables, and a file lock on each host would let them write at once. Then
the lock is also a PostgreSQL session advisory lock in the log's database (every such host reaches it:
a multi-host deployment runs its log there). PostgreSQL drops it with the connection, so a writer
killed mid-pass never leaves it held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from db.vectors import writer_lock

if TYPE_CHECKING:
    from pipeline.settings import Settings

LOCK_NAME = "chronicle_vectors_writer"


def spans_hosts(settings: Settings) -> bool:
    """The tables are shared by hosts (object storage) and the log is where every host can lock."""
    return settings.lancedb_remote and settings.resolved_event_store_url.startswith("postgresql")


@contextmanager
def vectors_lock(settings: Settings) -> Iterator[None]:
    """Exclusive for the whole pass: this host's file lock, then (tables on object storage, log on
    PostgreSQL) the advisory lock named after the tables' URL, so two deployments sharing one database
    but not one bucket do not wait on each other."""
    with writer_lock(settings.lancedb_dir):
        if not spans_hosts(settings):
            yield
            return
        import psycopg

        from pipeline.errors import StoreUnavailable

        from .cache_pg import libpq_url

        try:
            conn = psycopg.connect(libpq_url(settings.resolved_event_store_url), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable("vector writer lock", type(exc).__name__) from None
        try:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{LOCK_NAME}:{settings.lancedb_url}",))
            yield
        finally:
            conn.close()  # the session ends: PostgreSQL releases the lock
