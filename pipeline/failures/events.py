"""Operational events: dead letters and their redrive.

A job that fails for good is recorded as ``JobFailed`` (task, queue, arguments, error, attempts), so the
failure is part of the log like everything else: visible after a replay, auditable, and the
``failures`` projection is rebuilt from it. ``FailureRetryRequested`` asks for a redrive (the reactor
re-dispatches the job); ``FailureResolved`` closes the failure when the redriven job succeeds.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.events.base import EventData, Id, LongText, Title, event


@event("JobFailed", stream="failure")
class JobFailed(EventData):
    """A side-effect job exhausted its retries or failed permanently."""

    id: Id
    task: Title
    queue: Title
    kwargs: dict[str, Any] = Field(default_factory=dict)
    error: LongText
    attempts: int = Field(default=1, ge=1)
    permanent: bool = False


@event("FailureRetryRequested", stream="failure")
class FailureRetryRequested(EventData):
    """Someone asked to run a failed job again (``chronicle failures retry``, HTTP). It carries the job
    to run, so the reactor turns it into work without reading anything but this event."""

    id: Id
    task: Title
    queue: Title
    kwargs: dict[str, Any] = Field(default_factory=dict)


@event("FailureResolved", stream="failure")
class FailureResolved(EventData):
    """A redriven job succeeded."""

    id: Id
