"""Redrive: a ``FailureRetryRequested`` event becomes the job it names, on that job's queue."""

from __future__ import annotations

from pipeline.envelope import Recorded
from pipeline.jobs.spec import Job


def on_retry_requested(event: Recorded) -> list[Job]:
    d = event.data
    return [Job(d["task"], d["queue"], dict(d.get("kwargs") or {}))]
