"""The embedding workers' logic: incremental catch-up after content events, and reindex requests.

Incremental: a subscriber with its own checkpoint (``embeddings``, kept with the log like the reactor's,
so replay never resets it) reads the content events since its checkpoint — bounded by what the
projections have applied — and embeds every touched item whose (hash, model, dimension) is new. Many
wake-ups collapse into one pass, so 10 000 new sections become ceil(10 000 / batch) requests, not
10 000; later wake-ups find nothing to do.

Reindex: all items of a kind (or one id) against a target model; resumable because finished items are
in the ledger (for ``--force``: stamped with the reindex id) and in the cache.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pipeline.envelope import Recorded
from pipeline.errors import PermanentError

from .config import EmbeddingSettings
from .documents import chunked, load_documents
from .engine import EmbeddingRun, EmbedReport
from .jobs import EMBED_SUBSCRIPTION
from .ledger import Target, active_target, expand, needs_embedding, states, targets
from .progress import read_progress, write_progress
from .runtime import chunker_for, embedder_for, read_model, vector_cache
from .touched import Key, group, touched_by
from .working_copy import ensure_projected, forget_erased, projected_until

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.embeddings")

SUBSCRIPTION = EMBED_SUBSCRIPTION


def catch_up(chronicle: JobContext, position: int | None = None, *, sliced: bool = False) -> EmbedReport:
    """Embed what changed since the subscriber's checkpoint. Cheap no-op when already past ``position``.

    ``sliced`` (the job): one bounded slice, at most ``CHRONICLE_SLICE_EVENTS`` events, and no new batch after
    ``CHRONICLE_TASK_SLICE_SECONDS``. ``report.incomplete`` says there is more; the checkpoint moves
    only past events whose items are all embedded, and what a stopped slice embedded is in the cache
    (and the ledger), so the next slice pays nothing twice."""
    store = chronicle.store
    subscriber = chronicle.registry.subscribers[SUBSCRIPTION]
    report = EmbedReport()
    if subscriber.already_past(store, position):
        return report
    start = subscriber.position(store)
    settings = chronicle.settings.section(EmbeddingSettings)
    if not settings.enabled:
        return report  # checkpoint stays: switching embeddings on later embeds the backlog
    if position is not None:
        ensure_projected(chronicle, position)
    until = projected_until(chronicle)
    if until <= start:
        return report
    keys: list[Key] = []
    erasures: list[Recorded] = []
    last = start
    limit = chronicle.settings.slice_events if sliced else None
    deadline = time.monotonic() + chronicle.settings.task_slice_seconds if sliced else None
    for count, event in enumerate(store.iter_all(after=start, until=until), 1):
        keys.extend(touched_by(event))
        if event.type == "SubjectErased":
            erasures.append(event)
        last = event.position
        if limit is not None and count >= limit:
            break
    report.incomplete = last < until
    forget_erased(chronicle, erasures)  # a working copy: its rows of an erased subject go first
    with read_model(chronicle) as conn, vector_cache(chronicle) as cache:
        for kind, ids in sorted(expand(conn, group(keys)).items()):
            loaded = load_documents(conn, kind, ids)
            for target in targets(conn, kind, settings):
                docs = chunked(loaded, chunker_for(settings, target.model))
                current = states(conn, kind, target.model, target.dimension, docs)
                pending = [d for d in docs.values() if needs_embedding(d, current.get(d.id))]
                if pending:
                    embedder = embedder_for(settings, target.model, target.dimension)
                    run = EmbeddingRun(chronicle, embedder, cache, settings, deadline=deadline)
                    slice_report = run.run(pending)
                    report.add(slice_report)
                    if slice_report.incomplete:
                        return report  # checkpoint stays; the continuation redoes nothing paid for
    subscriber.advance(store, start=start, to=last)
    return report


class RetryNotDone(PermanentError):
    """A dead letter's redrive did not embed the item; the task wrapper records it under the redriven
    row's id (``JobFailed``), so the row is open again with this reason instead of looking resolved."""

    # Permanent: retrying at once would only be refused (and billed) again.


