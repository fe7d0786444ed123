"""Waking the workers after an append: best effort by design.

The kernel only knows the ``Notifier`` protocol. The implementation is chosen by configuration, the
way eventsourcing picks a recorder: ``CHRONICLE_NOTIFIER`` names a ``module:Class`` built with the
settings (default ``workers.notifier:CeleryNotifier``, a Celery publisher), so nothing in ``pipeline/``
imports Celery or ``workers/``.

The append has already committed when we notify, so a broker that is down costs latency, never
events: the periodic sweeper (Celery beat) finds the lag and catches up. That is why every failure
here is logged and swallowed instead of raised to the CMS.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("chronicle.notify")

CATCH_UP_TASK = "chronicle.catch_up"


class Notifier(Protocol):
    def events_appended(self, last_position: int) -> None: ...

    def flush(self) -> None: ...


class NullNotifier:
    """For in-process use (``drain``) and benchmarks of the log alone."""

    def events_appended(self, last_position: int) -> None:
        return None

    def flush(self) -> None:
        return None


def load_notifier(settings: Settings) -> Notifier:
    """Build the notifier named by ``settings.notifier`` (``module:Class``; ``null`` for none)."""
    if settings.notifier in ("", "null", "none"):
        return NullNotifier()
    module, _, name = settings.notifier.partition(":")
    factory = getattr(import_module(module), name)
    notifier: Notifier = factory(settings)
    return notifier
