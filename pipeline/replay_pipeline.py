"""A rebuild on two cores: this process reads the log and runs the handlers, a second one executes SQL.

A single-process rebuild of 1 M CMS events spends about half its time in Python (reading and decoding
the log, handlers, binding statements) and half inside SQLite. ``sqlite3`` keeps the GIL for every row
it builds, so threads cannot overlap the two halves; processes can. The handlers' row changes go to
``pipeline.replay_writer`` as prepared statements and parameters, a page of the log (``REPLAY_PAGE``
events) per frame: while the writer executes one page, this process works on the next. The pipe holds
about one frame, so memory stays bounded by a couple of pages.

Handlers read current rows (``State.get``): a post's site environment, a settings merge, an image's
status. Waiting for the writer at every read would serialise the two again, so this process keeps an
in-memory copy of the tables the projections declare they read (``Projection.reads``: ``sites``,
``images``, …, small next to what is written) and applies their changes there too, in the same order
as the writer, so a read sees exactly what it would see in a single-process rebuild. A read of an
undeclared table fails, naming the table, here as in any projector (``Applier``'s ``readable``).

Checkpoints are still written in their batch's transaction, by the writer. When the writer's statement
fails, its reply names the frame and op, which this process maps back to the projection and the event's
position: the same ``ProjectionError`` a single-process rebuild raises.
"""

from __future__ import annotations

import marshal
import pickle
import sqlite3
import subprocess
import sys
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from db.changes import Applier, Change

from .deferred_indexes import DeferredIndexes
from .envelope import Recorded
from .errors import ChronicleError, ProjectionError
from .projection import Handler, Projection, State
from .projector import CHECKPOINT_TABLE, CHECKPOINT_UPSERT, Projector
from .replay_writer import read_frame, write_frame
from .store import EventStore

#: Frames kept after sending, to name the event of a statement the writer reports failed: the pipe and
#: the writer hold at most the last two.
_FRAMES_REMEMBERED = 4


class WriterFailed(ChronicleError):
    """The writer process stopped without executing what it was sent."""


