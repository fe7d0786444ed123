"""The Celery application: broker, queues, routes and the reliability settings, with reasons.

Queues: ``projections`` (catch-up of the read model; correctness does not depend on how many
consumers it has, because the projector serialises on the database write lock), ``media`` (image
work), ``embeddings`` (API/model calls, scale out) and ``vectors`` (LanceDB writes, run with
concurrency 1: one writer).
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import before_task_publish
from kombu import Exchange, Queue

from pipeline.settings import Settings
from pipeline.status import SENT_AT_HEADER

from .embedded_broker import register_transport

register_transport()

QUEUES = ("projections", "media", "embeddings", "vectors")

# The longest task (a large image on a slow AVIF setting) must finish well inside the visibility
# timeout, or Redis would hand the same message to a second worker while the first still runs.
TASK_SOFT_TIME_LIMIT = 300
TASK_TIME_LIMIT = 360
VISIBILITY_TIMEOUT = 3600
# RabbitMQ closes a channel whose delivery stays unacknowledged longer than its ``consumer_timeout``
# (server setting, default 1 800 s). The longest hold is one attempt (TASK_TIME_LIMIT) or a retry's
# countdown held by the worker (RetryPolicy.backoff_max, 300 s): both well under it.
RABBITMQ_CONSUMER_TIMEOUT = 1800
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def uses_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def amqp_queue_type() -> str:
    """``classic`` (durable, the default) or ``quorum`` (replicated: for a RabbitMQ cluster)."""
    value = os.environ.get("CHRONICLE_AMQP_QUEUE_TYPE", "classic").lower()
    if value not in ("classic", "quorum"):
        raise ValueError(f"CHRONICLE_AMQP_QUEUE_TYPE must be classic or quorum, not {value!r}")
    return value


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    url = settings.resolved_broker_url
    app = Celery("chronicle", broker=url, include=["workers.tasks"])
    # visibility_timeout matters for Redis/SQS-style brokers; the SQL transport has no such option.
    # RabbitMQ: publisher confirms, so a publish that returned is on the broker's disk (durable queues,
    # persistent messages), and survives a broker restart.
    transport_options: dict[str, object] = {}
    queue_arguments: dict[str, object] | None = None
    if uses_amqp(url):
        transport_options = {"confirm_publish": True}
        if amqp_queue_type() == "quorum":
            queue_arguments = {"x-queue-type": "quorum"}
    elif not settings.uses_embedded_broker:
        transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
    app.conf.update(
        # One direct exchange per queue, bound by its own name: on RabbitMQ a message reaches exactly its
        # queue (an unnamed exchange would default to ``projections`` for all four, with one key).
        task_queues=[Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True,
                           queue_arguments=queue_arguments) for name in QUEUES],
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
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Publishing from the CMS side must fail fast when the broker is down (the sweeper recovers).
        broker_connection_timeout=float(os.environ.get("CHRONICLE_BROKER_CONNECT_TIMEOUT", "2")),
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
