"""The Celery application: broker, queues, routes and the reliability settings, with reasons.

Queues: ``projections`` (catch-up of the read model; correctness does not depend on how many
consumers it has, because the projector serialises on the database write lock), ``media`` (image
work), ``embeddings`` (API/model calls, scale out) and ``vectors`` (LanceDB writes, run with
concurrency 1: one writer).
"""

from __future__ import annotations

import time

from celery import Celery
from celery.signals import before_task_publish

from pipeline.settings import Settings
from pipeline.status import SENT_AT_HEADER

from .queues import (
    AMQP_SCHEMES,
    QUEUES,
    VISIBILITY_TIMEOUT,
    amqp_queue_type,
    connect_timeout,
    register_transport,
    task_queues,
    transport_options,
    uses_amqp,
)

register_transport()

__all__ = ["AMQP_SCHEMES", "QUEUES", "VISIBILITY_TIMEOUT", "amqp_queue_type", "app", "create_app", "uses_amqp"]

# The longest task (a large image on a slow AVIF setting) must finish well inside the visibility
# timeout, or Redis would hand the same message to a second worker while the first still runs.
TASK_SOFT_TIME_LIMIT = 300
TASK_TIME_LIMIT = 360
# RabbitMQ closes a channel whose delivery stays unacknowledged longer than its ``consumer_timeout``
# (server setting, default 1 800 s). The longest hold is one attempt (TASK_TIME_LIMIT) or a retry's
# countdown held by the worker (RetryPolicy.backoff_max, 300 s): both well under it.
RABBITMQ_CONSUMER_TIMEOUT = 1800


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    url = settings.resolved_broker_url
    app = Celery("chronicle", broker=url, include=["workers.tasks"])
    app.conf.update(
        task_queues=task_queues(url),  # workers.queues: the notifier declares the same ones
        task_default_queue="projections",
        task_routes={"chronicle.catch_up": {"queue": "projections"}, "chronicle.sweep": {"queue": "projections"}},
        # At-least-once: ack after the task ran, and give the message back if the worker process dies.
        # Exactly-once *effects* come from the projector's checkpoint and idempotent side effects.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Long tasks: do not let one process hoard messages another idle process could run.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        task_time_limit=TASK_TIME_LIMIT,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=connect_timeout(),
        beat_schedule={
            "chronicle-sweep": {"task": "chronicle.sweep", "schedule": settings.sweep_interval,
                                "options": {"queue": "projections", "expires": settings.sweep_interval * 2}},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@before_task_publish.connect
def _stamp_sent_at(headers: dict[str, object] | None = None, **_: object) -> None:
    """Every task message carries when it was sent: ``chronicle status`` and ``/metrics`` report the
    age of the oldest waiting message per queue from it (a Redis list entry has no time of its own)."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


app = create_app()
