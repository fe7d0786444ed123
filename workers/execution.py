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
import random
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from pipeline.errors import InvalidEvent

from .redact import redact

if TYPE_CHECKING:
    from pipeline.api import Chronicle

    from .registry import JobSpec

log = logging.getLogger("chronicle.jobs")

FAILURE_KEY = "_failure_id"
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0  # well under the broker's visibility timeout (workers/app.py)


class TransientFailure(Exception):
    """The job failed in a way a later attempt may not; ``cause`` is the original exception."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def is_permanent(exc: BaseException) -> bool:
    """Retrying cannot fix bad input or a client error; everything else (I/O, 5xx, timeouts) may pass."""
    flag = getattr(exc, "permanent", None)
    if isinstance(flag, bool):
        return flag
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
        return True
    return isinstance(exc, InvalidEvent | ValidationError | TypeError | KeyError)


def failure_id(task: str, kwargs: dict[str, Any]) -> str:
    """The same job failing again updates the same dead letter instead of adding another."""
    material = task.encode() + orjson.dumps(kwargs, option=orjson.OPT_SORT_KEYS)
    return "job:" + hashlib.sha256(material).hexdigest()[:24]


def backoff(attempt: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS) -> float:
    """Exponential backoff with jitter (half to full of the exponential step), capped."""
    step = min(cap, base * 2 ** max(attempt - 1, 0))
    return random.uniform(step / 2, step)


def execute(chronicle: Chronicle, spec: JobSpec, kwargs: dict[str, Any], *, attempt: int, max_attempts: int,
            delivery_id: str | None = None) -> None:
    kwargs = dict(kwargs)
    redrive_of = kwargs.pop(FAILURE_KEY, None)
    delivery = delivery_id or uuid.uuid4().hex
    try:
        spec.fn(chronicle, **kwargs)
    except Exception as exc:
        permanent = is_permanent(exc)
        if not permanent and attempt < max_attempts:
            raise TransientFailure(exc) from exc
        fid = redrive_of or failure_id(spec.name, kwargs)
        error = redact(f"{type(exc).__name__}: {exc}")[:4000]
        log.warning("job %s failed for good after %d attempt(s): %s", spec.name, attempt, error)
        chronicle.emit("JobFailed", {"id": fid, "task": spec.name, "queue": spec.queue, "kwargs": kwargs,
                                     "error": error, "attempts": attempt, "permanent": permanent},
                       id=f"{fid}:failed:{delivery}:{attempt}")
        return
    if redrive_of:
        chronicle.emit("FailureResolved", {"id": redrive_of}, id=f"{redrive_of}:resolved:{delivery}")
