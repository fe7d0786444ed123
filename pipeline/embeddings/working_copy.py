"""The projections the embedding and vector jobs read, brought up to the event they act on.

Those jobs read documents and the ledger from the read model of *their own* data directory
(``$CHRONICLE_DATA_DIR/sqlite.db``), never another host's. On the host of the ``projections`` role that
is the CMS's read model. On any other host it is a *private working copy*: the same tables, derived only
from the shared log by these jobs themselves (``ensure_projected`` applies the log to ``READS``), never
read by the CMS, disposable (delete it and the next job rebuilds it from the log). So a worker host
needs the broker, the log and the shared stores, and nothing of another host's files; the CMS's read
model keeps its one writer.

Its cost is the first job on a new host: it applies the whole log to three projections before it can
act (docs/operations.md, "Several hosts", has the figures); afterwards each job applies only what was
appended since.

Erasure: ``chronicle erase`` rebuilds the CMS's ``cms`` projection so its rows hold the placeholder. A
working copy projected the subject's rows before the key was destroyed, so it must forget them too:
when a pass meets ``SubjectErased`` it rebuilds its ``cms`` from the log (which now unseals to
``[erased]``), once per erasure (``erasures.json`` records the last one applied here). Without it the
copy would keep the plaintext on disk and the jobs would re-derive vectors from it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.envelope import Recorded

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.settings import Settings

log = logging.getLogger("chronicle.embeddings")

# Projections the embedding side reads: content (cms, media) and its own ledger (embeddings).
READS = ("cms", "media", "embeddings")
ERASED_PROJECTION = "cms"  # the one whose rows hold personal fields (what ``chronicle erase`` rebuilds)
MARK = "erasures.json"


def projected_until(chronicle: JobContext) -> int:
    """The log position every projection we read has reached: safe to act on events up to here."""
    from pipeline.projector import checkpoints

    done = checkpoints(chronicle.settings.projection_db_path)
    return min(done.get(name, 0) for name in READS)


def ensure_projected(chronicle: JobContext, position: int) -> None:
    """Bring the read model up to ``position`` before acting on an event there (a worker may see the
    event before the projection task has applied it; on a worker host nothing else ever applies it)."""
    if projected_until(chronicle) < position:
        chronicle.project(READS)


def _mark_path(settings: Settings) -> Path:
    return settings.resolved_data_dir / MARK


def erasures_applied(settings: Settings) -> int:
    """The position of the last ``SubjectErased`` this data directory's read model already reflects."""
    try:
        return int(json.loads(_mark_path(settings).read_text())["position"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return 0


def mark_erasure_applied(settings: Settings, position: int) -> None:
    """Record that the read model here holds no plaintext of subjects erased up to ``position`` (the
    erase command calls it after rebuilding the CMS's read model, so that host does not rebuild twice)."""
    if position <= erasures_applied(settings):
        return
    path = _mark_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"position": position}))
    tmp.replace(path)


def forget_erased(chronicle: JobContext, events: Iterable[Recorded]) -> bool:
    """If ``events`` hold a ``SubjectErased`` this read model does not reflect yet, rebuild its ``cms``
    projection from the log (blue/green: readers see old rows or new ones) and record it. Returns
    whether it rebuilt."""
    erased = [e for e in events if e.type == "SubjectErased"]
    latest = max((e.position for e in erased), default=0)
    settings = chronicle.settings
    if latest <= erasures_applied(settings) or ERASED_PROJECTION not in chronicle.registry.projections:
        return False
    from pipeline.replay import rebuild

    shredder = getattr(chronicle, "shredder", None)  # the facade's: a key it cached would unseal the rows again
    if shredder is not None:
        for event in erased:
            shredder.forget(event.data["subject_ref"])

    log.warning("erasure at position %d: rebuilding this host's %s projection so no erased text stays here",
                latest, ERASED_PROJECTION)
    rebuild(chronicle.store, settings.projection_db_path, chronicle.registry.projections,
            projections=[ERASED_PROJECTION], batch_size=settings.replay_batch_size, writer=settings.replay_writer)
    mark_erasure_applied(settings, latest)
    return True
