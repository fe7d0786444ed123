"""Dead letters: every job that failed for good, visible, redrivable, rebuilt from the log.

``events`` (JobFailed, FailureRetryRequested, FailureResolved), the ``failures`` projection
(``projection``: other subsystems feed it their own failure outcomes), the redrive reaction (``jobs``)
and the functions the CLI and HTTP share to list and redrive failures (``dead_letters``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.registry import Registry
    from pipeline.settings import Settings


def register(registry: Registry, settings: Settings) -> None:
    from pipeline.projection import Projection

    from . import (
        dead_letters,
        events,  # noqa: F401  (registers the dead-letter event types)
        jobs,
        projection,
    )

    registry.add_projection(Projection("failures", projection.TABLES, projection.HANDLERS,
                                       reads=("failures",)))
    registry.add_reaction("FailureRetryRequested", jobs.on_retry_requested)
    registry.add_status_section("failures", lambda ctx: dead_letters.counts(ctx.settings.projection_db_path))
