"""Embeddings into LanceDB, reindexing and hybrid search — without paying twice.

One room: its events (``events``), the ledger projection (``projection``), the jobs and reactions
(``jobs``), the two subscribers (``sync``: texts → vectors in the cache; ``vector_sync``: vectors →
LanceDB), search (``search``) and the public API (``api``). ``register`` plugs them into the kernel.
See docs/embeddings.md for the design, settings and cost model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.registry import Registry
    from pipeline.settings import Settings


def register(registry: Registry, settings: Settings) -> None:
    """Contribute the embeddings subsystem: events, the ``embeddings`` projection (and its dead letters
    in ``failures``), the embedding and vector subscribers, their jobs and reactions, a status section."""
    from pipeline.jobs.spec import JobSpec
    from pipeline.projection import Projection
    from pipeline.subscriber import Subscriber

    from . import (
        events,  # noqa: F401  (registers the embedding event types)
        jobs,
        projection,
    )
    from .config import EmbeddingSettings
    from .touched import CONTENT_EVENTS, OUTCOME_EVENTS

    def enabled() -> bool:
        return settings.section(EmbeddingSettings).enabled

    registry.add_projection(Projection("embeddings", projection.TABLES, projection.HANDLERS,
                                       reads=("embedding_usage", "embedding_tombstones")))
    registry.extend_projection("failures", projection.FAILURE_HANDLERS)
    registry.add_subscriber(Subscriber(jobs.EMBED_SUBSCRIPTION, task=jobs.EMBED_CATCH_UP, queue=jobs.EMBED_QUEUE,
                                       active=enabled))
    registry.add_subscriber(Subscriber(jobs.VECTORS_SUBSCRIPTION, task=jobs.VECTORS_CATCH_UP,
                                       queue=jobs.VECTORS_QUEUE, active=enabled))
    for spec in (JobSpec(jobs.EMBED_CATCH_UP, jobs.EMBED_QUEUE, jobs.embeddings_catch_up),
                 JobSpec(jobs.EMBED_REINDEX, jobs.EMBED_QUEUE, jobs.embeddings_reindex),
                 JobSpec(jobs.EMBED_RETRY, jobs.EMBED_QUEUE, jobs.embeddings_retry),
                 JobSpec(jobs.VECTORS_CATCH_UP, jobs.VECTORS_QUEUE, jobs.vectors_catch_up),
                 JobSpec(jobs.VECTORS_REBUILD, jobs.VECTORS_QUEUE, jobs.vectors_rebuild)):
        registry.add_job(spec)
    on_content, on_outcome = jobs.content_reaction(enabled), jobs.outcome_reaction(enabled)
    for event_type in sorted(CONTENT_EVENTS):
        registry.add_reaction(event_type, on_content)
    for event_type in sorted(OUTCOME_EVENTS):
        registry.add_reaction(event_type, on_outcome)
    registry.add_reaction("ReindexRequested", jobs.on_reindex_requested)
    registry.add_reaction("ReindexEmbedded", jobs.on_reindex_embedded)
    # The CMS's own tables (page_embeddings…) follow a newly activated model on the next vectors pass.
    registry.add_reaction("EmbeddingIndexActivated", on_outcome)
    registry.add_sweep_hook(jobs.seed_tables_missing(enabled))
    registry.add_status_section("embeddings", _quick_status, exact=_status)
    from .redrive import plan_embedding_redrive

    registry.add_redrive_planner("embedding", plan_embedding_redrive)


def _status(ctx: object) -> object:
    from .status import embedding_status

    return embedding_status(ctx)  # type: ignore[arg-type]


def _quick_status(ctx: object) -> object:
    from .status import embedding_status

    return embedding_status(ctx, exact=False)  # type: ignore[arg-type]
