"""Read-model migrations without hand work: a projection whose tables changed is rebuilt from the log.

Every projection records the hash of its tables' DDL (and its handlers' version) in
``projection_schemas`` (``db.schema``). When a release opens a ``data/sqlite.db`` built by another
release, each projection whose recorded hash differs (or, for a database from before schema hashes,
whose tables' columns or column types differ from this release's) is rebuilt blue/green with ``chronicle replay``'s
machinery: a scratch copy is built from the log, with progress on the ``chronicle.migrations`` logger
(shown on stderr), and swapped in with one write transaction. Until that commit, readers (the CMS)
keep reading the old tables; projections whose tables did not change keep their rows.

Only one process migrates at a time (a lock file beside the database); the others wait, then find the
hashes current. Stop workers of the previous release first: they would write old-shape rows.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from db.engine import connect, create_schema
from db.schema import live_columns, model_columns, projection_hash, record_schemas, recorded_schemas

from .projection import Projection
from .store import EventStore

if TYPE_CHECKING:
    from .replay import WriterMode

log = logging.getLogger("chronicle.migrations")

PROGRESS_EVERY_SECONDS = 5.0


def _existing_tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def stale_projections(db_path: Path, known: Mapping[str, Projection]) -> list[str]:
    """Projections whose tables in ``db_path`` are not this release's."""
    if not db_path.exists():
        return []
    conn = connect(db_path)
    try:
        recorded = recorded_schemas(conn)
        existing = _existing_tables(conn)
        stale = []
        for name, p in known.items():
            have = recorded.get(name)
            if have is not None:
                if have != projection_hash(p.tables, p.version):
                    stale.append(name)
            elif any(t in existing and live_columns(conn, t) != model_columns(t) for t in p.tables):
                stale.append(name)  # from before schema hashes, and its tables differ
        return stale
    finally:
        conn.close()


@contextmanager
def _migration_lock(db_path: Path) -> Iterator[None]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{db_path}.migrate.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(store: EventStore, db_path: Path, known: Mapping[str, Projection], *,
            batch_size: int = 5000, writer: WriterMode = "auto") -> list[str]:
    """Bring ``db_path`` to this release's schema; returns the projections that were rebuilt.

    Cheap when nothing changed (one read of ``projection_schemas`` and the table list), so every
    ``Chronicle`` runs it on open.
    """
    from .replay import rebuild

    stale = stale_projections(db_path, known)
    with _migration_lock(db_path):
        if stale:
            stale = stale_projections(db_path, known)  # another process may have migrated while we waited
        if stale:
            head = store.head()
            names = ", ".join(stale)
            log.warning("read model: the tables of %s changed in this release; rebuilding them from the log "
                        "(%d events). Readers keep the old tables until the swap.", names, head)
            last = [time.monotonic()]

            def progress(_name: str, at: int) -> None:
                if time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS:
                    last[0] = time.monotonic()
                    log.warning("read model: rebuilding %s: %d/%d events", names, at, head)

            report = rebuild(store, db_path, known, projections=stale, on_progress=progress,
                             batch_size=batch_size, writer=writer)
            log.warning("read model: %s rebuilt for the new schema (%d events in %.1fs) and swapped in",
                        names, report.events, report.seconds)
        create_schema(db_path)
        _record_fresh(db_path, known)
    return stale


def _record_fresh(db_path: Path, known: Mapping[str, Projection]) -> None:
    """Projections with no recorded hash now have this release's tables (created empty, or checked)."""
    conn = connect(db_path)
    try:
        missing = [n for n in known if n not in recorded_schemas(conn)]
        if missing:
            conn.execute("BEGIN IMMEDIATE")
            record_schemas(conn, known, missing)
            conn.execute("COMMIT")
    finally:
        conn.close()
