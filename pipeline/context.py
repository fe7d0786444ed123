"""What a job, a sweep hook or a subscriber may use: a narrow view of the running Chronicle.

Jobs used to receive the whole facade; they need four things, so that is all this protocol promises:
the settings, the log, appending events, and bringing projections up to date (a worker may see an
event before the projection task has applied it). ``Chronicle`` satisfies it; a test may hand a job any
object that does. The registry is here so a job can find its subsystem's subscriber or job specs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .envelope import Envelope
    from .registry import Registry
    from .settings import Settings
    from .store import AppendResult, EventStore


class JobContext(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> EventStore: ...

    @property
    def registry(self) -> Registry: ...

    def emit(self, type: str, data: dict[str, Any], *, stream: str | None = None, id: str | None = None,
             expected_version: int | None = None, metadata: dict[str, Any] | None = None) -> AppendResult: ...

    def emit_many(self, envelopes: Iterable[Envelope | dict[str, Any]]) -> AppendResult: ...

    def project(self, names: Iterable[str] | None = None, *, max_events: int | None = None) -> dict[str, int]: ...
