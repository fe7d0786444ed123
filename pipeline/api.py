"""The Python API: what a CMS written in Python imports.

    from pipeline import Chronicle
    chronicle = Chronicle.open()                      # settings from CHRONICLE_* env vars
    chronicle.emit("PageCreated", {"id": "42", ...})
    chronicle.drain()                                 # apply everything pending, in-process
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .bulk import paused_gc
from .envelope import Envelope, NewEvent, validate_envelope
from .metrics import metrics
from .notify import Notifier, NullNotifier, load_notifier
from .settings import Settings
from .shredding import NO_STREAM, REF_META, Shredder, StreamSubject, open_keystore
from .store import AppendResult, EventStore, open_store
from .subsystems import build_registry  # (importing it fills the event catalogue emit validates against)
from .tracing import enabled as tracing_enabled

#: Batches up to this size append with the cyclic GC left on: pausing it pays for itself only over
#: thousands of objects (``pipeline.bulk``), and a single emit is the common CMS call.
_SMALL_BATCH = 16

if TYPE_CHECKING:
    from .jobs.spec import Job
    from .projector import Projector
    from .reactor import Dispatcher, Reactor
    from .registry import Registry

# The projector, the reactor, the checksum, migrations
# (SQLAlchemy's DDL compiler and every table model) and the job runner are imported where they are
# used: `chronicle emit` and `status` open a handle without them.


@dataclass(slots=True)
class DrainReport:
    projected: dict[str, int] = field(default_factory=dict)
    reacted: int = 0
    jobs: int = 0


class Chronicle:
    """One handle on the log, the projections and the wake-up channel.

    It is also the ``JobContext`` jobs receive (settings, store, registry, emit, project).
    """

    def __init__(self, settings: Settings | None = None, *, notifier: Notifier | None = None,
                 registry: Registry | None = None, migrate: bool = True) -> None:
        self.settings = settings or Settings()
        self.settings.ensure_dirs()
        self._registry: Registry | None = registry
        self.store: EventStore = open_store(self.settings.resolved_event_store_url,
                                               synchronous=self.settings.log_synchronous)
        # Personal fields are sealed on append and opened on every read (erasure by crypto-shredding).
        self.shredder = Shredder(open_keystore(self.settings.subject_keys, self.settings.resolved_event_store_url,
                                               self.settings.resolved_data_dir))
        self.store.unseal = self.shredder.unseal
        self._stream_refs: dict[str, str | None] = {}
        self._lookup: EventStore | None = None
        if migrate:
            # Creates the read model, or rebuilds the projections whose tables this release changed.
            from .migrations import migrate as migrate_read_model

            migrate_read_model(self.store, self.settings.projection_db_path, self.registry.projections,
                               batch_size=self.settings.replay_batch_size, writer=self.settings.replay_writer)
        self.notifier: Notifier = notifier if notifier is not None else load_notifier(self.settings)
        self._projector: Projector | None = None
        self._projector_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, *, notify: bool = True, migrate: bool = True) -> Chronicle:
        """Open from settings (env vars by default); ``notify=False`` never touches the broker.

        ``migrate=False`` leaves the read model as it is (no creation, no rebuild of a changed
        projection) and builds the registry on first use: for a handle that only appends or looks
        (``chronicle emit``, ``chronicle status``), which must answer at once and must not start a
        rebuild that a worker or ``chronicle drain`` does anyway.
        """
        return cls(settings, notifier=None if notify else NullNotifier(), migrate=migrate)

    @property
    def registry(self) -> Registry:
        """Every subsystem's projections, subscribers, jobs and reactions (built on first use)."""
        if self._registry is None:
            self._registry = build_registry(self.settings)
        return self._registry

    def close(self) -> None:
        self.shredder.close()
        if self._lookup is not None and self._lookup is not self.store:
            self._lookup.close()
        self.notifier.flush()
        if self._projector is not None:
            self._projector.close()
            self._projector = None
        self.store.close()

    def __enter__(self) -> Chronicle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------

    def emit(self, type: str, data: dict[str, Any], *, stream: str | None = None, id: str | None = None,
             expected_version: int | None = None, metadata: dict[str, Any] | None = None) -> AppendResult:
        """Append one event; returns where it landed (or that it was a duplicate)."""
        envelope: dict[str, Any] = {"type": type, "data": data}
        for key, value in (("stream", stream), ("id", id), ("expected_version", expected_version),
                           ("metadata", metadata)):
            if value is not None:  # what is not sent is not validated: no empty metadata model per event
                envelope[key] = value
        return self.emit_many([envelope])

    def emit_many(self, envelopes: Iterable[Envelope | dict[str, Any]], *,
                  authorize: Callable[[list[NewEvent]], None] | None = None) -> AppendResult:
        """Append a batch atomically. A list is validated whole before the log is touched; any other
        iterable is validated as it streams inside the append transaction (bounded memory), and an
        invalid event rolls the transaction back. Either way nothing from a bad batch is written.

        ``authorize`` (lists only) sees the validated batch before the append and may refuse it by
        raising (the HTTP API checks a site-restricted key's sites there)."""
        if tracing_enabled():
            return self._traced_emit_many(envelopes, authorize)
        return self._emit_many(envelopes, authorize)

    def _traced_emit_many(self, envelopes: Iterable[Envelope | dict[str, Any]],
                          authorize: Callable[[list[NewEvent]], None] | None) -> AppendResult:
        """``chronicle.append``: each event gets this span's trace context in its metadata (unless it
        brought its own), so whoever reads it from the log continues the trace (``pipeline.tracing``)."""
        from . import tracing

        with tracing.span("chronicle.append", kind="producer", attributes=tracing.batch_attributes(envelopes)) as span:
            result = self._emit_many(tracing.stamp_all(envelopes, tracing.current_carrier()), authorize)
            if span is not None:
                span.set_attributes({"chronicle.events.appended": result.appended,
                                     "chronicle.events.duplicates": result.duplicates,
                                     "chronicle.position.last": result.last_position or 0})
            return result

    def _emit_many(self, envelopes: Iterable[Envelope | dict[str, Any]],
                   authorize: Callable[[list[NewEvent]], None] | None) -> AppendResult:
        max_bytes = self.settings.max_event_bytes
        events: Iterable[NewEvent]
        batch = envelopes if isinstance(envelopes, list | tuple) else None
        with paused_gc() if batch is None or len(batch) > _SMALL_BATCH else nullcontext():
            if batch is not None:
                events = [validate_envelope(e, index=i, max_bytes=max_bytes) for i, e in enumerate(batch)]
                if authorize is not None:
                    authorize(events)
                # Sealed before the append: the writer's own connection is free to look streams up.
                events = self.shredder.seal_batch(events, self._writer_stream_refs)
            else:
                if authorize is not None:
                    raise TypeError("authorize needs a list of envelopes")
                events = self.shredder.seal_all((validate_envelope(e, index=i, max_bytes=max_bytes)
                                                 for i, e in enumerate(envelopes)), self._stream_ref)
            result = self.store.append(events)
        if result.appended:
            metrics().events_appended.inc(result.appended)
            self.notifier.events_appended(result.last_position or 0)
        return result

    def _stream_ref(self, stream: str) -> StreamSubject:
        """The subject ref of a stream's first event (None: it names none; ``NO_STREAM``: no stream yet);
        a first event never changes, so known streams are cached (``_stream_refs_of``)."""
        return self._stream_refs_of([stream])[stream]

    def _stream_refs_of(self, streams: list[str], store: EventStore | None = None) -> dict[str, StreamSubject]:
        """``_stream_ref`` of many streams with one query for those not cached. Asking per stream made
        sealing a 1 000-event batch cost ~15 % of its append.

        ``store``: where to ask (default: the second handle, ``_lookup_store``). Outside an append
        the writer's own handle is cheaper: its cache already holds the pages it just wrote, where
        a second connection re-reads them after every commit (~40 µs per single emit that begins a
        personal stream)."""
        refs: dict[str, StreamSubject] = {s: self._stream_refs[s] for s in streams if s in self._stream_refs}
        missing = [s for s in dict.fromkeys(streams) if s not in refs]
        if missing:
            found = (store or self._lookup_store()).first_metadata(missing)
            for stream in missing:
                if stream not in found:
                    refs[stream] = NO_STREAM  # not cached: the stream may begin any moment
                    continue
                meta = orjson.loads(found[stream])
                refs[stream] = ref = meta.get(REF_META) if isinstance(meta, dict) else None
                if len(self._stream_refs) < 100_000:
                    self._stream_refs[stream] = ref
        return refs

    def _writer_stream_refs(self, streams: list[str]) -> dict[str, StreamSubject]:
        """``_stream_refs_of`` asked on the writer's own handle (outside an append, it is free)."""
        return self._stream_refs_of(streams, self.store)

    def _lookup_store(self) -> EventStore:
        """A second handle on the log for the reads sealing needs: a streamed batch is sealed inside
        the append transaction, where the writer's own connection cannot run another query (a memory
        log's lock is re-entrant instead)."""
        if self._lookup is None:
            url = self.settings.resolved_event_store_url
            self._lookup = self.store if url.startswith("memory") else open_store(url, create=False)
        return self._lookup

    # -- processing --------------------------------------------------------------------------------

    def projector(self, names: str | Iterable[str] | None = None, *, until: int | None = None) -> Projector:
        """One projector over ``names`` (default: every projection), sharing a pass over the log."""
        from .projector import Projector

        projections = self.registry.projections
        selected = [names] if isinstance(names, str) else list(names or projections)
        return Projector(self.store, self.settings.projection_db_path, [projections[n] for n in selected],
                         batch_size=self.settings.projector_batch_size, until=until, traced=True)

    def project(self, names: Iterable[str] | None = None, *, max_events: int | None = None) -> dict[str, int]:
        """Bring projections up to date (at most ``max_events`` read); returns events applied per projection.

        All projections run on one long-lived projector (its connection and prepared statements are
        reused): a worker runs this for every wake-up, so set-up cost would dominate small batches.
        """
        if names is None:
            with self._projector_lock:
                if self._projector is None:
                    self._projector = self.projector()
                return self._projector.run_until_idle(max_events=max_events)
        projector = self.projector(names)
        try:
            return projector.run_until_idle(max_events=max_events)
        finally:
            projector.close()

    def run_job(self, job: Job) -> None:
        """Execute a side-effect job in this process (the task behind ``job.task``, without Celery)."""
        from .jobs.runner import run_job

        run_job(self, job)

    def reactor(self, dispatcher: Dispatcher) -> Reactor:
        """The side-effect subscriber, with every registered reaction."""
        from .reactor import SUBSCRIPTION, Reactor

        return Reactor(self.store, dispatcher, self.registry.reactions,
                       subscriber=self.registry.subscribers[SUBSCRIPTION])

    def drain(self) -> DrainReport:
        """Process everything pending in this process until idle: projections, reactions, their jobs
        and the events those jobs record, until a full pass finds nothing to do."""
        from .jobs.runner import run_sweep_hooks
        from .reactor import InlineDispatcher

        report = DrainReport()
        jobs: list[Job] = []
        reactor = self.reactor(InlineDispatcher(jobs.append))
        swept = False
        while True:
            for name, count in self.project().items():
                report.projected[name] = report.projected.get(name, 0) + count
            reacted = reactor.run_until_idle()
            report.reacted += reacted
            ran = len(jobs)
            for job in jobs:
                self.run_job(job)
            jobs.clear()
            report.jobs += ran
            if not reacted and not ran and self._caught_up():
                if swept:
                    return report
                # Once idle, once per drain: what the Celery sweeper does periodically. It re-runs work
                # whose job was lost after the reactor passed its event (a drain stopped mid-job, a
                # worker killed with its message unacknowledged). Only now, so that jobs this drain
                # just ran are not sent again.
                run_sweep_hooks(self, jobs.extend)
                swept = True

    def caught_up_to(self, position: int) -> bool:
        """Every projection and the reactor are at or past ``position`` (no lock taken: a cheap test
        that lets the many wake-ups of a burst return at once)."""
        from .projector import read_checkpoints
        from .reactor import SUBSCRIPTION

        with self._projector_lock:
            if self._projector is None:
                self._projector = self.projector()
            done = read_checkpoints(self._projector.conn)
        return (all(done.get(name, 0) >= position for name in self.registry.projections)
                and self.registry.subscribers[SUBSCRIPTION].already_past(self.store, position))

    def _caught_up(self) -> bool:
        from .projector import checkpoints

        head = self.store.head()
        done = checkpoints(self.settings.projection_db_path)
        return all(done.get(name, 0) >= head for name in self.registry.projections)

    # -- reading -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Log head, and checkpoint and lag of every projection and subscriber (an inactive subscriber,
        e.g. embeddings while switched off, reports lag 0: it is behind on purpose)."""
        from .projector import checkpoints
        from .subscriber import lag_seconds

        head = self.store.head()
        done = checkpoints(self.settings.projection_db_path)
        return {
            "head": head,
            "projections": {
                name: {"checkpoint": done.get(name, 0), "lag": head - done.get(name, 0),
                       "lag_seconds": lag_seconds(self.store, done.get(name, 0)) if done.get(name, 0) < head else 0.0}
                for name in self.registry.projections
            },
            "subscribers": {name: sub.lag(self.store, head) for name, sub in self.registry.subscribers.items()},
        }

    def checksum(self) -> dict[str, Any]:
        from .checksum import checksum

        return checksum(self.settings.projection_db_path)
