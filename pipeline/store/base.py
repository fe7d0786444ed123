"""The event store interface: the one place the log is written and read.

Like eventsourcing's recorders, persistence hides behind one small abstract class, so the same contract
tests (``tests/test_store_contract.py``) run against every backend: ``SQLiteEventStore``,
``PostgresEventStore`` (both on the shared SQL logic of ``sql.SQLEventStore``) and
``InMemoryEventStore``. What is common to all of them — decoding and upcasting rows, paging — lives here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from ..envelope import NewEvent, Recorded
from ..errors import CorruptEvent
from ..upcasting import UPCASTERS, upcast

loads = orjson.loads

#: A stored row, as every backend returns it from ``read_raw``:
#: ``(position, id, stream, version, type, schema_version, data_json, metadata_json, recorded_at)``.
Row = tuple[Any, ...]


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


def utc_timestamp() -> str:
    """Fixed-width ISO-8601 UTC (``2026-01-02T03:04:05.123456Z``), so timestamps compare correctly as
    strings (``--until``). ``isoformat`` with fixed microseconds is ~3× cheaper than ``strftime``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:26] + "Z"


#: Opens sealed personal fields (``pipeline.shredding.Shredder.unseal``): (type, data, metadata) → data.
Unseal = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]


def decode_row(row: Row, unseal: Unseal | None = None) -> Recorded:
    """Row → ``Recorded``, unsealed (``unseal``) and upcast to the current schema. A row that cannot be
    decoded raises ``CorruptEvent`` naming its position: skipping it would silently fork the read model."""
    position = row[0]
    try:
        data = loads(row[6])
        meta = {} if row[7] == "{}" else loads(row[7])  # most events carry no metadata: skip the parse
        if data.__class__ is not dict or meta.__class__ is not dict:
            raise ValueError("payload is not a JSON object")
        version = row[5]
        if unseal is not None and meta:
            data = unseal(row[4], data, meta)
        if UPCASTERS:
            version, data = upcast(row[4], version, data)
    except Exception as exc:  # any decoding failure is corruption of this one row
        raise CorruptEvent(position, f"{type(exc).__name__}: {exc}") from None
    return Recorded(position, row[1], row[2], row[3], row[4], version, data, meta, row[8])


def decode_rows(rows: list[Row], unseal: Unseal | None = None) -> list[Recorded]:
    """``decode_row`` for a page of rows, inlined: a replay decodes every event of the log through here.
    Any failure re-decodes the page row by row, so the ``CorruptEvent`` names the bad row's position."""
    new, upcasters = tuple.__new__, UPCASTERS
    try:
        out = []
        for row in rows:
            data = loads(row[6])
            meta = {} if row[7] == "{}" else loads(row[7])
            if data.__class__ is not dict or meta.__class__ is not dict:
                raise ValueError("payload is not a JSON object")
            version = row[5]
            if unseal is not None and meta:
                data = unseal(row[4], data, meta)
            if (row[4], version) in upcasters:
                version, data = upcast(row[4], version, data)
            out.append(new(Recorded, (row[0], row[1], row[2], row[3], row[4], version, data, meta, row[8])))
        return out
    except Exception:
        return [decode_row(r, unseal) for r in rows]


class EventStore(ABC):
    """An append-only log with global positions and per-stream versions.

    Every backend keeps the same promises: positions are gapless and a position becomes readable only
    after every lower one; an append is atomic (all of a batch or nothing, including a batch refused
    because the store is unavailable — ``StoreUnavailable``); ids are idempotent; ``expected_version`` is
    checked per stream, counting the batch's own earlier events.
    """

    #: Where the log lives, for messages (``sqlite:///…``, ``postgresql://…``, ``memory://``).
    url: str
    #: Set by ``Chronicle``: opens personal fields on every read (``pipeline.shredding``).
    unseal: Unseal | None = None

    @abstractmethod
    def append(self, events: Iterable[NewEvent]) -> AppendResult:
        """Append atomically: all of ``events`` or none. Ids already recorded are skipped as duplicates;
        an ``expected_version`` mismatch raises ``ConcurrencyConflict`` and writes nothing. A non-list
        iterable is consumed inside the transaction, so an error it raises (validation) writes nothing."""

    @abstractmethod
    def read_raw(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Row]:
        """Undecoded rows with ``after < position (<= until)``, in position order, at most ``limit``:
        ``events check`` must report bad rows rather than stop at them."""

    @abstractmethod
    def read_stream_raw(self, stream: str) -> list[Row]:
        """Undecoded rows of one stream, in version order."""

    @abstractmethod
    def head(self) -> int:
        """The highest position in the log (0 when empty)."""

    @abstractmethod
    def recorded_at_after(self, position: int) -> str | None:
        """``recorded_at`` of the first event after ``position`` (None when the log ends there): the age
        of the oldest event a consumer at ``position`` has not applied yet."""

    @abstractmethod
    def position_at(self, timestamp: str) -> int:
        """The last position recorded at or before an ISO-8601 ``timestamp``."""

    @abstractmethod
    def stream_version(self, stream: str) -> int:
        """The stream's current version (0 when it has no events)."""

    @abstractmethod
    def subscription_position(self, name: str) -> int:
        """Checkpoint of a side-effect subscriber. Kept with the log, not the projections, so that
        rebuilding projections never makes side effects run again."""

    @abstractmethod
    def set_subscription_position(self, name: str, position: int, *, expected: int | None = None) -> bool:
        """Move a subscriber's checkpoint; with ``expected`` only if it is still there (compare-and-set,
        a missing checkpoint counting as 0)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used afterwards."""

    # -- shared reading --------------------------------------------------------------------------------

    def read(self, after: int = 0, limit: int = 1000, until: int | None = None) -> list[Recorded]:
        """Events with ``after < position (<= until)``, in position order, at most ``limit``."""
        return decode_rows(self.read_raw(after, limit, until), self.unseal)

    def iter_all(self, after: int = 0, until: int | None = None, batch: int = 5000) -> Iterator[Recorded]:
        """Stream the log in bounded memory."""
        while True:
            page = self.read(after, batch, until)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].position

    def read_stream(self, stream: str) -> list[Recorded]:
        return [decode_row(r, self.unseal) for r in self.read_stream_raw(stream)]

    def first_metadata(self, streams: Iterable[str]) -> dict[str, str]:
        """The metadata JSON of each stream's first event (streams without events are left out). One
        query per few hundred streams on the SQL backends: sealing a batch asks this of every stream
        it writes to, and asking per stream costs a round trip each."""
        first: dict[str, str] = {}
        for stream in streams:
            rows = self.read_stream_raw(stream)
            if rows:
                first[stream] = rows[0][7]
        return first

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
