"""Side-effect jobs used by the failure tests, loaded like a user's plugin (CHRONICLE_JOB_MODULES).

``chronicle.test.flaky`` fails while a marker file exists next to the data dir (so a test "fixes the
world" by deleting it, across processes); ``chronicle.test.broken`` always fails permanently.
Reactions: ``PagePublished`` with ``title`` "flaky"/"broken" in the page stream trigger them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.envelope import Recorded
from pipeline.reactor import Job, reaction
from workers.registry import job

if TYPE_CHECKING:
    from pipeline.api import Chronicle


class NotAnImage(Exception):
    permanent = True


def marker(chronicle: Chronicle) -> Path:
    return chronicle.settings.resolved_data_dir / "world-is-broken"


@job("chronicle.test.flaky", queue="media", max_retries=1)
def flaky(chronicle: Chronicle, page_id: str) -> None:
    if marker(chronicle).exists():
        raise OSError(f"transient trouble for {page_id}")
    (chronicle.settings.resolved_data_dir / f"done-{page_id}").write_text("ok")


@job("chronicle.test.broken", queue="media", max_retries=3)
def broken(chronicle: Chronicle, page_id: str) -> None:
    raise NotAnImage(f"page {page_id} can never be processed")


@reaction("PagePublished")
def on_published(event: Recorded) -> list[Job]:
    page_id = event.data["id"]
    if page_id.startswith("flaky"):
        return [Job("chronicle.test.flaky", "media", {"page_id": page_id})]
    if page_id.startswith("broken"):
        return [Job("chronicle.test.broken", "media", {"page_id": page_id})]
    return []
