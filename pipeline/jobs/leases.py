"""Leases on running jobs: how the sweeper re-runs the work of a worker that died, in about a minute.

Why: with ``acks_late`` a job's message stays unacknowledged while it runs. When the whole worker is
``kill -9``-ed, Redis keeps that message in its ``unacked`` hash until the visibility timeout (3 600 s,
which must stay above the longest task), so the job would wait an hour. RabbitMQ gives it back as soon
as the connection drops; Redis and the embedded broker do not.

How: a worker process that starts a job writes a lease ``(delivery, task, queue, kwargs, owner,
expires)`` and drops it when the job ends. Leases live in ``$DATA_DIR/leases.db`` on one box, and in
the log's PostgreSQL database when the log is there (``lease_location``), so a sweeper on any host
sees the leases of workers on every host: a worker host that dies is noticed by its silence. Before
that, the worker's main process leases each message it receives (``hold_on_receipt``), so a job
received but not started yet when the whole worker dies is covered too. A daemon thread in that process
renews its leases every third of ``CHRONICLE_LEASE_SECONDS`` (default 30). The sweeper (every
``CHRONICLE_SWEEP_INTERVAL``, 5 s) re-sends the job of every lease that is

* held by a process of this host (hostname and pid namespace, as the embedding claims) that no longer
  exists: at once, or
* not renewed for ``CHRONICLE_LEASE_SECONDS``: a worker on another host, or a frozen one.

The re-sent message carries the same task id (the same delivery), so the job's own idempotency (outcome
event ids derived from the cause or the delivery, content-addressed files, the embedding cache) makes a
late duplicate (the original message, when the visibility timeout finally expires) change nothing. A
re-sent lease is parked for ``RESEND_GRACE`` seconds so a job waiting behind a long queue is not sent
again by every sweep.

Worst case on Redis with defaults: a worker on this host restarted by its supervisor recovers the job
at its first sweep (≈ start-up + 5 s); otherwise lease expiry (30 s) + sweep interval (5 s) + the time
the re-sent message waits in its lane. Subscriber catch-ups take no lease: the sweeper already wakes
every lagging subscriber.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.owners import new_owner, owner_gone

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.settings import Settings

    from .spec import Job

log = logging.getLogger("chronicle.leases")

DEFAULT_LEASE_SECONDS = 30.0
RESEND_GRACE = 120.0  # a re-sent job is not re-sent again before this (it may wait behind its lane)

_UPSERT = ("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery) DO UPDATE SET "
           "task = excluded.task, queue = excluded.queue, kwargs = excluded.kwargs, owner = excluded.owner, "
           "expires = excluded.expires, started = excluded.started")
_COLUMNS = "delivery TEXT PRIMARY KEY, task TEXT NOT NULL, queue TEXT NOT NULL"


def lease_location(settings: Settings) -> Path | str:
    """Where this deployment's leases live: the log's PostgreSQL database (every host's workers and
    sweepers share it), else a file of the data directory (one box)."""
    url = settings.resolved_event_store_url
    return url if url.startswith("postgresql") else settings.resolved_data_dir / "leases.db"


class LeaseTable:
    """The ``leases`` table on SQLite or PostgreSQL, behind the few statements the book uses (written
    with ``?``; a write transaction takes the table's rows first: ``BEGIN IMMEDIATE`` / ``FOR UPDATE``)."""

    def __init__(self, where: Path | str) -> None:
        self.postgres = isinstance(where, str) and where.startswith("postgresql")
        self.conn: Any
        if self.postgres:
            import psycopg

            scheme, rest = str(where).split("://", 1)  # SQLAlchemy's postgresql+psycopg:// → libpq's
            self.conn = psycopg.connect(f"{scheme.split('+', 1)[0]}://{rest}", autocommit=True, connect_timeout=10)
            self._create_on_postgres()
        else:
            path = Path(where)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS leases ({_COLUMNS}, kwargs BLOB NOT NULL, "
                              "owner TEXT NOT NULL, expires REAL NOT NULL, started REAL NOT NULL) WITHOUT ROWID")
        self.for_update = " FOR UPDATE" if self.postgres else ""

    def _create_on_postgres(self) -> None:
        import psycopg

        if self.conn.execute("SELECT to_regclass('leases')").fetchone()[0] is not None:
            return
        with suppress(psycopg.errors.UniqueViolation):  # another process created it at the same moment
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS leases ({_COLUMNS}, kwargs BYTEA NOT NULL, "
                              "owner TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL, "
                              "started DOUBLE PRECISION NOT NULL)")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s") if self.postgres else sql, params)

    def begin(self) -> None:
        self.conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")

    def close(self) -> None:
        self.conn.close()


def lease_seconds() -> float:
    return float(os.environ.get("CHRONICLE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


@dataclass(frozen=True, slots=True)
class Lease:
    delivery: str
    task: str
    queue: str
    kwargs: dict[str, Any]
    owner: str
    expires: float


class LeaseBook:
    """The leases at ``where`` (``lease_location``). One per process (``book``); safe to use from threads."""

    def __init__(self, where: Path | str, *, seconds: float | None = None) -> None:
        self.where = where
        self.seconds = lease_seconds() if seconds is None else seconds
        self.db = LeaseTable(where)
        self.owner = new_owner()
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._renewer: threading.Thread | None = None
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop renewing (a closed book's leases then expire, as a dead worker's would) and disconnect."""
        self._closed.set()
        with self._lock:
            renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5)
        self.db.close()

    # -- the worker side ------------------------------------------------------------------------------

    def hold(self, delivery: str, job: Job) -> None:
        """A job starts under ``delivery`` (the message's task id) in this process."""
        now = time.time()
        with self._lock:
            self.db.execute(_UPSERT, (delivery, job.task, job.queue, orjson.dumps(job.kwargs), self.owner,
                                      now + self.seconds, now))
            self._held.add(delivery)
            if not self._closed.is_set() and (self._renewer is None or not self._renewer.is_alive()):
                self._renewer = threading.Thread(target=self._renew_forever, name="chronicle-lease-renewer",
                                                 daemon=True)
                self._renewer.start()

    def release(self, delivery: str) -> None:
        """The job ended (success or a recorded dead letter): nothing left to recover."""
        with self._lock:
            self._held.discard(delivery)
            self.db.execute("DELETE FROM leases WHERE delivery=? AND owner=?", (delivery, self.owner))

    def park(self, delivery: str, seconds: float) -> None:
        """The job will be retried in ``seconds`` by a message of the same delivery: keep the lease,
        owned by nobody, until that retry is due plus one lease period (then the sweeper re-sends it)."""
        with self._lock:
            self._held.discard(delivery)
            self.db.execute("UPDATE leases SET owner='', expires=? WHERE delivery=? AND owner=?",
                            (time.time() + seconds + self.seconds, delivery, self.owner))

    def renew(self) -> None:
        with self._lock:
            held = list(self._held)
            if held:
                marks = ",".join("?" * len(held))
                self.db.execute(f"UPDATE leases SET expires=? WHERE owner=? AND delivery IN ({marks})",
                                [time.time() + self.seconds, self.owner, *held])

    def _renew_forever(self) -> None:
        while not self._closed.wait(max(self.seconds / 3, 0.1)):
            try:
                self.renew()
            except Exception:  # a locked file, a lost connection: the next round tries again
                log.exception("could not renew job leases")

    # -- the sweeper side -----------------------------------------------------------------------------

    def orphans(self, *, now: float | None = None, limit: int = 100) -> list[Lease]:
        """Leases whose owner is gone or did not renew in time; each is taken over (parked for
        ``RESEND_GRACE``) so that the next sweep does not send it again."""
        now = time.time() if now is None else now
        found: list[Lease] = []
        with self._lock:
            self.db.begin()
            try:
                rows = self.db.execute("SELECT delivery, task, queue, kwargs, owner, expires FROM leases "
                                       f"ORDER BY started{self.db.for_update}").fetchall()
                for delivery, task, queue, kwargs, owner, expires in rows:
                    if len(found) >= limit:
                        break
                    if owner == self.owner or not (expires <= now or (owner and owner_gone(owner))):
                        continue
                    found.append(Lease(delivery, task, queue, orjson.loads(kwargs), owner, expires))
                    self.db.execute("UPDATE leases SET owner='', expires=? WHERE delivery=?",
                                    (now + max(RESEND_GRACE, self.seconds), delivery))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return found

    def all(self) -> list[Lease]:
        return [Lease(d, t, q, orjson.loads(k), o, e) for d, t, q, k, o, e in self.db.execute(
            "SELECT delivery, task, queue, kwargs, owner, expires FROM leases ORDER BY started").fetchall()]


def hold_on_receipt(where: Path | str, delivery: str, job: Job, *, seconds: float) -> None:
    """The worker's *main* process received ``delivery`` and is handing it to a pool process: lease it
    to the main process until the pool process takes it over (``LeaseBook.hold`` replaces the row).

    Why: the pool process writes its lease only once the job starts, so a ``kill -9`` of the whole
    worker between Redis handing the message over (it then sits in the ``unacked`` hash until the
    visibility timeout) and the job's start left no lease: the sweeper never re-sent it, and an image
    waited for the 900 s stuck-image net, a reindex or redrive for the hour. With this lease, the main
    process being gone makes the sweeper re-send it at its next sweep.

    No renewer thread and no connection kept open: this process forks pool children, and neither a
    thread's locks nor a database connection may cross a fork (one connection per received job: a
    few milliseconds on PostgreSQL). A lease held by another *live* owner (a
    second delivery of a job that is running) is left alone; a parked or re-sent one (owner ``''``) is
    taken over."""
    now = time.time()
    table = LeaseTable(where)
    try:
        table.begin()
        try:
            row = table.execute(f"SELECT owner, expires FROM leases WHERE delivery=?{table.for_update}",
                                (delivery,)).fetchone()
            if row is None or not row[0] or row[1] <= now or owner_gone(row[0]):
                table.execute(_UPSERT, (delivery, job.task, job.queue, orjson.dumps(job.kwargs), new_owner(),
                                        now + seconds, now))
            table.execute("COMMIT")
        except BaseException:
            table.execute("ROLLBACK")
            raise
    finally:
        table.close()


_BOOKS: dict[tuple[int, str], LeaseBook] = {}
_BOOKS_LOCK = threading.Lock()


def book(ctx: JobContext) -> LeaseBook:
    """This process's lease book for ``ctx``'s deployment (a forked child opens its own)."""
    where = lease_location(ctx.settings)
    key = (os.getpid(), str(where))
    with _BOOKS_LOCK:
        found = _BOOKS.get(key)
        if found is None:
            found = _BOOKS[key] = LeaseBook(where, seconds=ctx.settings.lease_seconds)
        return found


def orphaned_jobs(ctx: JobContext) -> list[Job]:
    """The sweep hook: the jobs of dead or silent workers, to send again under their own delivery id."""
    from .spec import Job

    where = lease_location(ctx.settings)
    if isinstance(where, Path) and not where.exists():
        return []
    jobs = []
    for lease in book(ctx).orphans():
        log.warning("re-sending %s (delivery %s): its worker %s", lease.task, lease.delivery,
                    "is gone" if lease.owner and owner_gone(lease.owner) else "stopped renewing its lease")
        jobs.append(Job(lease.task, lease.queue, lease.kwargs, id=lease.delivery))
    return jobs
