"""Pure text functions: what text of an item is embedded, its content hash, token estimates, truncation.

The content hash covers exactly the embedded text (and nothing else), so changing metadata that is not
embedded (status, parent, custom metadata keys) leaves the hash, and therefore the bill, unchanged.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from typing import Any

_TAG = re.compile(r"<[^>]+>")
_SHORTCODE = re.compile(r"\[/?[a-zA-Z_][^\]]*\]")
_SPACE = re.compile(r"\s+")

# No tokenizer dependency: a conservative estimate (OpenAI's cl100k averages ~4 bytes per token on
# English; 3 over-counts, so a text we think fits always fits). Real usage comes back in `usage`.
BYTES_PER_TOKEN = 3


def plain(value: str) -> str:
    """HTML/shortcodes stripped, entities decoded, whitespace collapsed."""
    value = _SHORTCODE.sub(" ", _TAG.sub(" ", value))
    return _SPACE.sub(" ", html.unescape(value)).strip()


def flatten(value: Any) -> Iterable[str]:
    """Every string inside a JSON value (section content), depth first, keys in sorted order."""
    if isinstance(value, str):
        text = plain(value)
        if text:
            yield text
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from flatten(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from flatten(item)


def join(parts: Iterable[str | None]) -> str:
    return "\n".join(p for p in (plain(x) if x else "" for x in parts) if p)


def page_text(title: str, slug: str, sections: Iterable[dict[str, Any]]) -> str:
    return join([title, slug.replace("-", " "), *("\n".join(flatten(c)) for c in sections)])


def section_text(content: dict[str, Any]) -> str:
    return "\n".join(flatten(content))


def post_text(title: str, excerpt: str, body: str, categories: list[str], tags: list[str]) -> str:
    return join([title, excerpt, body, " ".join(categories or []), " ".join(tags or [])])


def _words(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def image_text(filename: str, meta: dict[str, Any]) -> str:
    """Editor-written alt text, caption, title and tags, then the AI description the media pipeline
    merged under ``metadata.ai`` (ImageDescribed), then the filename; repeated strings once."""
    found = meta.get("ai")
    ai: dict[str, Any] = found if isinstance(found, dict) else {}
    parts = [meta.get("alt") or meta.get("alt_text"), meta.get("caption"), meta.get("title"),
             _words(meta.get("tags")), ai.get("alt_text"), ai.get("caption"), _words(ai.get("tags")), filename]
    return join(dict.fromkeys(p for p in parts if p))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def estimate_tokens(text: str) -> int:
    return max(1, -(-len(text.encode()) // BYTES_PER_TOKEN))


def truncate(text: str, max_tokens: int) -> str:
    """Cut ``text`` to at most ``max_tokens`` (estimated) at a character boundary.

    Truncating rather than chunking: one vector per item keeps search results one row per item, and
    the head of a page (title, intro) carries most of its meaning. The content hash is taken of the
    truncated text, i.e. of exactly what the model sees: an edit in the cut tail costs nothing.
    """
    limit = max_tokens * BYTES_PER_TOKEN
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")
