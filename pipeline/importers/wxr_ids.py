"""Deterministic ids for everything an import creates, so importing the same file twice is a no-op.

Entity ids are ``wxr:<site>:<post_id>`` (the WordPress id, namespaced by the blog's host so two blogs
never collide). Event ids add the event type and a hash of *all* the events of that item:
``wxr:<site>:<post_id>:<Type>:<hash>``. Hashing the whole item, not one event, matters on re-import of
an edited export: a changed title gives the item's ``PageCreated`` *and* its ``PagePublished`` new ids,
so the page is upserted and published again instead of being left a draft by a deduplicated publish.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from .wxr_model import WxrSite

ACTOR = "wxr-import"


def bounded(text: str, limit: int) -> str:
    """``text`` if it is short enough, else a prefix and a hash of it: ids must stay under 200 characters."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def site_key(site: WxrSite) -> str:
    """The blog's host (``wpthemetestdata.wordpress.com``), else a slug of its title."""
    for url in (site.base_blog_url, site.link):
        host = urlsplit(url).hostname if url else None
        if host:
            return bounded(host.lower(), 80)
    return bounded(slugify(site.title), 80) or "wordpress"


def slugify(text: str) -> str:
    """Lowercase words joined by ``-``; letters of any script are kept (WordPress slugs are unicode)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^\w]+", "-", text).strip("-_")[:200]


def wp_slug(post_name: str, title: str, post_id: str) -> str:
    """WordPress stores non-ASCII slugs percent-encoded; drafts often have none at all."""
    return unquote(post_name).strip() or slugify(title) or post_id


def content_hash(parts: list[tuple[str, dict[str, Any]]]) -> str:
    """Short sha256 over (type, data) pairs in canonical JSON."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def finish(key: str, subject: str, parts: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Turn (type, data) pairs of one subject into envelopes with deterministic ids."""
    digest, subject = content_hash(parts), bounded(subject, 60)
    return [{"id": f"wxr:{key}:{subject}:{type_}:{digest}" + (f":{i}" if _repeats(parts, type_) else ""),
             "type": type_, "data": data, "metadata": {"actor": ACTOR, "correlation_id": f"wxr:{key}"}}
            for i, (type_, data) in enumerate(parts)]


def _repeats(parts: list[tuple[str, dict[str, Any]]], type_: str) -> bool:
    return sum(1 for t, _ in parts if t == type_) > 1
