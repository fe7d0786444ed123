"""Reading the ``embeddings`` projection: embedded hashes, active index per kind, reindexes in progress,
and the page ↔ section expansion (a section's text is part of its page's text)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from db.vectors import table_name

from .config import EmbeddingSettings
from .documents import Document

_CHUNK = 400


@dataclass(frozen=True, slots=True)
class StateRow:
    content_hash: str
    status: str
    reindex_id: str | None
    parent_id: str | None


@dataclass(frozen=True, slots=True)
class Target:
    """A (model, dimension) that items of a kind are embedded with, and its LanceDB table."""

    kind: str
    model: str
    dimension: int

    @property
    def table(self) -> str:
        return table_name(self.kind, self.model, self.dimension)


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    items = sorted(set(ids))
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def states(conn: sqlite3.Connection, kind: str, model: str, dimension: int,
           ids: Iterable[str] | None = None) -> dict[str, StateRow]:
    sql = ("SELECT id, content_hash, status, reindex_id, parent_id FROM embedding_state "
           "WHERE kind=? AND model=? AND dimension=?")
    if ids is None:
        return {r[0]: StateRow(*r[1:]) for r in conn.execute(sql, (kind, model, dimension))}
    found: dict[str, StateRow] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(sql + f" AND id IN ({','.join('?' * len(chunk))})", (kind, model, dimension, *chunk))
        found.update({r[0]: StateRow(*r[1:]) for r in rows})
    return found


def needs_embedding(doc: Document, state: StateRow | None, *, force_for: str | None = None) -> bool:
    """Pure: the (hash, model, dimension) key changed, or a forced reindex has not reached this item yet.

    A ``failed`` item with the same hash is not retried (it would fail and bill again); edit it or force.
    """
    if force_for is not None:
        return state is None or state.reindex_id != force_for or state.content_hash != doc.content_hash
    return state is None or state.content_hash != doc.content_hash or state.status == "deleted"


def active_target(conn: sqlite3.Connection, kind: str, settings: EmbeddingSettings) -> Target:
    row = conn.execute("SELECT model, dimension FROM embedding_indexes WHERE kind=?", (kind,)).fetchone()
    if row is None:
        return Target(kind, settings.default_model, settings.default_dimension)
    return Target(kind, row[0], row[1])


def building_targets(conn: sqlite3.Connection, kind: str) -> list[Target]:
    """Models a reindex is building a shadow table for (requested, not yet activated)."""
    rows = conn.execute("SELECT DISTINCT model, dimension FROM embedding_reindexes WHERE kind=? "
                        "AND status != 'activated' AND model IS NOT NULL AND dimension IS NOT NULL "
                        "AND item_id IS NULL", (kind,))
    return [Target(kind, m, d) for m, d in rows]


def targets(conn: sqlite3.Connection, kind: str, settings: EmbeddingSettings) -> list[Target]:
    active = active_target(conn, kind, settings)
    return [active, *(t for t in building_targets(conn, kind) if t != active)]


def expand(conn: sqlite3.Connection, grouped: dict[str, set[str]]) -> dict[str, set[str]]:
    """Pages bring their sections (status/site live on the page) and sections their pages (text)."""
    out = {k: set(v) for k, v in grouped.items()}
    pages, sections = grouped.get("page", set()), grouped.get("section", set())
    for chunk in _chunks(pages):
        marks = ",".join("?" * len(chunk))
        out.setdefault("section", set()).update(
            r[0] for r in conn.execute(f"SELECT id FROM section_entries WHERE page_id IN ({marks})", chunk))
    for chunk in _chunks(sections):
        marks = ",".join("?" * len(chunk))
        parents = {r[0] for r in conn.execute(
            f"SELECT page_id FROM section_entries WHERE id IN ({marks}) AND page_id IS NOT NULL", chunk)}
        parents |= {r[0] for r in conn.execute(
            f"SELECT parent_id FROM embedding_state WHERE kind='section' AND id IN ({marks}) "
            "AND parent_id IS NOT NULL", chunk)}
        if parents:
            out.setdefault("page", set()).update(parents)
    return {k: v for k, v in out.items() if v}
