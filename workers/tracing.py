"""Traces in the Celery workers: the SDK and ``opentelemetry-instrumentation-celery`` in each pool process.

Celery's prefork pool forks its children from the worker's main process. A span processor exports from a
thread of its own, and a thread does not survive a fork, so tracing is set up in each child
(``worker_process_init``) as the instrumentation's documentation asks, never in the parent. The parent
runs no task (and, with ``-B``, only publishes the sweeper's schedule, which belongs to no trace). The
threads and solo pools run tasks in the main process: there ``worker_init`` sets it up.

The Celery instrumentation gives each task run a ``run/<task>`` span and each publish an
``apply_async/<task>`` span, and carries the context in the message headers: that is the hop from a
reaction (``chronicle.react``, which continues the event's trace) to its job. It is not installed in the
API process: the wake-ups it publishes name tasks it has not registered, which the instrumentation
leaves with an unfinished span; and the trace reaches the workers through the event metadata anyway
(``pipeline.tracing``).

Everything here is a no-op unless the ``OTEL_*`` variables switch traces on.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from pipeline import tracing

log = logging.getLogger("chronicle.tracing")

SERVICE = "chronicle-worker"
_instrumented = False


def instrument() -> bool:
    """Set up the SDK and the Celery instrumentation in this process (once); False when traces are off."""
    global _instrumented
    if not tracing.setup(SERVICE):
        return False
    if not _instrumented:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(tracer_provider=tracing.provider())
        _instrumented = True
    return True


@worker_process_init.connect(weak=False)
def _in_each_pool_process(**_: object) -> None:
    instrument()


@worker_init.connect(weak=False)
def _in_a_pool_without_children(sender: object = None, **_: object) -> None:
    pool = getattr(sender, "pool_cls", None)  # an alias ('prefork', 'solo', 'threads') or the class by now
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "prefork")
    if "prefork" not in name and name != "processes":
        instrument()


@worker_process_shutdown.connect(weak=False)
def _flush_before_exit(**_: object) -> None:
    """A pool process exits without running ``atexit`` hooks: export what it buffered first."""
    tracing.flush()
