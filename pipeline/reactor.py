"""The side-effect subscriber: turns facts in the log into jobs (image processing, embeddings).

Its checkpoint lives with the log (``subscriptions`` table), not with the projections, so rebuilding
the read model never makes it run again: a replay costs no encode and no API call. It dispatches
at-least-once (dispatch, then move the checkpoint with compare-and-set); jobs are idempotent because
they are keyed by content hash and record their results as events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .envelope import Recorded
from .store import EventStore

log = logging.getLogger("chronicle.reactor")

SUBSCRIPTION = "reactor"


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of side-effect work: a Celery task name, its queue and JSON-able kwargs."""

    task: str
    queue: str
    kwargs: dict[str, Any] = field(default_factory=dict)


Reaction = Callable[[Recorded], Iterable[Job]]
REACTIONS: dict[str, list[Reaction]] = {}


def reaction(event_type: str) -> Callable[[Reaction], Reaction]:
    """Register a function that turns an event of ``event_type`` into jobs."""

    def register(fn: Reaction) -> Reaction:
        REACTIONS.setdefault(event_type, []).append(fn)
        return fn

    return register


def coalesce(jobs: list[Job]) -> list[Job]:
    """Jobs that differ only by ``position`` are one wake-up ("catch up to at least P"): keep the
    latest. A burst of 10 000 content events then sends one embeddings wake-up, not 10 000."""
    merged: dict[tuple[str, str, bytes], Job] = {}
    for job in jobs:
        rest = {k: v for k, v in job.kwargs.items() if k != "position"}
        key = (job.task, job.queue, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS))
        earlier = merged.get(key)
        if earlier is None or job.kwargs.get("position", 0) >= earlier.kwargs.get("position", 0):
            merged.pop(key, None)  # re-insert: the wake-up goes out in the order of its latest event
            merged[key] = job
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
    def __init__(self, store: EventStore, dispatcher: Dispatcher, *, batch_size: int = 500) -> None:
        self.store, self.dispatcher, self.batch_size = store, dispatcher, batch_size

    def run_batch(self) -> int:
        checkpoint = self.store.subscription_position(SUBSCRIPTION)
        batch = self.store.read(after=checkpoint, limit=self.batch_size)
        if not batch:
            return 0
        jobs = coalesce([job for event in batch for react in REACTIONS.get(event.type, ()) for job in react(event)])
        if jobs:
            self.dispatcher.dispatch(jobs)
        if not self.store.set_subscription_position(SUBSCRIPTION, batch[-1].position, expected=checkpoint):
            log.info("reactor checkpoint moved concurrently; another reactor dispatched this batch too")
        return len(batch)

    def run_until_idle(self) -> int:
        total = 0
        while applied := self.run_batch():
            total += applied
        return total
