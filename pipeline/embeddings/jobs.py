"""Embedding jobs and the reactions that schedule them.

- content events → ``chronicle.embeddings.catch_up`` (queue ``embeddings``, scales out) and
  ``chronicle.vectors.catch_up`` (queue ``vectors``, one writer): each is a no-op if its subscriber
  already passed the event, so a burst of events costs one real pass, not one per event;
- embedding outcomes → ``chronicle.vectors.catch_up``;
- ``ReindexRequested`` → ``chronicle.embeddings.reindex``; ``ReindexEmbedded`` → ``chronicle.vectors.rebuild``;
- a redrive of an embedding dead letter (``chronicle failures retry embedding:…``) →
  ``chronicle.embeddings.retry`` for that one item.

The job functions import the embedding machinery when they run, not when the subsystem registers: it
pulls in LanceDB and pyarrow, which a process with embeddings off (or one that only emits) never needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pipeline.envelope import Recorded
from pipeline.jobs.spec import Job

if TYPE_CHECKING:
    from pipeline.context import JobContext

EMBED_CATCH_UP = "chronicle.embeddings.catch_up"
EMBED_REINDEX = "chronicle.embeddings.reindex"
EMBED_RETRY = "chronicle.embeddings.retry"  # the redrive of an embedding dead letter
VECTORS_CATCH_UP = "chronicle.vectors.catch_up"
VECTORS_REBUILD = "chronicle.vectors.rebuild"
EMBED_QUEUE = "embeddings"
VECTORS_QUEUE = "vectors"
EMBED_SUBSCRIPTION = "embeddings"
VECTORS_SUBSCRIPTION = "vectors"


def embeddings_catch_up(ctx: JobContext, position: int | None = None) -> Job | None:
    """One bounded slice; the rest continues in a new message (the follow-up this returns)."""
    from . import sync

    report = sync.catch_up(ctx, position, sliced=True)
    return Job(EMBED_CATCH_UP, EMBED_QUEUE, {"position": ctx.store.head()}) if report.incomplete else None


def embeddings_reindex(ctx: JobContext, **request: Any) -> Job | None:
    """One bounded slice of a reindex; an unfinished one continues with the same request, the log
    position moved on so the next slice sees what this one recorded."""
    from . import sync

    reports = sync.reindex(ctx, **request)
    if any(r.incomplete for r in reports.values()):
        return Job(EMBED_REINDEX, EMBED_QUEUE, {**request, "position": ctx.store.head()})
    return None


def embeddings_retry(ctx: JobContext, *, kind: str, item_id: str, model: str, dimension: int) -> None:
    from . import sync

    sync.retry_item(ctx, kind=kind, item_id=item_id, model=model, dimension=dimension)


def vectors_catch_up(ctx: JobContext, position: int | None = None) -> Job | None:
    from . import vector_sync

    more = vector_sync.catch_up_slice(ctx, position)
    return Job(VECTORS_CATCH_UP, VECTORS_QUEUE, {"position": ctx.store.head()}) if more else None


def vectors_rebuild(ctx: JobContext, **request: Any) -> None:
    from . import vector_sync

    vector_sync.rebuild(ctx, **request)


def content_reaction(enabled: Callable[[], bool]) -> Callable[[Recorded], Iterable[Job]]:
    """Content changed → wake both embedding subscribers (nothing while embeddings are off: the
    checkpoints stay behind, and the sweeper wakes them once switched on)."""

    def on_content(event: Recorded) -> Iterable[Job]:
        if not enabled():
            return []
        return [Job(EMBED_CATCH_UP, EMBED_QUEUE, {"position": event.position}),
                Job(VECTORS_CATCH_UP, VECTORS_QUEUE, {"position": event.position})]

    return on_content


def outcome_reaction(enabled: Callable[[], bool]) -> Callable[[Recorded], Iterable[Job]]:
    """An embedding outcome was recorded → the vector writer has rows to write."""

    def on_outcome(event: Recorded) -> Iterable[Job]:
        if not enabled():
            return []
        return [Job(VECTORS_CATCH_UP, VECTORS_QUEUE, {"position": event.position})]

    return on_outcome


def seed_tables_missing(enabled: Callable[[], bool]) -> Callable[[JobContext], list[Job]]:
    """A sweep hook: an install from before the CMS's tables (``page_embeddings``…) gets them written,
    and one from before chunking its layout migration requested, by the next vectors pass, even when
    the log has nothing new."""

    def write_seed_tables(ctx: JobContext) -> list[Job]:
        # Tables on object storage were made by a release that writes the CMS's tables and the chunked
        # layout, and the markers below are the vector writer's host's, not the sweeper's: skip.
        if not enabled() or ctx.settings.lancedb_remote:
            return []
        from . import layout, seed_tables

        directory = ctx.settings.lancedb_dir
        if not seed_tables.missing(directory) and not layout.legacy_on_disk(directory):
            return []
        return [Job(VECTORS_CATCH_UP, VECTORS_QUEUE, {})]

    return write_seed_tables


def on_reindex_requested(event: Recorded) -> Iterable[Job]:
    return [Job(EMBED_REINDEX, EMBED_QUEUE, {**event.data, "position": event.position})]


def on_reindex_embedded(event: Recorded) -> Iterable[Job]:
    return [Job(VECTORS_REBUILD, VECTORS_QUEUE, {**event.data, "position": event.position})]
