"""The second process of a pipelined rebuild: executes the rebuild's SQL on the scratch database.

``python -m pipeline.replay_writer SCRATCH`` reads frames from stdin and writes one reply to stdout
when it stops. The first process (``pipeline.replay_pipeline``) reads and decodes the log and runs the
handlers; this one only converts values and executes statements, so the two halves of a rebuild run on
two cores. It imports nothing but the standard library and the value converters (``db.values``,
``db.changes``, named in the statements it receives), so it starts in a fraction of a second.

A frame is an 8-byte little-endian length and a pickle of ``(statements, (encoding, ops))``: the
statements new since the last frame, as ``(sql, convert)`` (their ids continue from the last one), and
the ops, as ``(statement id, parameters)``, executed in order, encoded by ``marshal`` or ``pickle``
(``replay_pipeline.encode_ops``). Transactions are ops like any other (``BEGIN``,
``COMMIT``). A zero-length frame ends the work: the reply is ``("ok",)``. The first op
that fails stops the process with ``("error", frame number, op index, "Type: message")``. End of
input without that frame (the first process died) stops it with no reply and nothing more committed.
"""

from __future__ import annotations

import gc
import marshal
import pickle
import signal
import sqlite3
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

from db.changes import convert_params

FRAME_HEADER = struct.Struct("<Q")

#: The scratch connection's page cache. Small on purpose: the file's pages stay in the OS page cache
#: anyway, and a bigger cache (256 MiB, with a memory map) rebuilt 1 M events no faster here (26.7–28.8 s
#: against 27.0–29.7 s with 16 MiB) while the replay's peak memory grew with the read model until the cache
#: was full (615 MB at 1 M events; 247 MB with 16 MiB, 279 MB with 32 MiB, the same at 250 000 events).
SCRATCH_CACHE_KIB = 32 * 1024


def scratch_connection(path: Path) -> sqlite3.Connection:
    """A connection tuned for a bulk load into a file nobody else reads until it is done."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    # No rollback journal: nothing is ever rolled back in a scratch build (a failure throws the file
    # away; an empty batch's ROLLBACK undoes no writes). Measured on 1 M events, with the exclusive
    # lock (no lock and change-counter round per transaction), about 2 s less than an in-memory journal.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size=-{SCRATCH_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def write_frame(out: BinaryIO, payload: bytes) -> None:
    out.write(FRAME_HEADER.pack(len(payload)))
    out.write(payload)
    out.flush()


def read_frame(source: BinaryIO) -> bytes | None:
    """The next frame's payload; None at end of input (also mid-frame: the sender is gone)."""
    header = source.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    payload = source.read(size)
    return payload if len(payload) == size else None


def serve(conn: sqlite3.Connection, source: BinaryIO, reply: BinaryIO) -> int:
    """Execute frames from ``source`` on ``conn`` until the end frame; the process's exit status."""
    statements: list[tuple[str, tuple[tuple[int, Any], ...]]] = []
    cur = conn.cursor()
    frame = 0
    while (payload := read_frame(source)) is not None:
        if not payload:
            write_frame(reply, pickle.dumps(("ok",)))
            return 0
        new, (encoding, encoded) = pickle.loads(payload)
        ops = marshal.loads(encoded) if encoding == "marshal" else pickle.loads(encoded)
        statements.extend(new)
        for index, (sid, params) in enumerate(ops):
            sql, convert = statements[sid]
            try:
                if convert:
                    convert_params(convert, params)
                cur.execute(sql, params)
            except Exception as exc:  # reported to the first process, which names the event
                write_frame(reply, pickle.dumps(("error", frame, index, f"{type(exc).__name__}: {exc}")))
                return 1
        frame += 1
    return 1  # no end frame: the first process is gone; what was not committed is not


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C reaches both processes; the first one reports
    gc.disable()  # only acyclic values pass through here (see pipeline.bulk)
    conn = scratch_connection(Path(argv[0]))
    try:
        return serve(conn, sys.stdin.buffer, sys.stdout.buffer)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
