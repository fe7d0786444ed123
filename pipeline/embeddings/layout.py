"""Moving an installation from one row per item to one row per chunk, through the reindex machinery.

Tables of the chunked layout have their own names (``pages__<model>__<dim>__chunks``, see
``db.vectors.LAYOUT``), so the old table (``pages__<model>__<dim>``) is a *legacy* table: nothing writes
to it any more, and it answers searches until its replacement is complete. The first vectors pass
after an upgrade finds it and appends one ``ReindexRequested`` per kind (id ``layout-chunks-<kind>``,
deterministic, so asking twice is a no-op). That reindex embeds only what chunking changed — an item
that fits one chunk keeps its hash, ledger row and cached vector; a long one pays once for its chunks —
then builds the new table (shadow) and ``EmbeddingIndexActivated`` swaps search to it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from db.vectors import LAYOUT, table_name

from .config import EmbeddingSettings
from .documents import KINDS
from .ledger import Target, active_target

if TYPE_CHECKING:
    from pipeline.context import JobContext


def migration_id(kind: str) -> str:
    return f"layout-{LAYOUT}-{kind}"


def legacy_table(target: Target) -> str:
    return table_name(target.kind, target.model, target.dimension, layout=None)


def _status(conn: sqlite3.Connection, kind: str) -> str | None:
    row = conn.execute("SELECT status FROM embedding_reindexes WHERE id=? AND kind=?",
                       (migration_id(kind), kind)).fetchone()
    return None if row is None else str(row[0])


def search_table(conn: sqlite3.Connection, target: Target, existing: set[str]) -> str:
    """The table search reads for ``target``: the legacy one while its migration is not activated."""
    legacy = legacy_table(target)
    if legacy in existing and _status(conn, target.kind) != "activated":
        return legacy
    return target.table


def request_migrations(chronicle: JobContext, conn: sqlite3.Connection, existing: set[str],
                       settings: EmbeddingSettings) -> list[str]:
    """Ask for the layout reindex of every kind whose active model still has only a legacy table."""
    asked = []
    for kind in KINDS:
        target = active_target(conn, kind, settings)
        if legacy_table(target) not in existing or _status(conn, kind) is not None:
            continue
        chronicle.emit("ReindexRequested", {"id": migration_id(kind), "kinds": [kind], "model": target.model,
                                            "dimension": target.dimension, "actor": "chronicle-layout-migration"},
                       id=f"reindex:{migration_id(kind)}:{target.model}:{target.dimension}",
                       metadata={"actor": "chronicle-vectors"})
        asked.append(kind)
    return asked


MARKER = ".layout.json"
_LEGACY = re.compile(r"^(pages|sections|posts|images)__[a-z0-9_]+?__\d+\.lance$")


def legacy_on_disk(directory: Path) -> bool:
    """Cheap (a directory listing): a table of the old layout exists and its migration was not asked
    for from here yet."""
    try:
        if json.loads((directory / MARKER).read_text()).get("layout") == LAYOUT:
            return False
    except (FileNotFoundError, ValueError):
        pass
    return directory.is_dir() and any(_LEGACY.match(p.name) for p in directory.iterdir())


def mark_requested(directory: Path) -> None:
    tmp = directory / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"layout": LAYOUT}))
    tmp.replace(directory / MARKER)
