"""Running a side-effect job so that every failure ends in the log.

One function, ``execute``, used by both the Celery task wrapper and in-process ``drain``:

* success → nothing to record, except ``FailureResolved`` when the run was a redrive;
* transient failure with attempts left → ``TransientFailure`` (the caller waits and retries:
  Celery with an exponential, jittered countdown; ``drain`` with a short in-process backoff);
* permanent failure, or the last attempt → a ``JobFailed`` event (the dead letter).

Event ids derive from the delivery (Celery's task id and attempt), so a message delivered twice
records its outcome once.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.errors import is_permanent
from pipeline.metrics import task_run
from pipeline.redact import redact

from .spec import Job, follow_ups

if TYPE_CHECKING:
    from pipeline.context import JobContext

    from .spec import JobSpec

log = logging.getLogger("chronicle.jobs")

FAILURE_KEY = "_failure_id"


class TransientFailure(Exception):
    """The job failed in a way a later attempt may not; ``cause`` is the original exception."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def failure_id(task: str, kwargs: dict[str, Any]) -> str:
    """The same job failing again updates the same dead letter instead of adding another."""
    material = task.encode() + orjson.dumps(kwargs, option=orjson.OPT_SORT_KEYS)
    return "job:" + hashlib.sha256(material).hexdigest()[:24]


def execute(ctx: JobContext, spec: JobSpec, kwargs: dict[str, Any], *, attempt: int, max_attempts: int,
            delivery_id: str | None = None) -> list[Job]:
    """Run ``spec`` once; raise ``TransientFailure`` if the caller should retry, else record the outcome.
    Returns the jobs that continue a bounded slice (to send, or run, after this one)."""
    with task_run(spec.name) as outcome:
        return _execute(ctx, spec, kwargs, attempt=attempt, max_attempts=max_attempts, delivery_id=delivery_id,
                        outcome=outcome)


def _execute(ctx: JobContext, spec: JobSpec, kwargs: dict[str, Any], *, attempt: int, max_attempts: int,
             delivery_id: str | None, outcome: dict[str, str]) -> list[Job]:
    kwargs = dict(kwargs)
    redrive_of = kwargs.pop(FAILURE_KEY, None)
    delivery = delivery_id or uuid.uuid4().hex
    try:
        result = spec.fn(ctx, **kwargs)
    except Exception as exc:
        permanent = is_permanent(exc)
        if not permanent and attempt < max_attempts:
            outcome["outcome"] = "retried"
            raise TransientFailure(exc) from exc
        fid = redrive_of or failure_id(spec.name, kwargs)
        error = redact(f"{type(exc).__name__}: {exc}")[:4000]
        log.warning("job %s failed for good after %d attempt(s): %s", spec.name, attempt, error)
        ctx.emit("JobFailed", {"id": fid, "task": spec.name, "queue": spec.queue, "kwargs": kwargs,
                               "error": error, "attempts": attempt, "permanent": permanent},
                 id=f"{fid}:failed:{delivery}:{attempt}")
        outcome["outcome"] = "dead_lettered"
        return []
    more = follow_ups(result)
    if redrive_of and more:  # the redrive goes on: the continuation carries the failure to resolve
        more = [Job(j.task, j.queue, {**j.kwargs, FAILURE_KEY: redrive_of}, j.id) for j in more]
    elif redrive_of:
        ctx.emit("FailureResolved", {"id": redrive_of}, id=f"{redrive_of}:resolved:{delivery}")
    return more
