"""The projections Chronicle maintains: a name, the tables it owns and its handlers.

Each projection has its own checkpoint, so one can be rebuilt without touching the others, and each is
applied by one writer at a time, in log order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import embeddings as _embeddings
from . import failures as _failures
from .handlers import Handler
from .handlers import cms as _cms
from .handlers import media as _media


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[str, ...]
    handlers: Mapping[str, Handler]
    version: int = 1  # bump when handlers write different rows into unchanged tables (db.schema)


PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        Projection("cms", _cms.TABLES, _cms.HANDLERS),
        Projection("media", _media.TABLES, _media.HANDLERS),
        Projection("embeddings", _embeddings.TABLES, _embeddings.HANDLERS),
        Projection("failures", _failures.TABLES, _failures.HANDLERS),
    )
}
