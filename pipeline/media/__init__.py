"""The media pipeline: ImageUploaded → variants + metadata, safe on hostile input.

Modules, one concept each:
    storage   content-addressed files (originals, variants, manifests) and the media-root guard
    plan      pure: original size + settings → which variants to make
    limits    header checks before decoding (size, pixels, frames, mime)
    colour    pure-ish Pillow: any mode/profile/orientation → upright sRGB RGB(A)
    render    Pillow IO: decode once, resize largest→smallest, encode, keep modern only if smaller
    metadata  EXIF summary, palette, BlurHash, perceptual hash
    process   one original → result dict (what the sandbox runs)
    sandbox   a helper process with a time and memory bound, restarted after a hang or a crash
    describe  AI alt text/caption/tags through the openai vision API, with tenacity retries
    jobs      the reactions and jobs that record outcomes as events
    recovery  the sweep hook that re-sends the job of an image stuck in pending/processing
    redrive   how a media dead letter is redone
    upload    ``upload(path)``: store an original content-addressed and emit ImageUploaded
    gc        ``chronicle media gc``: remove files no image uses any more
    events    the media event types; projection: the ``images``/``image_variants`` handlers
    settings  ``MediaSettings`` (``CHRONICLE_MEDIA_*``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.registry import Registry
    from pipeline.settings import Settings


def register(registry: Registry, settings: Settings) -> None:
    """Contribute the media subsystem: events, the ``media`` projection (and its dead letters in
    ``failures``), the process/describe jobs and their reactions, the stuck-image sweep hook."""
    from db.engine import count_by
    from pipeline.jobs.spec import JobSpec
    from pipeline.projection import Projection

    from . import (
        events,  # noqa: F401  (registers the media event types)
        jobs,
        projection,
        recovery,
    )
    from .redrive import plan_image_redrive

    registry.add_projection(Projection("media", projection.TABLES, projection.HANDLERS,
                                       reads=("images",)))
    registry.extend_projection("failures", projection.FAILURE_HANDLERS)
    registry.add_job(JobSpec(jobs.PROCESS_TASK, jobs.QUEUE, jobs.process_image))
    registry.add_job(JobSpec(jobs.DESCRIBE_TASK, jobs.QUEUE, jobs.describe_image))
    registry.add_reaction("ImageUploaded", jobs.on_uploaded)
    registry.add_reaction("ImageBackfillRequested", jobs.on_backfill)
    registry.add_reaction("ImageProcessed", jobs.on_processed)
    registry.add_sweep_hook(recovery.stuck_jobs)
    registry.add_redrive_planner("image", plan_image_redrive)
    registry.add_status_section("images", lambda ctx: count_by(ctx.settings.projection_db_path, "images", "status"))
