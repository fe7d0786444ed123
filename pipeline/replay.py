"""Blue/green rebuilds of the read model from the log.

The rebuild writes a *scratch* database next to the live one (``sqlite.db.rebuild-<pid>``), tuned for
bulk writes (no fsync, no rollback journal: a crash only loses scratch). When it is complete it
is copied into the live database with SQLite's backup API in ONE write transaction on the live file:
readers (WAL) keep their snapshot until that commit and then see the whole new state, never a half
one. A file rename would be cheaper but unsafe in WAL mode: processes that still hold the old file
open would keep writing a ``-wal`` file that new readers of the renamed file then replay.

The scratch build is a bulk load: its connection holds the file exclusively and keeps no rollback
journal (a failed build is thrown away, never rolled back); the rebuilt tables' non-unique secondary
indexes are dropped before the load and created once after it (``DeferredIndexes``), except those a
handler's ``Update``/``Delete``/``get`` looks rows up by, which are created when such a statement is
first prepared. Checkpoints are still written in the same transaction as the rows of their batch. On
two cores a large rebuild executes its SQL in a second process (``pipeline.replay_pipeline``).

A failed or interrupted rebuild (exception, Ctrl-C, SIGTERM) removes its scratch file; a ``kill -9``
leaves one behind, which the next rebuild removes (its pid is gone). The live file is never touched
before the final copy.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from db.engine import connect, create_schema
from db.schema import record_schemas

from . import replay_pipeline
from .deferred_indexes import DeferredIndexes
from .errors import ChronicleError
from .owners import pid_alive
from .projection import Projection
from .projector import CHECKPOINT_TABLE, Projector
from .replay_writer import scratch_connection
from .store import EventStore

#: Events per transaction in the scratch build. Large: the scratch file has no readers and no fsync, so
#: a commit only costs writing the batch's pages out, and fewer commits write the hot pages fewer times.
REPLAY_BATCH = 200_000
#: Events read and decoded at a time within a transaction: what bounds the replay's memory, whatever
#: the batch (the page cache bounds the dirty pages: with no journal SQLite may spill them mid-batch).
REPLAY_PAGE = 20_000
#: Below this many events, ``writer="auto"`` rebuilds in one process: starting the writer process and
#: sending it the statements costs more than the second core gives back on a small log.
PIPELINE_MIN_EVENTS = 50_000
Progress = Callable[[str, int], None]
WriterMode = Literal["auto", "process", "inline"]


def uses_writer_process(mode: WriterMode, events: int) -> bool:
    """Whether a rebuild of ``events`` executes its SQL in a second process (``pipeline.replay_pipeline``):
    ``auto`` does when this process may run on two cores or more and the log is large enough."""
    if mode != "auto":
        return mode == "process"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores >= 2 and events >= PIPELINE_MIN_EVENTS


@dataclass
class ReplayReport:
    projections: list[str]
    until: int
    events: int = 0
    seconds: float = 0.0
    target: Path | None = None
    swapped: bool = False
    per_projection: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def scratch_path(live: Path) -> Path:
    return live.with_name(f"{live.name}.rebuild-{os.getpid()}")


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def clean_stale_scratch(live: Path) -> list[Path]:
    """Remove scratch files of rebuilds whose process is gone (killed with -9, power loss)."""
    removed = []
    for path in live.parent.glob(f"{live.name}.rebuild-*"):
        match = re.fullmatch(rf"{re.escape(live.name)}\.rebuild-(\d+)", path.name)
        if match and not pid_alive(int(match.group(1))):
            _remove_db_files(path)
            removed.append(path)
    return removed


def resolve_until(store: EventStore, until: str | None) -> int | None:
    """``--until`` as a position (digits) or an ISO-8601 time (the last event recorded at or before)."""
    if until is None:
        return None
    if until.isdigit():
        return int(until)
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise ChronicleError(f"--until {until!r} is neither a position nor an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return store.position_at(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def copy_database(source: Path, target: Path) -> None:
    """Copy ``source`` into ``target`` atomically for ``target``'s readers (one write transaction)."""
    src = sqlite3.connect(str(source))
    dst = connect(target)
    try:
        src.backup(dst)  # pages=-1: all pages in one step, one transaction on the target
        # Keep the WAL from holding a 2nd copy, without waiting: a reader still on its old snapshot (the
        # CMS mid-request) blocks a TRUNCATE checkpoint, and the projector's idle checkpoint retries.
        dst.execute("PRAGMA busy_timeout=0")
        with contextlib.suppress(sqlite3.OperationalError):
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        dst.close()
        src.close()


