"""``chronicle erase --subject …``: forget a person, in an append-only log (crypto-shredding).

In this order, each step safe to repeat if the command is interrupted:

1. find the subject's events (``metadata.subject_ref``) and the search items they wrote text into;
2. destroy the subject's key (``pipeline.shredding``): from now on every read of those fields gives
   ``"[erased]"``, in every process within ``KEY_TTL`` seconds;
3. rebuild the ``cms`` projection from the log (blue/green, ``pipeline.replay``): its rows now hold the
   placeholder, exactly what any later replay produces, so ``chronicle checksum`` stays deterministic;
4. delete the items' vectors and vector-cache entries (``pipeline.embeddings.erasure``);
5. append ``SubjectErased`` (the audit record, no personal data): the embeddings subscriber re-embeds
   the items from their placeholder text. A worker host's private copy of the projections rebuilds
   its own ``cms`` when its jobs meet that event (``pipeline.embeddings.working_copy``).
"""

from __future__ import annotations

from typing import Any

from pipeline.embeddings.erasure import forget, items_of
from pipeline.embeddings.working_copy import mark_erasure_applied

from .api import Chronicle
from .errors import InvalidEvent
from .replay import rebuild
from .shredding import REF_META, subject_ref

PROJECTION = "cms"


def erase_subject(chronicle: Chronicle, subject: str, *, reason: str | None = None) -> dict[str, Any]:
    if not subject.strip():
        raise InvalidEvent("the subject must not be empty", field="subject")
    ref = subject_ref(subject)
    events = [e for e in chronicle.store.iter_all() if e.metadata.get(REF_META) == ref]
    items = items_of(events)
    had_key = chronicle.shredder.keystore.destroy(ref)
    chronicle.shredder.forget(ref)
    if PROJECTION in chronicle.registry.projections:
        rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections,
                projections=[PROJECTION], batch_size=chronicle.settings.replay_batch_size,
                writer=chronicle.settings.replay_writer)
    purged = forget(chronicle, items)
    erased = sorted(items)
    result = chronicle.emit("SubjectErased", {
        "subject_ref": ref, "events": len(events), "reason": reason,
        "items": [{"kind": k, "id": i} for k, i in erased]})
    if result.last_position:  # this host's read model was rebuilt above: its embedding jobs need not again
        mark_erasure_applied(chronicle.settings, result.last_position)
    return {"subject_ref": ref, "key_destroyed": had_key, "events": len(events),
            "items": [f"{k}:{i}" for k, i in erased], "position": result.last_position, **purged}
