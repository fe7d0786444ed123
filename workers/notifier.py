"""The Celery notifier: publishes ``chronicle.catch_up`` wake-ups after appends (see ``pipeline.notify``).

It writes the Celery task message (protocol 2, JSON) itself, not through a Celery app: a process that
only appends (``chronicle emit``, the CMS) then starts without importing Celery, whose import and app
set-up cost more than the whole rest of a one-event ``emit``. The message is what ``app.send_task``
would send (tests/test_notifier.py compares the two; tests/test_worker_e2e.py has a real worker run
it on each broker). Redis and RabbitMQ get it through kombu, on the queues ``workers.queues`` declares
for the workers too; the embedded broker gets its one row with ``sqlite3`` (``workers.embedded_queue``),
without SQLAlchemy's ORM.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from pipeline.notify import CATCH_UP_TASK
from pipeline.redact import redact
from pipeline.status import SENT_AT_HEADER

from .queues import connect_timeout, register_transport, task_queues, transport_options

if TYPE_CHECKING:
    import sqlite3

    from kombu import Connection

    from pipeline.settings import Settings

WAKE_QUEUE = "projections"


def task_message(task: str, kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Body, headers and properties of a Celery protocol-2 message calling ``task(**kwargs)`` (what
    ``celery.app.amqp.AMQP.as_task_v2`` builds for a plain ``send_task``), plus the sent-at stamp the
    workers' publish hook adds (``workers.app``)."""
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None,
               "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
               "root_id": task_id, "parent_id": None, "argsrepr": "()", "kwargsrepr": repr(kwargs),
               "origin": f"gen{os.getpid()}@{socket.gethostname()}", "ignore_result": None,
               "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
               SENT_AT_HEADER: time.time()}
    body = [[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    return body, headers, {"correlation_id": task_id, "reply_to": ""}

log = logging.getLogger("chronicle.notify")


class CeleryNotifier:
    """Publishes ``chronicle.catch_up`` wake-ups after appends, coalesced and failure-tolerant.

    * Coalesced: at most one message per ``COALESCE_SECONDS``; appends inside the window are carried by
      one trailing message with the highest position (a timer thread sends it). A CMS appending 500
      single events a second then sends ~200 messages, not 500, and each catch-up does real work.
      ``flush()`` (called by ``Chronicle.close``) sends a pending wake-up at once.
    * Failure-tolerant: after a failed publish it stays quiet for ``QUIET_AFTER_FAILURE`` seconds (a
      circuit breaker): with the broker down every publish would otherwise spend its connect timeout,
      and a CMS appending in a loop would crawl. Those appends are still safe; the sweeper catches up.
    """

    COALESCE_SECONDS = 0.005
    QUIET_AFTER_FAILURE = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: Connection | None = None
        self._embedded: sqlite3.Connection | None = None
        self._publish_lock = threading.Lock()  # one kombu connection: the timer thread and callers share it
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        self._pending = 0
        self._last_sent = 0.0
        self._timer: threading.Timer | None = None

    def events_appended(self, last_position: int) -> None:
        with self._lock:
            self._pending = max(self._pending, last_position)
            if self._timer is not None:
                return  # a wake-up is already scheduled and will carry this position
            wait = self._last_sent + self.COALESCE_SECONDS - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Send the pending wake-up now (if any)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            position, self._pending = self._pending, 0
            self._last_sent = time.monotonic()
        if position:
            self._publish(position)

    def _publish(self, position: int) -> None:
        if time.monotonic() < self._quiet_until:
            return
        try:
            self._send(CATCH_UP_TASK, {"position": position})
        except Exception as exc:  # broker down, DNS, auth: the sweeper will catch up
            self._quiet_until = time.monotonic() + self.QUIET_AFTER_FAILURE
            log.warning("could not wake the workers (%s: %s); the sweeper will catch up (not retrying for %.0fs)",
                        type(exc).__name__, redact(str(exc)), self.QUIET_AFTER_FAILURE)

    def _send(self, task: str, kwargs: dict[str, Any]) -> None:
        """One publish, no retry (a failure opens the circuit breaker above); the exchange, queue and
        binding are declared first, as Celery does, so a message sent before any worker ever started
        waits in its queue."""
        body, headers, properties = task_message(task, kwargs)
        if self.settings.uses_embedded_broker:
            self._put_embedded(body, headers, properties)
            return
        queue = next(q for q in task_queues(self.settings.resolved_broker_url) if q.name == WAKE_QUEUE)
        with self._publish_lock:
            try:
                connection = self._connect()
                connection.Producer().publish(
                    body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue],
                    serializer="json", headers=headers, delivery_mode=2, retry=False, **properties)
            except Exception:
                self._close_connection()  # the next publish starts from a fresh connection
                raise

    def _put_embedded(self, body: list[Any], headers: dict[str, Any], properties: dict[str, Any]) -> None:
        from . import embedded_queue

        message = embedded_queue.payload(body, headers, properties, exchange=WAKE_QUEUE, routing_key=WAKE_QUEUE)
        with self._publish_lock:
            try:
                if self._embedded is None:
                    conn = embedded_queue.connect(embedded_queue.database_path(self.settings.resolved_broker_url))
                    embedded_queue.ensure_schema(conn)
                    self._embedded = conn
                embedded_queue.put(self._embedded, WAKE_QUEUE, message)
            except Exception:
                if self._embedded is not None:
                    self._embedded.close()
                    self._embedded = None
                raise

    def _connect(self) -> Connection:
        if self._connection is None:
            from kombu import Connection

            register_transport()
            self._connection = Connection(self.settings.resolved_broker_url, connect_timeout=connect_timeout(),
                                          transport_options=transport_options(self.settings))
        return self._connection

    def _close_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.release()
            except Exception as exc:  # a broken connection may fail to close too
                log.debug("closing the broker connection failed: %s", exc)
