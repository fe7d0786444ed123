"""What a side-effect job is: its name, queue, function and retry policy, declared once.

A job function is plain Python, ``fn(ctx, **kwargs)`` with ``ctx`` a ``JobContext``; it knows nothing of
Celery. A long job does a bounded slice (``CHRONICLE_TASK_SLICE_SECONDS`` / ``_SLICE_EVENTS``) and returns
the ``Job``(s) that continue it: the runner sends them once the slice succeeded (``follow_ups``).
``Chronicle.drain`` runs it in-process (``pipeline.jobs.runner``) and ``workers.tasks`` wraps it
as a Celery task on its queue: both read the same ``RetryPolicy``, so how often and how patiently a job
is retried is written in one place, next to the job.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JobFn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of side-effect work: a task name, its queue and JSON-able kwargs."""

    task: str
    queue: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: The delivery (Celery task id) to send it under; ``None``: a new one. A job re-sent for a dead
    #: worker keeps its delivery, so its outcome is recorded once (``pipeline.jobs.leases``).
    id: str | None = None
    #: The W3C trace context of the reaction that made it (traces on), for ``drain``'s in-process run;
    #: on Celery the message headers carry it instead (``workers.tracing``). Not part of its identity.
    trace: dict[str, str] | None = field(default=None, compare=False)


def follow_ups(result: object) -> list[Job]:
    """The continuation jobs a job function returned (a ``Job``, a list of them, or anything else: none)."""
    if isinstance(result, Job):
        return [result]
    if isinstance(result, list | tuple):
        return [j for j in result if isinstance(j, Job)]
    return []


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a job is retried after a transient failure (a permanent one is never retried).

    Exponential backoff with jitter: attempt *n* waits a random time between half and all of
    ``min(backoff_max, backoff_base * 2**(n-1))``. ``CHRONICLE_RETRY_BACKOFF_BASE`` / ``_MAX`` override
    the two for every job on a worker (``with_backoff``).
    """

    #: Retries after the first attempt on a worker (so ``max_retries + 1`` attempts in all).
    max_retries: int = 5
    #: Attempts in all when ``drain`` runs the job in-process: a CLI user should not wait minutes.
    inline_attempts: int = 3
    #: First retry delay on a worker, seconds.
    backoff_base: float = 2.0
    #: Largest retry delay on a worker, seconds; well under the broker's visibility timeout.
    backoff_max: float = 300.0
    #: First and largest retry delay in-process, seconds.
    inline_backoff_base: float = 0.05
    inline_backoff_max: float = 1.0

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, attempt: int, *, inline: bool = False) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base, cap = ((self.inline_backoff_base, self.inline_backoff_max) if inline
                     else (self.backoff_base, self.backoff_max))
        return backoff(attempt, base=base, cap=cap)

    def with_backoff(self, base: float, cap: float) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.inline_attempts, base, cap, self.inline_backoff_base,
                           self.inline_backoff_max)


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter (half to full of the exponential step), capped."""
    step = min(cap, base * 2 ** max(attempt - 1, 0))
    return random.uniform(step / 2, step)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A registered job: ``Registry.add_job(JobSpec(name, queue, fn))``."""

    name: str
    queue: str
    fn: JobFn
    retry: RetryPolicy = RetryPolicy()

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries
