"""Side-effect jobs used by the failure tests, loaded like a user's plugin (CHRONICLE_JOB_MODULES).

``chronicle.test.flaky`` fails while a marker file exists next to the data dir (so a test "fixes the
world" by deleting it, across processes); ``chronicle.test.broken`` always fails permanently.
Reactions: ``PagePublished`` with ``title`` "flaky"/"broken" in the page stream trigger them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.envelope import Recorded
from pipeline.errors import PermanentError
from pipeline.jobs.spec import Job, JobSpec, RetryPolicy

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.registry import Registry
    from pipeline.settings import Settings


class NotAnImage(PermanentError):
    """Retrying cannot help: the job must dead-letter at once."""


def marker(ctx: JobContext) -> Path:
    return ctx.settings.resolved_data_dir / "world-is-broken"


def flaky(ctx: JobContext, page_id: str) -> None:
    if marker(ctx).exists():
        raise OSError(f"transient trouble for {page_id}")
    (ctx.settings.resolved_data_dir / f"done-{page_id}").write_text("ok")


def broken(ctx: JobContext, page_id: str) -> None:
    raise NotAnImage(f"page {page_id} can never be processed")


def on_published(event: Recorded) -> list[Job]:
    page_id = event.data["id"]
    if page_id.startswith("flaky"):
        return [Job("chronicle.test.flaky", "media", {"page_id": page_id})]
    if page_id.startswith("broken"):
        return [Job("chronicle.test.broken", "media", {"page_id": page_id})]
    return []


def register(registry: Registry, settings: Settings) -> None:
    registry.add_job(JobSpec("chronicle.test.flaky", "media", flaky, RetryPolicy(max_retries=1)))
    registry.add_job(JobSpec("chronicle.test.broken", "media", broken, RetryPolicy(max_retries=3)))
    registry.add_reaction("PagePublished", on_published)
