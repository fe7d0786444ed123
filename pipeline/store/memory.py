"""The event log in memory: for tests and for programs that embed Chronicle without a database.

Same contract as the SQL backends (``tests/test_store_contract.py`` runs it): gapless positions,
idempotent ids, ``expected_version`` per stream counting the batch's earlier events, atomic batches
(a streaming iterable is consumed under the lock and nothing is kept if it raises), compare-and-set
checkpoints. Rows are kept encoded, exactly as the SQL backends store them, so every read decodes
and upcasts afresh and a reader can never mutate the log. One lock serialises writers and readers;
nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..envelope import NewEvent
from ..errors import ConcurrencyConflict
from .base import AppendResult, EventStore, Row, utc_timestamp


class InMemoryEventStore(EventStore):
    """``EventStore`` in this process's memory (``memory://``); thread-safe."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()  # re-entrant: a streamed batch may read the log while appending
        self._rows: list[Row] = []  # position p is self._rows[p - 1]
        self._ids: dict[str, int] = {}  # event id -> position
        self._streams: dict[str, list[int]] = {}  # stream -> positions, version v at index v - 1
        self._subscriptions: dict[str, int] = {}

    def append(self, events: Iterable[NewEvent]) -> AppendResult:
        result = AppendResult()
        recorded_at = utc_timestamp()
        with self._lock:
            head = len(self._rows)
            staged: list[Row] = []
            seen: dict[str, int] = {}  # ids of this batch
            versions: dict[str, int] = {}  # stream -> version including this batch
            for index, e in enumerate(events):  # a streaming iterable is validated here, under the lock
                existing = seen.get(e.id) or self._ids.get(e.id)
                if existing is not None:
                    result.duplicates += 1
                    result.positions.append(existing)
                    continue
                current = versions.get(e.stream)
                if current is None:
                    current = len(self._streams.get(e.stream, ()))
                if e.expected_version is not None and e.expected_version != current:
                    raise ConcurrencyConflict(e.stream, e.expected_version, current, index=index)
                position = head + len(staged) + 1
                versions[e.stream] = current + 1
                seen[e.id] = position
                result.positions.append(position)
                staged.append((position, e.id, e.stream, current + 1, e.type, e.schema_version,
                               e.data_json, e.metadata_json, recorded_at))
            # Nothing above touched the log: commit the batch in one go.
            self._rows.extend(staged)
            for row in staged:
                self._ids[row[1]] = row[0]
                self._streams.setdefault(row[2], []).append(row[0])
        result.appended = len(staged)
        if staged:
            result.last_position = staged[-1][0]
        elif result.positions:
            result.last_position = max(result.positions)
        return result

    def read_raw(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Row]:
        start = max(after, 0)
        end = start + max(limit, 0)
        if until is not None:
            end = min(end, until)
        with self._lock:
            return self._rows[start:end] if end > start else []

    def read_stream_raw(self, stream: str) -> list[Row]:
        with self._lock:
            return [self._rows[p - 1] for p in self._streams.get(stream, ())]

    def head(self) -> int:
        with self._lock:
            return len(self._rows)

    def recorded_at_after(self, position: int) -> str | None:
        with self._lock:
            return self._rows[position][8] if 0 <= position < len(self._rows) else None

    def position_at(self, timestamp: str) -> int:
        with self._lock:
            # Clocks can step back, so this is the highest position at or before the moment, as in SQL.
            return max((row[0] for row in self._rows if row[8] <= timestamp), default=0)

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, ()))

    def subscription_position(self, name: str) -> int:
        with self._lock:
            return self._subscriptions.get(name, 0)

    def set_subscription_position(self, name: str, position: int, *, expected: int | None = None) -> bool:
        with self._lock:
            if expected is not None and self._subscriptions.get(name, 0) != expected:
                return False
            self._subscriptions[name] = position
            return True

    def close(self) -> None:
        """Nothing to release; the events stay readable for as long as the object lives."""
