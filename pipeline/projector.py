"""The catch-up projector: applies the log to one projection, in order, exactly once.

Each batch runs in one SQLite write transaction (``BEGIN IMMEDIATE``) that

1. reads the projection's checkpoint *inside* the transaction,
2. reads the next events after it from the log (``page_size`` at a time, up to ``batch_size``),
3. applies their row changes, and
4. writes the new checkpoint,

then commits. Because the checkpoint is read under the write lock, two projector tasks racing (Celery
delivers at least once; the sweeper and a wake-up may overlap) serialise on the lock, and the second
sees the first's checkpoint and applies nothing twice. A crash anywhere rolls rows and checkpoint back
together.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from db.changes import Applier
from db.engine import BUSY_TIMEOUT_MS, connect

from . import tracing
from .bulk import paused_gc
from .envelope import Recorded
from .errors import ChronicleError, CorruptEvent, ProjectionError
from .projection import Handler, Projection
from .store import EventStore

log = logging.getLogger("chronicle.projector")

CHECKPOINT_TABLE = "projection_checkpoints"

# WAL checkpointing (found by tests/chaos/test_db_contention.py): a long reader (a CMS report,
# a backup, `chronicle checksum` on a big table) pins its snapshot, so SQLite's automatic PASSIVE
# checkpoints cannot reset the WAL and every projector batch appends to it (≈18 MB for 20 000 events).
# SQLite never shrinks the file afterwards by itself: the -wal stayed at its peak for good. When the
# projector goes idle with a WAL above this size, it checkpoints deliberately (TRUNCATE), without
# waiting on readers, and ``journal_size_limit`` truncates it on the next reset as well.
WAL_TRUNCATE_BYTES = 8 * 2**20


def read_checkpoint(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(f"SELECT position FROM {CHECKPOINT_TABLE} WHERE name=?", (name,)).fetchone()
    return row[0] if row else 0


#: Moves a projection's checkpoint (name, position).
CHECKPOINT_UPSERT = (f"INSERT INTO {CHECKPOINT_TABLE} (name, position) VALUES (?, ?) "
                     "ON CONFLICT (name) DO UPDATE SET position=excluded.position")


def write_checkpoint(conn: sqlite3.Connection, name: str, position: int) -> None:
    conn.execute(CHECKPOINT_UPSERT, (name, position))


@dataclass(slots=True)
class BatchResult:
    applied: int
    checkpoint: int
    per_projection: dict[str, int]


class Projector:
    """Applies one or more projections from ``store`` into the SQLite database at ``db_path``.

    Several projections share one pass over the log (one read and decode per event, one transaction
    per batch) yet keep their own checkpoints: an event is applied to a projection only if it lies
    beyond that projection's checkpoint, so projections at different positions (one just rebuilt,
    say) are each still applied exactly once, in order.
    """

    def __init__(self, store: EventStore, db_path: Path, projections: Projection | Sequence[Projection], *,
                 batch_size: int = 2000, page_size: int | None = None, until: int | None = None,
                 connection: sqlite3.Connection | None = None, traced: bool = False,
                 on_filter: Callable[[str, tuple[str, ...]], None] | None = None) -> None:
        self.store = store
        #: Continue each event's trace (the live projector; a replay or migration rebuild is not traced).
        self.traced = traced
        self.projections = [projections] if isinstance(projections, Projection) else list(projections)
        self.batch_size = batch_size
        #: Events read and decoded at a time (a batch, one transaction, may span several pages): what
        #: bounds memory. A rebuild commits far larger batches than it reads (``pipeline.replay``).
        self.page_size = min(page_size or batch_size, batch_size)
        self.until = until
        self._owns_connection = connection is None
        self.conn = connection if connection is not None else connect(db_path)
        self.db_path = Path(db_path)
        if self._owns_connection:  # WAL checkpointing (see WAL_TRUNCATE_BYTES)
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_TRUNCATE_BYTES}")
        #: the tables handlers may read: the projections' declared ``reads`` (see Applier)
        self.reads = frozenset(t for p in self.projections for t in p.reads)
        self.applier = Applier(self.conn, on_filter=on_filter, readable=self.reads)  # on_filter: see Applier
        self._routes: dict[str, list[tuple[str, Handler]]] = {}
        for projection in self.projections:
            for event_type, handler in projection.handlers.items():
                self._routes.setdefault(event_type, []).append((projection.name, handler))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    def close(self) -> None:
        if self._owns_connection:
            self.conn.close()

    def run_batch(self) -> BatchResult:
        """Apply at most one batch; ``applied == 0`` means every projection here is caught up."""
        with paused_gc():  # a batch decodes thousands of acyclic objects (pipeline.bulk)
            return self._run_batch()

    def _run_batch(self) -> BatchResult:
        try:
            done = self._begin()
            start = last = min(done.values())
            applied, per_projection = 0, dict.fromkeys(done, 0)
            while applied < self.batch_size:
                limit = min(self.page_size, self.batch_size - applied)
                page = self.store.read(after=last, limit=limit, until=self.until)
                if not page:
                    break
                self._apply(page, done)
                first, last = page[0].position, page[-1].position
                for name, checkpoint in done.items():
                    per_projection[name] += (len(page) if checkpoint < first
                                             else sum(1 for e in page if e.position > checkpoint))
                applied += len(page)
                if len(page) < limit:
                    break  # caught up (for now)
            if not applied:
                self._rollback()
                return BatchResult(0, start, per_projection)
            self._commit({name: last for name, checkpoint in done.items() if last > checkpoint})
            return BatchResult(applied, last, per_projection)
        except BaseException:
            self._rollback()
            raise

    # -- the batch's transaction (``pipeline.replay_pipeline`` extends these) ------------------------

    def _begin(self) -> dict[str, int]:
        """Open the batch's write transaction; each projection's checkpoint as it sees it."""
        self.conn.execute("BEGIN IMMEDIATE")
        return {name: read_checkpoint(self.conn, name) for name in self.names}

    def _commit(self, checkpoints: dict[str, int]) -> None:
        """Write the moved checkpoints and commit them with the batch's rows."""
        for name, position in checkpoints.items():
            write_checkpoint(self.conn, name, position)
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _apply(self, batch: list[Recorded], done: dict[str, int], *, traced: bool = True) -> None:
        if traced and self.traced and tracing.enabled():
            self._apply_traced(batch, done)
            return
        routes, apply, state = self._routes, self.applier.apply, self.applier
        lagging = min(done.values()) != max(done.values())
        for event in batch:
            route = routes.get(event.type)
            if route is None:
                continue
            for name, handler in route:
                if lagging and event.position <= done[name]:
                    continue  # this projection already has it
                try:
                    for change in handler(event, state):
                        apply(change)
                except ChronicleError:
                    raise
                except Exception as exc:
                    raise ProjectionError(name, event.position, f"{type(exc).__name__}: {exc}") from exc

    def _apply_traced(self, batch: list[Recorded], done: dict[str, int]) -> None:
        """``_apply`` with a ``chronicle.project`` span per run of events that share a trace context (one
        append, typically), continuing it. The span times the handlers; the commit is the batch's."""
        for parent, events in tracing.trace_groups(batch):
            names = sorted({name for e in events for name, _ in self._routes.get(e.type, ())
                            if e.position > done[name]})
            if not names:
                continue
            with tracing.events_span("chronicle.project", events, parent, {"chronicle.projections": names}):
                self._apply(events, done, traced=False)

    def run_until_idle(self, *, max_events: int | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """Apply batches until caught up (or ``max_events`` read, to keep a task short); returns the
        number of events newly applied per projection."""
        totals = dict.fromkeys(self.names, 0)
        read = 0
        started = time.perf_counter()
        while max_events is None or read < max_events:
            try:
                result = self.run_batch()
            except CorruptEvent:
                log.error("projections %s stopped at a corrupt event", ", ".join(self.names))
                raise
            if result.applied == 0:
                break
            read += result.applied
            for name, count in result.per_projection.items():
                totals[name] += count
            if on_progress is not None:
                on_progress(read, result.checkpoint)
        if read:
            log.info("projections %s applied %d events in %.3fs", ",".join(self.names), read,
                     time.perf_counter() - started)
            self.checkpoint_wal()
        return totals

    def checkpoint_wal(self) -> bool:
        """WAL checkpointing (see ``WAL_TRUNCATE_BYTES``): if the -wal file outgrew the limit, checkpoint
        and truncate it now. ``busy_timeout`` is 0 meanwhile, so a reader still holding an old snapshot
        makes this return at once (the next idle projector tries again) instead of stalling projection.
        Returns whether the WAL was truncated."""
        wal = Path(f"{self.db_path}-wal")
        try:
            if not self._owns_connection or wal.stat().st_size <= WAL_TRUNCATE_BYTES:
                return False
        except FileNotFoundError:
            return False
        conn = self.conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:  # "database is locked": a writer is active; not our failure
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:
            log.info("WAL checkpoint deferred: a reader still holds an old snapshot")
        return not busy


def read_checkpoints(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute(f"SELECT name, position FROM {CHECKPOINT_TABLE}").fetchall())


def checkpoints(db_path: Path) -> dict[str, int]:
    """Every projection's checkpoint (0 for one that never ran)."""
    conn = connect(db_path)
    try:
        return read_checkpoints(conn)
    finally:
        conn.close()
