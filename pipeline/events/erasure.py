"""The kernel's own event: the audit record of an erasure (``chronicle erase``, ``pipeline.shredding``).

In the catalogue wherever events are (``pipeline.events`` imports it), so every process accepts it.
"""

from __future__ import annotations

from pydantic import Field

from .base import EventData, Id, Title, event


@event("SubjectErased", stream="erasure", key="subject_ref")
class SubjectErased(EventData):
    """A data subject's key was destroyed: their personal fields read as "[erased]" from now on.

    ``items`` are the search documents that held their text (re-embedded without it)."""

    subject_ref: Id
    events: int = Field(default=0, ge=0)
    items: list[dict[str, Id]] = Field(default_factory=list, max_length=100_000)
    reason: Title | None = None
