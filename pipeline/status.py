"""``chronicle status``: everything an operator asks first, in one JSON document.

Log head; per projection checkpoint and lag; the side-effect subscriber; broker queue depths; images
by status; failures; embeddings and tokens spent. Every section degrades to ``null`` with a reason
instead of failing the whole command (a status command that crashes when Redis is down is useless
exactly when it is needed).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Chronicle

log = logging.getLogger("chronicle.status")

QUEUES = ("projections", "media", "embeddings", "vectors")


def queue_depths(chronicle: Chronicle) -> dict[str, Any]:
    """Messages waiting per queue: Redis lists, RabbitMQ ready messages, or rows of the embedded SQL broker."""
    settings = chronicle.settings
    url = settings.resolved_broker_url
    try:
        if settings.uses_embedded_broker:
            path = url.split(":///", 1)[1]
            conn = sqlite3.connect(path, timeout=5)
            try:
                rows = conn.execute("SELECT q.name, count(m.id) FROM kombu_queue q LEFT JOIN kombu_message m "
                                    "ON m.queue_id = q.id AND m.visible = 1 GROUP BY q.name").fetchall()
            except sqlite3.OperationalError:
                rows = []  # no message was ever published
            finally:
                conn.close()
            found = dict(rows)
            return {"broker": "embedded", "queues": {q: found.get(q, 0) for q in QUEUES}}
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            try:
                return {"broker": "redis", "queues": {q: client.llen(q) for q in QUEUES}}
            finally:
                client.close()
        if url.startswith(("amqp://", "amqps://", "pyamqp://")):
            return {"broker": "rabbitmq", "queues": _amqp_depths(url)}
        return {"broker": url.split("://", 1)[0], "queues": None, "reason": "queue depth not supported"}
    except Exception as exc:  # the broker being down is a status to report, not a crash
        return {"broker": url.split("://", 1)[0], "queues": None, "reason": f"{type(exc).__name__}: {exc}"}


#: The header the workers' publish hook stamps on every task message (``workers.app``): a Redis list
#: entry carries no time of its own.
SENT_AT_HEADER = "chronicle_sent_at"


def oldest_message_ages(chronicle: Chronicle) -> dict[str, float | None] | None:
    """Seconds the oldest waiting message of each queue has waited (None: the queue is empty or the
    message predates the stamp). None when the broker cannot say (unsupported, or down)."""
    import json
    import time
    from datetime import datetime

    settings = chronicle.settings
    url = settings.resolved_broker_url
    try:
        if settings.uses_embedded_broker:
            conn = sqlite3.connect(url.split(":///", 1)[1], timeout=5)
            try:
                rows = conn.execute("SELECT q.name, min(m.timestamp) FROM kombu_queue q JOIN kombu_message m "
                                    "ON m.queue_id = q.id AND m.visible = 1 GROUP BY q.name").fetchall()
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
            now = datetime.now()  # kombu stamps local naive time
            found = {name: (now - datetime.fromisoformat(at)).total_seconds() for name, at in rows if at}
            return {q: round(max(0.0, found[q]), 3) if q in found else None for q in QUEUES}
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            try:
                ages: dict[str, float | None] = {}
                for q in QUEUES:
                    raw = client.lindex(q, -1)  # kombu LPUSHes and BRPOPs: the tail is the oldest
                    sent = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER) if raw else None
                    ages[q] = round(max(0.0, time.time() - float(sent)), 3) if sent else None
                return ages
            finally:
                client.close()
        return None
    except Exception as exc:
        log.debug("queue ages unavailable: %s", exc)
        return None


def _amqp_depths(url: str) -> dict[str, int]:
    """Ready messages per queue (a passive declare: it creates nothing); a queue not declared yet is 0.
    Unacknowledged deliveries (running jobs) are not counted, as with Redis' ``unacked`` hash."""
    import amqp  # type: ignore[import-untyped]
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1)
        depths = {}
        for queue in QUEUES:
            channel = conn.channel()
            try:
                depths[queue] = channel.queue_declare(queue, passive=True).message_count
            except amqp.exceptions.NotFound:
                depths[queue] = 0  # a passive declare of a missing queue closes the channel
            finally:
                if channel.is_open:
                    channel.close()
        return depths


def full_status(chronicle: Chronicle, *, exact: bool = True) -> dict[str, Any]:
    """``Chronicle.status()`` plus the queues and every registered status section (images, failures,
    embeddings…). A section that fails reports its error instead of failing the whole status.

    ``exact=False`` (``chronicle status`` without ``--exact``) uses each section's quick variant: indexed
    and aggregate queries only, so the answer comes at once on a large read model (docs/operations.md).
    """
    status = chronicle.status()
    status["queues"] = queue_depths(chronicle)
    status["queues"]["oldest_seconds"] = oldest_message_ages(chronicle)
    registry = chronicle.registry
    for name, quick in registry.status_sections.items():
        section = registry.exact_status_sections.get(name, quick) if exact else quick
        try:
            status[name] = section(chronicle)
        except Exception as exc:  # one broken section must not hide the others
            log.warning("status section %s unavailable: %s", name, exc)
            status[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return status


def max_lag(status: dict[str, Any]) -> int:
    lags = [p["lag"] for p in status["projections"].values()] + [s["lag"] for s in status["subscribers"].values()]
    return max(lags, default=0)
