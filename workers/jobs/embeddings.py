"""Embedding jobs and the reactions that schedule them.

- content events → ``chronicle.embeddings.catch_up`` (queue ``embeddings``, scales out) and
  ``chronicle.vectors.catch_up`` (queue ``vectors``, one writer): each is a no-op if its subscriber
  already passed the event, so a burst of events costs one real pass, not one per event;
- embedding outcomes and ``EmbeddingIndexActivated`` → ``chronicle.vectors.catch_up``;
- ``ReindexRequested`` → ``chronicle.embeddings.reindex``; ``ReindexEmbedded`` → ``chronicle.vectors.rebuild``;
- a redrive of an embedding dead letter (``chronicle failures retry embedding:…``) →
  ``chronicle.embeddings.retry`` for that one item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipeline.embeddings import seed_tables, sync, vector_sync
from pipeline.embeddings.runtime import embedding_settings
from pipeline.embeddings.touched import CONTENT_EVENTS, OUTCOME_EVENTS
from pipeline.envelope import Recorded
from pipeline.reactor import Job, reaction
from workers.registry import job, sweep_hook

if TYPE_CHECKING:
    from pipeline.api import Chronicle

EMBED_CATCH_UP = "chronicle.embeddings.catch_up"
EMBED_REINDEX = "chronicle.embeddings.reindex"
EMBED_RETRY = "chronicle.embeddings.retry"  # db/failures.EMBEDDING_RETRY_TASK: a dead letter's redrive
VECTORS_CATCH_UP = "chronicle.vectors.catch_up"
VECTORS_REBUILD = "chronicle.vectors.rebuild"


@job(EMBED_CATCH_UP, queue="embeddings")
def embeddings_catch_up(chronicle: Chronicle, position: int | None = None) -> None:
    sync.catch_up(chronicle, position)


@job(EMBED_REINDEX, queue="embeddings")
def embeddings_reindex(chronicle: Chronicle, **request: Any) -> None:
    sync.reindex(chronicle, **request)


@job(EMBED_RETRY, queue="embeddings")
def embeddings_retry(chronicle: Chronicle, *, kind: str, item_id: str, model: str, dimension: int) -> None:
    sync.retry_item(chronicle, kind=kind, item_id=item_id, model=model, dimension=dimension)


@job(VECTORS_CATCH_UP, queue="vectors")
def vectors_catch_up(chronicle: Chronicle, position: int | None = None) -> None:
    vector_sync.catch_up(chronicle, position)


@job(VECTORS_REBUILD, queue="vectors")
def vectors_rebuild(chronicle: Chronicle, **request: Any) -> None:
    vector_sync.rebuild(chronicle, **request)


def _content(event: Recorded) -> Iterable[Job]:
    if not embedding_settings().enabled:
        return []  # nothing to wake: the checkpoints stay behind, and the sweeper wakes them once switched on
    return [Job(EMBED_CATCH_UP, "embeddings", {"position": event.position}),
            Job(VECTORS_CATCH_UP, "vectors", {"position": event.position})]


def _outcome(event: Recorded) -> Iterable[Job]:
    if not embedding_settings().enabled:
        return []
    return [Job(VECTORS_CATCH_UP, "vectors", {"position": event.position})]


def _reindex(event: Recorded) -> Iterable[Job]:
    return [Job(EMBED_REINDEX, "embeddings", {**event.data, "position": event.position})]


def _rebuild(event: Recorded) -> Iterable[Job]:
    return [Job(VECTORS_REBUILD, "vectors", {**event.data, "position": event.position})]


for _type in sorted(CONTENT_EVENTS):
    reaction(_type)(_content)
for _type in sorted(OUTCOME_EVENTS):
    reaction(_type)(_outcome)
reaction("ReindexRequested")(_reindex)
reaction("ReindexEmbedded")(_rebuild)
reaction("EmbeddingIndexActivated")(_outcome)  # the CMS's tables (page_embeddings…) follow the new model


@sweep_hook
def lost_wakeups(chronicle: Chronicle) -> list[Job]:
    """Wake the embedding subscribers up again if they lag the log (their wake-up was lost with the
    broker, found by tests/chaos/test_broker_outage.py). Nothing while embeddings are switched off:
    their checkpoints then stay behind on purpose."""
    if not embedding_settings().enabled:
        return []
    head = chronicle.store.head()
    jobs = []
    if chronicle.store.subscription_position(sync.SUBSCRIPTION) < head:
        jobs.append(Job(EMBED_CATCH_UP, "embeddings", {"position": head}))
    if chronicle.store.subscription_position(vector_sync.SUBSCRIPTION) < head:
        jobs.append(Job(VECTORS_CATCH_UP, "vectors", {"position": head}))
    elif seed_tables.missing(chronicle.settings.lancedb_dir):
        jobs.append(Job(VECTORS_CATCH_UP, "vectors", {}))  # writes the CMS's tables (page_embeddings…)
    return jobs