class WriterProcess:
    """The second process and the frames sent to it (``pipeline.replay_writer`` has the protocol)."""

    def __init__(self, scratch: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.replay_writer", str(scratch)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._ids: dict[str, int] = {}
        self._new: list[tuple[str, tuple[tuple[int, Any], ...]]] = []
        #: The frame being filled: (statement id, parameters), and where each handler call's ops begin
        #: (first op index, projection, position). Cleared in place when sent: closures hold them.
        self.ops: list[tuple[int, list[Any]]] = []
        self.origins: list[tuple[int, str, int]] = []
        self._sent: deque[tuple[int, list[tuple[int, str, int]]]] = deque(maxlen=_FRAMES_REMEMBERED)
        self._frame = 0

    def statement_id(self, sql: str, convert: tuple[tuple[int, Any], ...] = ()) -> int:
        sid = self._ids.get(sql)
        if sid is None:
            sid = self._ids[sql] = len(self._ids)
            self._new.append((sql, convert))
        return sid

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a statement with already-converted parameters (transactions, checkpoints, indexes). Its
        failure is the writer's own, not an event's (the origin names no projection)."""
        self.origins.append((len(self.ops), "", 0))
        self.ops.append((self.statement_id(sql), list(params)))

    def send(self) -> None:
        """Send the queued statements (blocks while the writer is a frame behind)."""
        if not self.ops and not self._new:
            return
        payload = pickle.dumps((self._new, encode_ops(self.ops)), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            write_frame(self.proc.stdin, payload)  # type: ignore[arg-type]
        except BrokenPipeError:
            self._raise_failure()
        self._sent.append((self._frame, list(self.origins)))
        self._frame += 1
        self._new, self.ops[:], self.origins[:] = [], [], []

    def finish(self) -> None:
        """Send what is queued and the end frame; wait for the writer to confirm it executed them all."""
        self.send()
        try:
            write_frame(self.proc.stdin, b"")  # type: ignore[arg-type]
            self.proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        reply = self._reply()
        self.proc.wait()
        if reply is None or reply[0] != "ok":
            self._raise_failure(reply)

    def abort(self) -> None:
        """Stop the writer now (this process failed or was interrupted): nothing more is committed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def _reply(self) -> tuple[Any, ...] | None:
        payload = read_frame(self.proc.stdout)  # type: ignore[arg-type]
        return pickle.loads(payload) if payload else None

    def _raise_failure(self, reply: tuple[Any, ...] | None = None) -> NoReturn:
        if reply is None:
            reply = self._reply()
        code = self.proc.wait()
        if reply is None or reply[0] != "error":
            raise WriterFailed(f"the rebuild's writer process stopped (exit status {code}) before it finished")
        _error, frame, index, reason = reply
        origins = next((o for f, o in self._sent if f == frame), [])
        at = bisect_right(origins, (index, "\uffff", 0)) - 1  # the last handler call starting at or before it
        _start, projection, position = origins[at] if at >= 0 else (0, "", 0)
        if not projection:  # a statement of the rebuild's own (transaction, checkpoint, index)
            raise WriterFailed(f"the rebuild's writer failed: {reason}")
        raise ProjectionError(projection, position, reason)


def encode_ops(ops: list[tuple[int, list[Any]]]) -> tuple[str, bytes]:
    """``ops`` as bytes: ``marshal`` when they hold only built-in values (it encodes them about seven
    times faster than ``pickle``; both processes run the same interpreter, so its format matches), else
    ``pickle`` (a handler passing a ``datetime``, say)."""
    try:
        return "marshal", marshal.dumps(ops, 4)
    except ValueError:
        return "pickle", pickle.dumps(ops, protocol=pickle.HIGHEST_PROTOCOL)


def mirror_of(scratch: Path, tables: Sequence[str]) -> sqlite3.Connection:
    """An in-memory copy of ``tables`` and the checkpoints, as the scratch database holds them now."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
    for table in [*dict.fromkeys(tables), CHECKPOINT_TABLE]:
        # the table first ('table' sorts after 'index'), then its indexes
        for (sql,) in conn.execute("SELECT sql FROM scratch.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                                   "ORDER BY type DESC", (table,)).fetchall():
            conn.execute(sql)
        conn.execute(f'INSERT INTO main."{table}" SELECT * FROM scratch."{table}"')
    conn.execute("DETACH DATABASE scratch")
    return conn


class ForwardingApplier:
    """What handlers see as the ``Applier``: changes go to the writer, reads come from the mirror."""

    def __init__(self, writer: WriterProcess, mirror: sqlite3.Connection, mirrored: frozenset[str],
                 on_filter: Callable[[str, tuple[str, ...]], None] | None) -> None:
        self.writer = writer
        self.mirrored = mirrored
        #: Prepares every statement (and executes those of mirrored tables on the mirror); reads only those.
        self.binder = Applier(mirror, on_filter=on_filter, readable=mirrored)

    def apply(self, change: Change) -> None:
        bound = self.binder.statement(change)
        if bound is None:
            return
        prep, params = bound
        if change.table in self.mirrored:
            self.binder.execute(prep, list(params))  # converts a copy: the writer converts its own
        self.writer.ops.append((self.writer.statement_id(prep.sql, prep.convert), params))

    def get(self, table: str, key: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any] | None:
        return self.binder.get(table, key, columns)


class PipelinedProjector(Projector):
    """A ``Projector`` whose SQL runs in the writer process; batches, pages and checkpoints as usual."""

    def __init__(self, store: EventStore, scratch: Path, projections: Sequence[Projection], writer: WriterProcess,
                 mirror: sqlite3.Connection, *, batch_size: int, page_size: int, until: int | None,
                 on_filter: Callable[[str, tuple[str, ...]], None] | None) -> None:
        super().__init__(store, scratch, projections, batch_size=batch_size, page_size=page_size, until=until,
                         connection=mirror)
        self.writer = writer
        self.applier = ForwardingApplier(writer, mirror, self.reads, on_filter)  # type: ignore[assignment]
        for routes in self._routes.values():
            routes[:] = [(name, self._marked(name, handler)) for name, handler in routes]

    def _marked(self, name: str, handler: Handler) -> Handler:
        """``handler``, noting where its ops begin: the writer's errors name an op, users want the event."""
        origins, ops = self.writer.origins, self.writer.ops

        def marked(event: Recorded, state: State) -> Any:
            origins.append((len(ops), name, event.position))
            return handler(event, state)

        return marked

    def _apply(self, batch: list[Recorded], done: dict[str, int], *, traced: bool = True) -> None:
        super()._apply(batch, done, traced=traced)
        self.writer.send()  # a page per frame: the writer executes it while the next page is read

    def _begin(self) -> dict[str, int]:
        done = super()._begin()  # on the mirror, which has the scratch file's checkpoints
        self.writer.execute("BEGIN")
        return done

    def _commit(self, checkpoints: dict[str, int]) -> None:
        super()._commit(checkpoints)
        for name, position in checkpoints.items():
            self.writer.execute(CHECKPOINT_UPSERT, (name, position))
        self.writer.execute("COMMIT")
        self.writer.send()

    def _rollback(self) -> None:
        super()._rollback()
        self.writer.execute("ROLLBACK")  # an empty batch's; after a failure the writer is stopped instead


def run(store: EventStore, scratch: Path, projections: Sequence[Projection], indexes: DeferredIndexes, *,
        batch_size: int, page_size: int, until: int | None,
        on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Apply ``projections`` to the scratch file at ``scratch`` (no connection to it may be open) with a
    writer process; the events applied per projection. The deferred ``indexes`` a handler needs are
    created by the writer, in order with the statements."""
    mirror = mirror_of(scratch, sorted({t for p in projections for t in p.reads}))
    writer = WriterProcess(scratch)
    finished = False
    try:
        indexes.execute = writer.execute
        projector = PipelinedProjector(store, scratch, projections, writer, mirror, batch_size=batch_size,
                                       page_size=page_size, until=until, on_filter=indexes.needed)
        try:
            totals = projector.run_until_idle(on_progress=on_progress)
        finally:
            projector.close()
        writer.finish()
        finished = True
        return totals
    finally:
        if not finished:
            writer.abort()
        mirror.close()