def rebuild(store: EventStore, live: Path, known: Mapping[str, Projection], *,
            projections: list[str] | None = None, until: int | None = None,
            output: Path | None = None, on_progress: Progress | None = None,
            batch_size: int = REPLAY_BATCH, writer: WriterMode = "auto") -> ReplayReport:
    """Rebuild ``projections`` (default: all ``known``, e.g. ``chronicle.registry.projections``) from the
    log, up to ``until`` (default: the head).

    With ``output`` the result is written there and the live database is left alone (point-in-time
    builds for audits); otherwise it replaces the live read model atomically. ``writer``: where the SQL
    runs (``uses_writer_process``; ``CHRONICLE_REPLAY_WRITER``).
    """
    names = list(projections or known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ChronicleError(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}")
    head = store.head()
    report = ReplayReport(names, min(until, head) if until is not None else head)
    clean_stale_scratch(live)
    scratch = scratch_path(live)
    _remove_db_files(scratch)
    partial = set(names) != set(known)
    started = time.perf_counter()
    try:
        if partial and live.exists():
            copy_database(live, scratch)  # the other projections keep their rows and checkpoints
            conn = scratch_connection(scratch)
            try:
                _reset(conn, known, names)
            finally:
                conn.close()
        create_schema(scratch)  # the rebuilt projections' tables as this release defines them
        conn = scratch_connection(scratch)
        try:
            deferred = DeferredIndexes(conn, [t for n in names for t in known[n].tables])
            progress = (lambda _n, at: on_progress(", ".join(names), at)) if on_progress else None
            rebuilt = [known[n] for n in names]
            if uses_writer_process(writer, report.until):
                conn.close()  # the writer process holds the file (exclusively) until it is done
                report.per_projection = replay_pipeline.run(store, scratch, rebuilt, deferred, batch_size=batch_size,
                                                            page_size=REPLAY_PAGE, until=until, on_progress=progress)
                conn = scratch_connection(scratch)
                deferred.execute = conn.execute
            else:
                projector = Projector(store, scratch, rebuilt, batch_size=batch_size, page_size=REPLAY_PAGE,
                                      until=until, connection=conn, on_filter=deferred.needed)
                report.per_projection = projector.run_until_idle(on_progress=progress)
            if partial:  # bring the untouched projections up to the head they may have moved to
                others = [p for name, p in known.items() if name not in names]
                Projector(store, scratch, others, batch_size=batch_size, page_size=REPLAY_PAGE, connection=conn,
                          on_filter=deferred.needed).run_until_idle()
            conn.execute("BEGIN")
            deferred.create()
            record_schemas(conn, known, names)
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
        report.events = max(report.per_projection.values(), default=0)
        if output is not None:
            _remove_db_files(output)
            os.replace(scratch, output)
            report.target = output
        else:
            copy_database(scratch, live)
            report.target, report.swapped = live, True
    finally:
        _remove_db_files(scratch)
    report.seconds = time.perf_counter() - started
    return report


def _reset(conn: sqlite3.Connection, known: Mapping[str, Projection], names: list[str]) -> None:
    """Drop the rebuilt projections' tables (in the scratch copy): ``create_schema`` then creates them
    as this release defines them, so a rebuild is also the migration of a changed schema."""
    conn.execute("BEGIN")
    for name in names:
        for table in known[name].tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        with contextlib.suppress(sqlite3.OperationalError):  # no such table: a database from before
            conn.execute(f"DELETE FROM {CHECKPOINT_TABLE} WHERE name = ?", (name,))
    conn.execute("COMMIT")
