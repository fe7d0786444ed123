"""Celery tasks: thin shells around functions that work (and are tested) without Celery."""

from __future__ import annotations

import logging
import time
from functools import cache

from celery.signals import task_received, worker_init, worker_process_init

from pipeline.api import Chronicle
from pipeline.jobs.execution import TransientFailure, execute
from pipeline.jobs.leases import book, hold_on_receipt, lease_location
from pipeline.jobs.runner import run_sweep_hooks
from pipeline.jobs.spec import Job
from pipeline.metrics import task_run
from pipeline.notify import CATCH_UP_TASK
from pipeline.reactor import SUBSCRIPTION as REACTOR
from pipeline.settings import Settings
from pipeline.subsystems import build_registry

from . import tasklog as _tasklog  # noqa: F401  (one structured log line per task)
from . import tracing as _tracing  # noqa: F401  (OpenTelemetry in each pool process, when OTEL_* say so)
from .app import app

log = logging.getLogger("chronicle.tasks")

# A catch-up task applies at most ``CHRONICLE_SLICE_EVENTS`` events per projection, then re-enqueues
# itself, so a long backlog never turns into one task that holds a pool slot for long (or outlives its
# time limit or the visibility timeout).


@cache
def chronicle() -> Chronicle:
    """One handle per worker process (created after fork: SQLite connections must not cross it)."""
    return Chronicle(Settings())


@worker_process_init.connect
def _fresh_handle_after_fork(**_: object) -> None:
    chronicle.cache_clear()


# Libraries with thread pools (LanceDB's async runtime, Arrow's, torch's, ONNX Runtime's) must start in the pool
# processes, never in the process that forks them: a fork copies locks held by threads that do not
# survive it. Every such import in a job is lazy; this says so loudly if one ever is not.
FORK_UNSAFE = ("lancedb", "pyarrow", "torch", "sentence_transformers", "onnxruntime")


@worker_init.connect
def _nothing_fork_unsafe_before_the_pool(**_: object) -> None:
    import sys

    loaded = [name for name in FORK_UNSAFE if name in sys.modules]
    if loaded:
        log.warning("fork hazard: %s imported in the worker's main process before the pool forks",
                    ", ".join(loaded))


class CeleryDispatcher:
    def dispatch(self, jobs: list[Job]) -> None:
        for job in jobs:
            app.send_task(job.task, kwargs=job.kwargs, queue=job.queue, task_id=job.id)


@app.task(name=CATCH_UP_TASK, bind=True, acks_late=True)
def catch_up(self, position: int | None = None) -> dict[str, int]:
    """Apply pending events to every projection, then dispatch side-effect jobs."""
    started = time.perf_counter()
    handle = chronicle()
    if position is not None and handle.caught_up_to(position):
        return {}  # a burst of appends sends a wake-up each; the first one did all the work
    limit = handle.settings.slice_events
    with task_run(CATCH_UP_TASK):
        applied = handle.project(max_events=limit)
        handle.reactor(CeleryDispatcher()).run_until_idle()
    log.info("catch_up position=%s applied=%s duration_ms=%.1f attempt=%d", position, applied,
             (time.perf_counter() - started) * 1000, self.request.retries + 1)
    if any(count >= limit for count in applied.values()):
        self.apply_async(queue="projections")
    return applied


@app.task(name="chronicle.sweep", acks_late=True)
def sweep() -> bool:
    """Periodic safety net: if anything lags (a lost wake-up, a broker outage), enqueue a catch-up;
    then let every side-effect subsystem re-send work whose wake-up was lost (``sweep_hook``)."""
    with task_run("chronicle.sweep"):
        return _sweep()


def _sweep() -> bool:
    handle = chronicle()
    status = handle.status()
    # The projection catch-up also runs the reactor; other subscribers are woken by their own jobs below.
    behind = any(p["lag"] > 0 for p in status["projections"].values()) or status["subscribers"][
        REACTOR]["lag"] > 0
    if behind:
        catch_up.apply_async(queue="projections")
    run_sweep_hooks(handle, CeleryDispatcher().dispatch)
    return behind


# Task name → queue of the jobs that hold a lease while they run (all but the subscriber catch-ups).
LEASED_TASKS: dict[str, str] = {}


@task_received.connect
def _lease_on_receipt(request: object = None, **_: object) -> None:
    """In the worker's main process, before the message goes to a pool process: lease it to this
    process (``pipeline.jobs.leases.hold_on_receipt``), so a ``kill -9`` of the whole worker before
    the job starts is recovered by the next sweep, not by the visibility timeout. A message with an
    ETA (a retry's countdown) is skipped: its lease is parked until the retry is due."""
    name, delivery = getattr(request, "name", None), getattr(request, "id", None)
    if name not in LEASED_TASKS or not delivery or getattr(request, "eta", None):
        return
    try:
        settings = _main_settings()
        hold_on_receipt(lease_location(settings), delivery,
                        Job(name, LEASED_TASKS[name], dict(getattr(request, "kwargs", None) or {})),
                        seconds=settings.lease_seconds)
    except Exception:  # a locked lease file or an unreachable database must not stop the worker taking messages
        log.exception("could not lease %s (delivery %s) on receipt", name, delivery)


@cache
def _main_settings() -> Settings:
    return Settings()


def _register_job_tasks() -> None:
    """Every registered job becomes a Celery task on its queue, with its own retry policy and dead
    letters. The names and policies come from a registry built here; each run uses the worker
    process's own handle (and so its registry).

    A job holds a lease while it runs (``pipeline.jobs.leases``): if this worker dies, the sweeper sends
    the job again within about a minute instead of Redis after its visibility timeout. Subscriber
    catch-ups take none: the sweeper wakes every lagging subscriber anyway. A job that returns
    follow-ups (the rest of a bounded slice) has them sent once it succeeded."""
    registry = build_registry(Settings())
    subscriber_tasks = {s.task for s in registry.subscribers.values()}
    LEASED_TASKS.update({name: spec.queue for name, spec in registry.jobs.items() if name not in subscriber_tasks})
    for spec in registry.jobs.values():
        def run(self, _name=spec.name, _leased=spec.name not in subscriber_tasks, **kwargs: object) -> None:
            handle = chronicle()
            job_spec = handle.registry.jobs[_name]
            attempt = self.request.retries + 1
            delivery = self.request.id
            leases = book(handle) if _leased and delivery else None
            if leases is not None:
                leases.hold(delivery, Job(_name, job_spec.queue, dict(kwargs)))
            try:
                more = execute(handle, job_spec, kwargs, attempt=attempt,
                               max_attempts=job_spec.retry.max_attempts, delivery_id=delivery)
            except TransientFailure as exc:
                settings = handle.settings
                policy = job_spec.retry.with_backoff(settings.retry_backoff_base, settings.retry_backoff_max)
                countdown = policy.delay(attempt)
                if leases is not None:
                    leases.park(delivery, countdown)
                raise self.retry(exc=exc.cause, countdown=countdown) from exc
            except BaseException:
                if leases is not None:  # a time limit or a bug: Celery records it; nothing to re-send
                    leases.release(delivery)
                raise
            CeleryDispatcher().dispatch(more)
            if leases is not None:
                leases.release(delivery)

        app.task(name=spec.name, bind=True, acks_late=True, queue=spec.queue,
                 max_retries=spec.retry.max_retries)(run)


_register_job_tasks()
