"""``chronicle events check``: read the whole log and report every event that no longer loads.

An event can stop loading when its row is corrupt (not JSON), when its type left the catalogue, or
when a schema change lacks an upcaster (the upcast payload fails today's model). Each is reported
with its position, so the fix (an upcaster, a restored backup) can be targeted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from .errors import CorruptEvent
from .events import CATALOGUE
from .store import EventStore, decode_row


@dataclass(frozen=True, slots=True)
class Problem:
    position: int
    type: str
    reason: str


def check_log(store: EventStore, *, batch: int = 5000) -> Iterator[Problem | int]:
    """Yield a ``Problem`` per event that does not load, and the last position checked per page."""
    after = 0
    while rows := store.read_raw(after, batch):
        for row in rows:
            position, event_type = row[0], row[4]
            try:
                event = decode_row(row)
            except CorruptEvent as exc:
                yield Problem(position, event_type, str(exc))
                continue
            model = CATALOGUE.get(event_type)
            if model is None:
                yield Problem(position, event_type, f"unknown event type '{event_type}'")
                continue
            try:
                model.model_validate(event.data)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in err.get("loc", ()))
                yield Problem(position, event_type, f"schema v{row[5]} payload does not load as "
                                                    f"v{model.schema_version}: {field}: {err.get('msg')}")
        after = rows[-1][0]
        yield after
