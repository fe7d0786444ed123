"""The event store interface: the one place the log is written and read.

Like eventsourcing's recorders, persistence hides behind a small interface so the same contract tests
run against every backend (``store_sql`` implements it for SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .envelope import NewEvent, Recorded


@dataclass(slots=True)
class AppendResult:
    """What an append did. ``positions[i]`` is where input event *i* lives (for a duplicate: where the
    earlier copy lives), so a client can correlate its batch with the log."""

    appended: int = 0
    duplicates: int = 0
    last_position: int | None = None
    positions: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, int | None]:
        return {"appended": self.appended, "duplicates": self.duplicates, "last_position": self.last_position}


class EventStore(Protocol):
    """An append-only log with global positions and per-stream versions."""

    def append(self, events: Iterable[NewEvent]) -> AppendResult:
        """Append atomically: all of ``events`` or none. Ids already recorded are skipped as duplicates;
        an ``expected_version`` mismatch raises ``ConcurrencyConflict`` and writes nothing."""
        ...

    def read(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Recorded]:
        """Events with ``after < position (<= until)``, in position order, at most ``limit``."""
        ...

    def iter_all(self, after: int = 0, until: int | None = None, batch: int = 5000) -> Iterator[Recorded]:
        """Stream the log in bounded memory."""
        ...

    def read_stream(self, stream: str) -> list[Recorded]: ...

    def head(self) -> int:
        """The highest position in the log (0 when empty)."""
        ...

    def recorded_at_after(self, position: int) -> str | None:
        """``recorded_at`` of the first event after ``position`` (None when the log ends there)."""
        ...

    def position_at(self, timestamp: str) -> int:
        """The last position recorded at or before an ISO-8601 ``timestamp``."""
        ...

    def stream_version(self, stream: str) -> int: ...

    def subscription_position(self, name: str) -> int:
        """Checkpoint of a side-effect subscriber. Kept with the log, not the projections, so that
        rebuilding projections never makes side effects run again."""
        ...

    def set_subscription_position(self, name: str, position: int, *, expected: int | None = None) -> bool:
        """Move a subscriber's checkpoint; with ``expected`` only if it is still there (compare-and-set)."""
        ...

    def close(self) -> None: ...
