"""The queues and how to reach the broker, without Celery: what the Celery app and the notifier share.

The notifier publishes from the CMS side and from ``chronicle emit``, which must not pay Celery's
import (tests/test_cli_imports.py); it still has to declare the very queues the workers consume
(same exchange, binding and RabbitMQ arguments), so both take them from here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kombu import Queue

    from pipeline.settings import Settings

QUEUES = ("projections", "media", "embeddings", "vectors")

# Redis hands a message that was not acknowledged within this time to another worker: the longest task
# must finish well inside it (``workers.app``'s time limits).
VISIBILITY_TIMEOUT = 3600
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
#: ``chronicle+sqlite:///PATH``: the embedded broker (``workers.embedded_broker``).
SCHEME = "chronicle"


def uses_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def amqp_queue_type() -> str:
    """``classic`` (durable, the default) or ``quorum`` (replicated: for a RabbitMQ cluster)."""
    value = os.environ.get("CHRONICLE_AMQP_QUEUE_TYPE", "classic").lower()
    if value not in ("classic", "quorum"):
        raise ValueError(f"CHRONICLE_AMQP_QUEUE_TYPE must be classic or quorum, not {value!r}")
    return value


def task_queues(url: str) -> list[Queue]:
    """One direct exchange per queue, bound by its own name: on RabbitMQ a message reaches exactly its
    queue (an unnamed exchange would default to ``projections`` for all four, with one key)."""
    from kombu import Exchange, Queue

    arguments = {"x-queue-type": "quorum"} if uses_amqp(url) and amqp_queue_type() == "quorum" else None
    return [Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True,
                  queue_arguments=arguments) for name in QUEUES]


def transport_options(settings: Settings) -> dict[str, object]:
    """RabbitMQ: publisher confirms, so a publish that returned is on the broker's disk (durable queues,
    persistent messages) and survives a broker restart. ``visibility_timeout`` matters for Redis/SQS-style
    brokers; the SQL transport has no such option."""
    url = settings.resolved_broker_url
    if uses_amqp(url):
        return {"confirm_publish": True}
    if not settings.uses_embedded_broker:
        return {"visibility_timeout": VISIBILITY_TIMEOUT}
    return {}


def connect_timeout() -> float:
    """Publishing from the CMS side must fail fast when the broker is down (the sweeper recovers)."""
    return float(os.environ.get("CHRONICLE_BROKER_CONNECT_TIMEOUT", "2"))


def register_transport() -> None:
    """Make ``chronicle+sqlite:///path`` URLs use the embedded transport (in every process that calls
    this); kombu imports ``workers.embedded_broker`` (and SQLAlchemy) only when such a URL connects."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault(SCHEME, "workers.embedded_broker:Transport")
