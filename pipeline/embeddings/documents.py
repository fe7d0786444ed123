"""Reading what to embed from the read model (``data/sqlite.db``): one ``Document`` per item.

Kinds: ``page`` (title, slug and the text of its sections in page order), ``section`` (its content; site,
environment and status come from its page, a section on no page is a draft), ``post`` (title, excerpt,
body, categories, tags) and ``image`` (alt text, caption, title, tags, filename; images have no
publishing workflow, so they are always ``published``). Items with no text are not documents.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from . import text as T

KINDS = ("page", "section", "post", "image")
#: The read-model table each kind's items live in (one row per item: the quick status counts them).
SOURCE_TABLES = {"page": "pages", "section": "section_entries", "post": "posts", "image": "images"}
PLURALS = {"pages": "page", "sections": "section", "posts": "post", "images": "image"}
_CHUNK = 400


@dataclass(frozen=True, slots=True)
class Document:
    kind: str
    id: str
    site: str | None
    environment: str | None
    status: str
    text: str          # full text: what full-text search sees
    embed_text: str    # truncated to the per-input token limit: what the model sees
    content_hash: str  # sha256 of embed_text
    parent_id: str | None = None


def _doc(kind: str, id: str, site: Any, env: Any, status: str, text: str, max_tokens: int,
         parent: str | None = None) -> Document | None:
    if not text.strip():
        return None
    embed = T.truncate(text, max_tokens)
    return Document(kind, id, site, env, status or "draft", text, embed, T.content_hash(embed), parent)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) and value else (value or {})


def _where_ids(column: str, ids: Sequence[str] | None) -> Iterator[tuple[str, list[str]]]:
    if ids is None:
        yield "", []
        return
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i:i + _CHUNK])
        yield f" WHERE {column} IN ({','.join('?' * len(chunk))})", chunk


def _pages(conn: sqlite3.Connection, ids: Sequence[str] | None, max_tokens: int) -> Iterator[Document]:
    for where, params in _where_ids("p.id", ids):
        rows = conn.execute(f"SELECT p.id, p.site_id, p.environment_id, p.title, p.slug, p.status FROM pages p{where}",
                            params).fetchall()
        sections: dict[str, list[Any]] = defaultdict(list)
        page_ids = [r[0] for r in rows]
        for swhere, sparams in _where_ids("ps.page_id", page_ids):
            for page_id, content in conn.execute(
                    "SELECT ps.page_id, se.content FROM page_sections ps JOIN section_entries se "
                    f"ON se.id = ps.section_entry_id{swhere} ORDER BY ps.page_id, ps.position, se.id", sparams):
                sections[page_id].append(_json(content))
        for pid, site, env, title, slug, status in rows:
            doc = _doc("page", pid, site, env, status, T.page_text(title, slug, sections.get(pid, [])), max_tokens)
            if doc:
                yield doc


def _sections(conn: sqlite3.Connection, ids: Sequence[str] | None, max_tokens: int) -> Iterator[Document]:
    for where, params in _where_ids("se.id", ids):
        for sid, content, page_id, site, env, status, def_site in conn.execute(
                "SELECT se.id, se.content, se.page_id, p.site_id, p.environment_id, p.status, sd.site_id "
                "FROM section_entries se LEFT JOIN pages p ON p.id = se.page_id "
                f"LEFT JOIN section_definitions sd ON sd.id = se.definition_id{where}", params):
            doc = _doc("section", sid, site or def_site, env, status if page_id and status else "draft",
                       T.section_text(_json(content)), max_tokens, parent=page_id)
            if doc:
                yield doc


def _posts(conn: sqlite3.Connection, ids: Sequence[str] | None, max_tokens: int) -> Iterator[Document]:
    for where, params in _where_ids("id", ids):
        for pid, site, env, title, excerpt, body, cats, tags, status in conn.execute(
                "SELECT id, site_id, environment_id, title, excerpt, body, categories, tags, status "
                f"FROM posts{where}", params):
            text = T.post_text(title, excerpt or "", body or "", _json(cats) or [], _json(tags) or [])
            doc = _doc("post", pid, site, env, status, text, max_tokens)
            if doc:
                yield doc


def _images(conn: sqlite3.Connection, ids: Sequence[str] | None, max_tokens: int) -> Iterator[Document]:
    for where, params in _where_ids("id", ids):
        for iid, site, filename, meta in conn.execute(f"SELECT id, site_id, filename, metadata FROM images{where}",
                                                      params):
            doc = _doc("image", iid, site, None, "published", T.image_text(filename, _json(meta)), max_tokens)
            if doc:
                yield doc


_READERS = {"page": _pages, "section": _sections, "post": _posts, "image": _images}


def load_documents(conn: sqlite3.Connection, kind: str, ids: Iterable[str] | None = None, *,
                   max_tokens: int) -> dict[str, Document]:
    """Current documents of ``kind`` (all, or just ``ids``), keyed by id."""
    wanted = None if ids is None else sorted(set(ids))
    return {d.id: d for d in _READERS[kind](conn, wanted, max_tokens)}
