"""The side-effect subscriber: turns facts in the log into jobs (image processing, embeddings).

Its checkpoint lives with the log (``subscriptions`` table), not with the projections, so rebuilding
the read model never makes it run again: a replay costs no encode and no API call. It dispatches
at-least-once (dispatch, then move the checkpoint with compare-and-set); jobs are idempotent because
they are keyed by content hash and record their results as events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from itertools import groupby
from typing import Protocol, TypeVar

import orjson

from . import tracing
from .envelope import Recorded
from .jobs.spec import Job
from .notify import CATCH_UP_TASK
from .registry import Reaction
from .store import EventStore
from .subscriber import Subscriber

log = logging.getLogger("chronicle.reactor")

SUBSCRIPTION = "reactor"
T = TypeVar("T")


def reactor_subscriber() -> Subscriber:
    """The reactor's entry in the subscriber registry: caught up by the projection catch-up task."""
    return Subscriber(SUBSCRIPTION, task=CATCH_UP_TASK, queue="projections")


def coalesce(jobs: list[Job]) -> list[Job]:
    """Jobs that differ only by ``position`` are one wake-up ("catch up to at least P"): keep the
    latest. A burst of 10 000 content events then sends one embeddings wake-up, not 10 000."""
    return [job for job, _ in coalesce_with(jobs, [None] * len(jobs))]


def coalesce_with(jobs: Sequence[Job], origins: Sequence[T]) -> list[tuple[Job, T]]:
    """``coalesce``, keeping with each surviving job the origin (the event) of the job that survived."""
    merged: dict[tuple[str, str, bytes], tuple[Job, T]] = {}
    for job, origin in zip(jobs, origins, strict=True):
        rest = {k: v for k, v in job.kwargs.items() if k != "position"}
        key = (job.task, job.queue, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS))
        earlier = merged.get(key)
        if earlier is None or job.kwargs.get("position", 0) >= earlier[0].kwargs.get("position", 0):
            merged.pop(key, None)  # re-insert: the wake-up goes out in the order of its latest event
            merged[key] = (job, origin)
    return list(merged.values())


class Dispatcher(Protocol):
    def dispatch(self, jobs: list[Job]) -> None: ...


class InlineDispatcher:
    """Runs jobs in this process (``chronicle drain``): the embedded deployment needs no worker."""

    def __init__(self, run: Callable[[Job], None]) -> None:
        self.run = run

    def dispatch(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.run(job)


class Reactor:
    """Reads the log after its checkpoint, turns events into jobs with the registered reactions,
    dispatches them, then moves the checkpoint (compare-and-set, ``Subscriber.advance``)."""

    def __init__(self, store: EventStore, dispatcher: Dispatcher, reactions: Mapping[str, Sequence[Reaction]],
                 *, subscriber: Subscriber | None = None, batch_size: int = 500) -> None:
        self.store, self.dispatcher, self.reactions, self.batch_size = store, dispatcher, reactions, batch_size
        self.subscriber = subscriber or reactor_subscriber()

    def jobs_for(self, batch: Sequence[Recorded]) -> list[Job]:
        return coalesce([job for event in batch for react in self.reactions.get(event.type, ())
                         for job in react(event)])

    def run_batch(self) -> int:
        checkpoint = self.subscriber.position(self.store)
        batch = self.store.read(after=checkpoint, limit=self.batch_size)
        if not batch:
            return 0
        if tracing.enabled():
            self._dispatch_traced(batch)
        else:
            jobs = self.jobs_for(batch)
            if jobs:
                self.dispatcher.dispatch(jobs)
        self.subscriber.advance(self.store, start=checkpoint, to=batch[-1].position)
        return len(batch)

    def _dispatch_traced(self, batch: Sequence[Recorded]) -> None:
        """Each event's surviving jobs are dispatched inside a ``chronicle.react`` span continuing that
        event's trace, so the Celery message (its headers: ``workers.tracing``) carries it on. A coalesced
        wake-up continues the trace of the latest event it stands for."""
        pairs = [(job, event) for event in batch for react in self.reactions.get(event.type, ())
                 for job in react(event)]
        survivors = coalesce_with([job for job, _ in pairs], [event for _, event in pairs])
        for _, group in groupby(survivors, key=lambda pair: pair[1].position):
            items = list(group)
            event, jobs = items[0][1], [job for job, _ in items]
            with tracing.events_span("chronicle.react", [event], tracing.context_of(event.metadata),
                                     {"chronicle.jobs": [j.task for j in jobs]}) as span:
                if span is not None:
                    carrier = tracing.current_carrier()
                    jobs = [replace(job, trace=carrier) for job in jobs]
                self.dispatcher.dispatch(jobs)

    def run_until_idle(self) -> int:
        total = 0
        while applied := self.run_batch():
            total += applied
        return total
