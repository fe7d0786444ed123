"""The Celery notifier: publishes ``chronicle.catch_up`` wake-ups after appends (see ``pipeline.notify``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pipeline.notify import CATCH_UP_TASK
from pipeline.redact import redact

if TYPE_CHECKING:
    from celery import Celery

    from pipeline.settings import Settings

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
        self._app: Celery | None = None
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        self._pending = 0
        self._last_sent = 0.0
        self._timer: threading.Timer | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            from .app import create_app

            self._app = create_app(self.settings)
        return self._app

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
            self.app.send_task(CATCH_UP_TASK, kwargs={"position": position}, queue="projections", retry=False)
        except Exception as exc:  # broker down, DNS, auth: the sweeper will catch up
            self._quiet_until = time.monotonic() + self.QUIET_AFTER_FAILURE
            log.warning("could not wake the workers (%s: %s); the sweeper will catch up (not retrying for %.0fs)",
                        type(exc).__name__, redact(str(exc)), self.QUIET_AFTER_FAILURE)
