"""Projections and their pure event handlers: ``(event, current rows) → row changes``.

A handler never executes SQL. It may look at current rows through ``State.get`` (e.g. to merge
settings) and returns ``Upsert``/``Update``/``Delete`` values; the projector applies them and the
checkpoint in one transaction. That split is what makes each handler testable with a dict and
replay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from db.changes import Change
from db.values import to_unix
from pipeline.envelope import Recorded


class State(Protocol):
    """Read access to current rows, as the handler's transaction sees them."""

    def get(self, table: str, key: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any] | None: ...


Handler = Callable[[Recorded, State], Iterable[Change]]


@dataclass(frozen=True)
class Projection:
    """A named read model: the tables it owns and its handlers by event type.

    Each projection has its own checkpoint, so one can be rebuilt without touching the others, and each
    is applied by one writer at a time, in log order. A subsystem declares the projections it owns with
    ``Registry.add_projection``; another subsystem may feed one with its own events
    (``Registry.extend_projection``), which is how media and embeddings report dead letters without the
    failures projection knowing either.
    """

    name: str
    tables: tuple[str, ...]
    handlers: Mapping[str, Handler]
    version: int = 1  #: bump when handlers write different rows into unchanged tables (``db.schema``)
    #: The tables its handlers look rows up in (``State.get``). A rebuild that executes the SQL in a
    #: second process keeps a copy of these in the first, so handlers read current rows without
    #: waiting for the writer (``pipeline.replay_pipeline``); reading an undeclared table fails there.
    reads: tuple[str, ...] = ()


def event_time(event: Recorded) -> int:
    """When the event happened, in the read model's timestamp format: whole Unix seconds (floor), from
    the log, never the clock (Drizzle's ``integer(..., { mode: "timestamp" })``)."""
    return _read_model_time(event.recorded_at)


@lru_cache(maxsize=256)
def _read_model_time(recorded_at: str | datetime) -> int:
    # Cached: every event of one append shares its timestamp, and replay asks for it millions of times.
    if isinstance(recorded_at, datetime):
        return to_unix(recorded_at)  # type: ignore[return-value]
    return to_unix(datetime.fromisoformat(recorded_at.replace("Z", "+00:00")))  # type: ignore[return-value]


def sql_time(value: str | None, event: Recorded) -> int:
    """A timestamp the CMS sent (any ISO-8601 offset; naive means UTC) as whole Unix seconds; else the
    event time."""
    if not value:
        return event_time(event)
    return to_unix(datetime.fromisoformat(value))  # type: ignore[return-value]


def pick(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """The fields of a partial update that were actually sent."""
    return {n: data[n] for n in names if n in data}
