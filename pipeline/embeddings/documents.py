"""Reading what to embed from the read model (``data/sqlite.db``): one ``Document`` per item.

A ``Document`` is loaded once per item and then ``chunked`` for each model it is embedded with (the
chunks are measured in that model's tokens, ``chunking``). Kinds: ``page`` (title, slug and the text of
its sections in page order), ``section`` (its content; site, environment and status come from its
page, a section on no page is a draft), ``post`` (title, excerpt, body, categories, tags) and ``image``
(alt text, caption, title, tags, filename; images have no publishing workflow, so they are always
``published``). Items with no text are not documents.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from . import text as T
from .chunking import Chunk, Chunker

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
    embed_text: str    # the first chunk: what the CMS's own tables show as ``content``
    content_hash: str  # one chunk: sha256 of its text; several: sha256 of their hashes (the ledger's key)
    parent_id: str | None = None
    groups: T.Groups = ()  # the paragraphs of ``text``, grouped (a page's sections…): where chunks may end
    title: str = ""        # repeated at the start of every chunk after the first
    chunks: tuple[Chunk, ...] = ()  # what the model sees, one vector each (set by ``chunked``)


def _doc(kind: str, id: str, site: Any, env: Any, status: str, text: str, groups: T.Groups, title: str = "",
         parent: str | None = None) -> Document | None:
    if not text.strip():
        return None
    return Document(kind, id, site, env, status or "draft", text, text, "", parent, groups, title)


def chunk_hash(chunks: Sequence[Chunk]) -> str:
    """The item's hash over its chunks: the text's own hash when it is one chunk (as before chunking
    existed, so a short item's ledger row and cached vector stay valid), else the hash of the hashes."""
    if len(chunks) == 1:
        return chunks[0].hash
    return T.content_hash("chunks:" + ",".join(c.hash for c in chunks))


def chunked(docs: dict[str, Document], chunker: Chunker) -> dict[str, Document]:
    """The documents cut into ``chunker``'s chunks (an item whose text yields none is left out)."""
    out: dict[str, Document] = {}
    for key, doc in docs.items():
        chunks = tuple(chunker.chunks(doc.text, doc.groups, doc.title))
        if chunks:
            out[key] = replace(doc, chunks=chunks, embed_text=chunks[0].text, content_hash=chunk_hash(chunks))
    return out


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) and value else (value or {})


def _where_ids(column: str, ids: Sequence[str] | None) -> Iterator[tuple[str, list[str]]]:
    if ids is None:
        yield "", []
        return
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i:i + _CHUNK])
        yield f" WHERE {column} IN ({','.join('?' * len(chunk))})", chunk


def _pages(conn: sqlite3.Connection, ids: Sequence[str] | None) -> Iterator[Document]:
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
            content = sections.get(pid, [])
            doc = _doc("page", pid, site, env, status, T.page_text(title, slug, content),
                       T.page_groups(title, slug, content), T.plain(title))
            if doc:
                yield doc


def _sections(conn: sqlite3.Connection, ids: Sequence[str] | None) -> Iterator[Document]:
    for where, params in _where_ids("se.id", ids):
        for sid, content, page_id, site, env, status, def_site in conn.execute(
                "SELECT se.id, se.content, se.page_id, p.site_id, p.environment_id, p.status, sd.site_id "
                "FROM section_entries se LEFT JOIN pages p ON p.id = se.page_id "
                f"LEFT JOIN section_definitions sd ON sd.id = se.definition_id{where}", params):
            body = _json(content)
            doc = _doc("section", sid, site or def_site, env, status if page_id and status else "draft",
                       T.section_text(body), T.section_groups(body), parent=page_id)
            if doc:
                yield doc


def _posts(conn: sqlite3.Connection, ids: Sequence[str] | None) -> Iterator[Document]:
    for where, params in _where_ids("id", ids):
        for pid, site, env, title, excerpt, body, cats, tags, status in conn.execute(
                "SELECT id, site_id, environment_id, title, excerpt, body, categories, tags, status "
                f"FROM posts{where}", params):
            args = (title, excerpt or "", body or "", _json(cats) or [], _json(tags) or [])
            doc = _doc("post", pid, site, env, status, T.post_text(*args), T.post_groups(*args), T.plain(title))
            if doc:
                yield doc


def _images(conn: sqlite3.Connection, ids: Sequence[str] | None) -> Iterator[Document]:
    for where, params in _where_ids("id", ids):
        for iid, site, filename, meta in conn.execute(f"SELECT id, site_id, filename, metadata FROM images{where}",
                                                      params):
            text = T.image_text(filename, _json(meta))
            doc = _doc("image", iid, site, None, "published", text, ((text,),))
            if doc:
                yield doc


_READERS = {"page": _pages, "section": _sections, "post": _posts, "image": _images}


def load_documents(conn: sqlite3.Connection, kind: str, ids: Iterable[str] | None = None, *,
                   chunker: Chunker | None = None) -> dict[str, Document]:
    """Current documents of ``kind`` (all, or just ``ids``), keyed by id; ``chunked`` when given a chunker."""
    wanted = None if ids is None else sorted(set(ids))
    docs = {d.id: d for d in _READERS[kind](conn, wanted)}
    return chunked(docs, chunker) if chunker is not None else docs
