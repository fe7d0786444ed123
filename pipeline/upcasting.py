"""Upcasters turn payloads written under an older schema version into today's shape, on read.

The log is never rewritten: an event keeps the ``schema_version`` it was recorded with, and readers
run it through the chain ``v1 → v2 → … → current`` registered here. Register one function per step:

    @upcaster("PageCreated", from_version=1)
    def page_created_v1_to_v2(data): ...   # returns the v2 payload
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn`` as the step from ``from_version`` to ``from_version + 1`` of ``event_type``."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"upcaster for {event_type} v{from_version} registered twice")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, version: int, data: Payload) -> tuple[int, Payload]:
    """Apply every registered step starting at ``version``; returns the final version and payload."""
    step = UPCASTERS.get((event_type, version))
    while step is not None:
        data = step(data)
        version += 1
        step = UPCASTERS.get((event_type, version))
    return version, data
