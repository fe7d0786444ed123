"""Side-effect job handlers by task name, callable with or without Celery.

A job handler is a plain function ``fn(chronicle, **kwargs)``. ``workers.tasks`` wraps each one as a
Celery task on its queue; ``Chronicle.drain`` calls it directly. Registering here is all a new kind of
side effect needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.api import Chronicle
    from pipeline.reactor import Job

log = logging.getLogger("chronicle.jobs")

JobFn = Callable[..., None]


@dataclass(frozen=True)
class JobSpec:
    name: str
    queue: str
    fn: JobFn
    max_retries: int = 5


JOBS: dict[str, JobSpec] = {}

SweepHook = Callable[["Chronicle"], list["Job"]]
SWEEP_HOOKS: list[SweepHook] = []


def sweep_hook(fn: SweepHook) -> SweepHook:
    """Register ``fn(chronicle) -> jobs`` with the periodic sweeper: how a side-effect subsystem
    re-sends work whose wake-up was lost (broker outage, a worker killed with its message unacked)."""
    if fn not in SWEEP_HOOKS:
        SWEEP_HOOKS.append(fn)
    return fn


def run_sweep_hooks(chronicle: Chronicle, dispatch: Callable[[list[Job]], None]) -> int:
    """Hand every sweep hook's jobs to ``dispatch``; returns how many. One subsystem's trouble (its hook
    or the dispatch of its jobs) must not stop the others' recovery, so each is tried on its own and a
    failure is logged. Used by the Celery sweeper and by ``drain``."""
    count = 0
    for hook in SWEEP_HOOKS:
        try:
            jobs = hook(chronicle)
            dispatch(jobs)
            count += len(jobs)
        except Exception:
            log.exception("sweep hook %s failed", getattr(hook, "__name__", hook))
    return count


def job(name: str, *, queue: str, max_retries: int = 5) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        JOBS[name] = JobSpec(name, queue, fn, max_retries)
        return fn

    return register


INLINE_ATTEMPTS = 3


def run_job(chronicle: Chronicle, job: Job) -> None:
    """Run ``job`` in this process (``drain``): a few quick retries for transient errors, then the
    failure is recorded as a dead letter exactly as a Celery worker would."""
    from .execution import TransientFailure, backoff, execute

    spec = JOBS.get(job.task)
    if spec is None:
        raise KeyError(f"no job handler registered for {job.task!r}")
    for attempt in range(1, INLINE_ATTEMPTS + 1):
        try:
            execute(chronicle, spec, job.kwargs, attempt=attempt, max_attempts=INLINE_ATTEMPTS)
            return
        except TransientFailure:
            time.sleep(backoff(attempt, base=0.05, cap=1.0))
