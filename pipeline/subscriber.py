"""Subscribers: followers of the log with a checkpoint of their own, kept with the log.

A projection's checkpoint lives with its rows (in the read model) so that both commit together; a
subscriber's lives with the log (the ``subscriptions`` table), so rebuilding the read model never makes
it run again: a replay costs no encode and no API call. The reactor (facts → jobs), the embedding
catch-up and the vector writer are subscribers. They all do the same three steps, written once here:

1. read the checkpoint,
2. read the log after it,
3. move the checkpoint with compare-and-set (two workers that raced covered the same range; the one
   that loses the compare-and-set says so and changes nothing).

Each subscriber also names the job that wakes it (``wake``), so the sweeper and ``drain`` can catch any
lagging subscriber up without a special case per subsystem, and says whether it is ``active`` (the
embedding subscribers are idle while embeddings are switched off; their checkpoints then stay behind on
purpose and are not reported as lag).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .jobs.spec import Job
    from .store import EventStore

log = logging.getLogger("chronicle.subscriber")


def lag_seconds(store: EventStore, checkpoint: int) -> float:
    """Seconds since the first event after ``checkpoint`` was recorded; 0 when there is none."""
    recorded = store.recorded_at_after(checkpoint)
    if recorded is None:
        return 0.0
    at = datetime.fromisoformat(recorded)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, round((datetime.now(UTC) - at).total_seconds(), 3))


@dataclass(eq=False)
class Subscriber:
    """One follower of the log. ``task``/``queue`` name the job that runs its catch-up."""

    name: str
    task: str
    queue: str
    active: Callable[[], bool] = lambda: True
    #: A lower bound of the checkpoint per store: it only moves forward, so a wake-up for a position at
    #: or below it needs no query. A burst of N events dispatches N wake-ups; without this each would
    #: cost a database round trip just to learn there is nothing to do. Per handle, never global.
    _seen: dict[int, int] = field(default_factory=dict, repr=False)

    def position(self, store: EventStore) -> int:
        position = store.subscription_position(self.name)
        self._note(store, position)
        return position

    def already_past(self, store: EventStore, position: int | None) -> bool:
        """True if this subscriber has certainly processed ``position`` (cheap, usually no query)."""
        if position is None:
            return False
        if position <= self._seen.get(id(store), 0):
            return True
        return position <= self.position(store)

    def advance(self, store: EventStore, *, start: int, to: int) -> bool:
        """Move the checkpoint from ``start`` to ``to`` if nobody else moved it meanwhile."""
        if store.set_subscription_position(self.name, to, expected=start):
            self._note(store, to)
            return True
        log.info("%s checkpoint moved concurrently; another worker covered this range too", self.name)
        return False

    def lag(self, store: EventStore, head: int) -> dict[str, int | float | bool]:
        """Checkpoint, lag in events and in seconds (age of the oldest event not yet processed)."""
        checkpoint = self.position(store)
        active = self.active()
        behind = active and checkpoint < head
        return {"checkpoint": checkpoint, "lag": head - checkpoint if active else 0,
                "lag_seconds": lag_seconds(store, checkpoint) if behind else 0.0, "active": active}

    def wake(self, position: int) -> Job:
        """The job that catches this subscriber up to at least ``position``."""
        from .jobs.spec import Job

        return Job(self.task, self.queue, {"position": position})

    def _note(self, store: EventStore, position: int) -> None:
        key = id(store)
        self._seen[key] = max(self._seen.get(key, 0), position)