def retry_item(chronicle: JobContext, *, kind: str, item_id: str, model: str, dimension: int) -> EmbedReport:
    """Embed one item that the provider refused before (a dead letter's redrive).

    Not a forced reindex: a failed text has no cached vector, so one request is made for it. Its outcome
    event closes the row (``EmbeddingsComputed``); a new refusal is recorded (``EmbeddingsFailed``) and
    raised, so the redrive is not reported as a success. The vector writer picks the outcome up like
    any other. An item deleted since has nothing to embed, which counts as done.
    """
    settings = chronicle.settings.section(EmbeddingSettings)
    if not settings.enabled:
        raise RetryNotDone("embeddings are off (CHRONICLE_EMBEDDER=off)")
    # The redrive names no log position; on a worker host the copy may be behind (or new): up to the head.
    ensure_projected(chronicle, chronicle.store.head())
    with read_model(chronicle) as conn, vector_cache(chronicle) as cache:
        docs = load_documents(conn, kind, [item_id], chunker=chunker_for(settings, model))
        if not docs:
            log.info("retry of %s %s: the item no longer exists", kind, item_id)
            return EmbedReport()
        embedder = embedder_for(settings, model, dimension)
        report = EmbeddingRun(chronicle, embedder, cache, settings).run(list(docs.values()))
    if report.failed:
        raise RetryNotDone(f"the provider refused {kind} {item_id} again (see its EmbeddingsFailed event)")
    return report


# -- reindex ----------------------------------------------------------------------------------------------


def reindex(chronicle: JobContext, *, id: str, kinds: list[str], item_id: str | None = None,
            model: str | None = None, dimension: int | None = None, force: bool = False,
            position: int = 0, **_: Any) -> dict[str, EmbedReport]:
    """Carry out one ``ReindexRequested``: embed what each kind lacks for the target model, then record
    ``ReindexEmbedded`` so the vector writer (re)builds the table and swaps it in."""
    settings = chronicle.settings.section(EmbeddingSettings)
    if not settings.enabled:
        log.warning("reindex %s ignored: embeddings are off (CHRONICLE_EMBEDDER=off)", id)
        return {}
    ensure_projected(chronicle, position)
    deadline = time.monotonic() + chronicle.settings.task_slice_seconds
    progress: dict[str, dict[str, int]] = read_progress(chronicle, id)
    reports: dict[str, EmbedReport] = {}
    with read_model(chronicle) as conn, vector_cache(chronicle) as cache:
        for kind in kinds:
            active = active_target(conn, kind, settings)
            target = Target(kind, model or active.model,
                            dimension or (active.dimension if not model or model == active.model
                                          else settings.default_dimension))
            docs = load_documents(conn, kind, [item_id] if item_id else None,
                                  chunker=chunker_for(settings, target.model))
            current = states(conn, kind, target.model, target.dimension, docs if item_id else None)
            pending = [d for d in docs.values()
                       if needs_embedding(d, current.get(d.id), force_for=id if force else None)]
            entry = progress[kind] = {"total": len(docs), "done": len(docs) - len(pending)}
            write_progress(chronicle, id, progress)

            def advance(n: int, entry: dict[str, int] = entry) -> None:
                entry["done"] += n
                write_progress(chronicle, id, progress)

            embedder = embedder_for(settings, target.model, target.dimension)
            run = EmbeddingRun(chronicle, embedder, cache, settings, reindex_id=id, force=force, on_progress=advance,
                               deadline=deadline)
            report = reports[kind] = run.run(pending)
            if report.incomplete:
                return reports  # the job continues with the same request (the done part is cached)
            chronicle.emit("ReindexEmbedded", {
                "id": id, "kind": kind, "model": target.model, "dimension": target.dimension, "total": len(docs),
                "embedded": report.embedded, "cached": report.cached + entry["total"] - len(pending),
                "failed": report.failed,
            }, id=f"reindex-embedded:{id}:{kind}", metadata={"actor": "chronicle-embeddings"})
    return reports
