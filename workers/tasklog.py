"""One structured line per task run: what ran, on which event, how long, which attempt, how it ended.

JSON lines on the ``chronicle.task`` logger, e.g.::

    {"task": "chronicle.media.process", "state": "SUCCESS", "duration_ms": 412.3, "attempt": 1,
     "queue": "media", "task_id": "…", "image_id": "42", "position": 1234, "stream": "image-42"}

Only identifying arguments are logged (ids, positions, streams), never payloads, and every line
passes through the secret redactor, so an API key inside an exception message never reaches a log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from celery.signals import task_postrun, task_prerun, worker_process_init

from pipeline.redact import RedactingFilter, redact

log = logging.getLogger("chronicle.task")
CONTEXT_KEYS = ("position", "stream", "image_id", "page_id", "id", "kind", "cause", "reindex_id")
_started: dict[str, float] = {}


def context_of(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The identifying arguments of a task, short enough for a log line."""
    out: dict[str, Any] = {}
    for key in CONTEXT_KEYS:
        value = (kwargs or {}).get(key)
        if isinstance(value, int | str):
            out[key] = value if isinstance(value, int) else value[:200]
    if "stream" not in out and "image_id" in out:
        out["stream"] = f"image-{out['image_id']}"
    return out


def format_line(fields: dict[str, Any]) -> str:
    return redact(orjson.dumps(fields, default=str).decode())


@task_prerun.connect
def _on_start(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _on_end(task_id: str | None = None, task: Any = None, kwargs: dict[str, Any] | None = None,
            state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    request = getattr(task, "request", None)
    fields = {
        "task": getattr(task, "name", "?"),
        "state": state,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "attempt": (getattr(request, "retries", 0) or 0) + 1,
        "queue": (getattr(request, "delivery_info", None) or {}).get("routing_key"),
        "task_id": task_id,
        **context_of(kwargs),
    }
    log.info(format_line(fields))


@worker_process_init.connect
def _redact_every_handler(**_: Any) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
