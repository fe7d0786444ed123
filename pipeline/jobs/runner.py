"""Running registered jobs without Celery: ``drain`` in-process, and the sweep hooks.

``workers.tasks`` wraps each registered job as a Celery task; ``Chronicle.drain`` calls
``run_job`` directly. Both go through ``execute``, so a job fails, retries and dead-letters the same
way in either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline import tracing
from pipeline.errors import NotFound

from .execution import TransientFailure, execute

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.registry import SweepHook
    from pipeline.subscriber import Subscriber

    from .spec import Job, JobSpec

log = logging.getLogger("chronicle.jobs")


class UnknownJob(NotFound):
    """No job is registered under that task name."""


def run_job(ctx: JobContext, job: Job) -> None:
    """Run ``job`` in this process: a few quick retries for transient errors (the job's policy), then the
    failure is recorded as a dead letter exactly as a Celery worker would."""
    spec = ctx.registry.jobs.get(job.task)
    if spec is None:
        raise UnknownJob(f"no job handler registered for {job.task!r}")
    if tracing.enabled():  # ``chronicle.job``: what a Celery worker's ``run/<task>`` span is, in-process
        with tracing.span("chronicle.job", parent=tracing.context_of(job.trace) if job.trace else None,
                          attributes={"chronicle.job.task": job.task, "chronicle.job.queue": job.queue}):
            _run(ctx, spec, job)
        return
    _run(ctx, spec, job)


def _run(ctx: JobContext, spec: JobSpec, job: Job) -> None:
    attempts = spec.retry.inline_attempts
    for attempt in range(1, attempts + 1):
        try:
            more = execute(ctx, spec, job.kwargs, attempt=attempt, max_attempts=attempts, delivery_id=job.id)
        except TransientFailure:
            time.sleep(spec.retry.delay(attempt, inline=True))
            continue
        for follow_up in more:  # the rest of a bounded slice, in this process
            run_job(ctx, follow_up)
        return


def run_sweep_hooks(ctx: JobContext, dispatch: Callable[[list[Job]], None]) -> int:
    """Hand every sweep hook's jobs to ``dispatch``; returns how many. One subsystem's trouble (its hook
    or the dispatch of its jobs) must not stop the others' recovery, so each is tried on its own and a
    failure is logged. Used by the Celery sweeper and by ``drain``.

    Besides the hooks, every active subscriber that lags the log and is caught up by a registered job
    gets its wake-up: a wake-up lost with the broker (or a killed worker) would otherwise leave it behind
    until the next event. (The reactor is caught up by the projection catch-up itself, which the
    Celery sweeper and ``drain`` run anyway.)
    Last, the jobs of workers that died holding them (``pipeline.jobs.leases``).
    """
    from .leases import orphaned_jobs

    count = 0
    subscribers = [s for s in ctx.registry.subscribers.values() if s.task in ctx.registry.jobs]
    hooks = [*ctx.registry.sweep_hooks, *(_lagging(s) for s in subscribers), orphaned_jobs]
    for hook in hooks:
        try:
            jobs = hook(ctx)
            dispatch(jobs)
            count += len(jobs)
        except Exception:
            log.exception("sweep hook %s failed", getattr(hook, "__name__", hook))
    return count


def _lagging(subscriber: Subscriber) -> SweepHook:
    def wake_if_behind(ctx: JobContext) -> list[Job]:
        if not subscriber.active():
            return []
        head = ctx.store.head()
        return [subscriber.wake(head)] if subscriber.position(ctx.store) < head else []

    wake_if_behind.__name__ = f"wake_{subscriber.name}"
    return wake_if_behind
