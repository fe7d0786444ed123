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
# Where a paragraph ends in CMS HTML: block-level tags, <br>, Gutenberg block comments, blank lines.
_BLOCK = re.compile(r"</?(?:p|div|h[1-6]|li|ul|ol|blockquote|pre|table|tr|td|th|figure|figcaption|section|"
                    r"article|header|footer|hr|br)\b[^>]*>|<!--.*?-->|\n\s*\n", re.IGNORECASE | re.DOTALL)

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


def strings(value: Any) -> Iterable[str]:
    """The raw strings of a JSON value in ``flatten``'s order (before HTML stripping)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from strings(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def paragraphs(value: str | None) -> list[str]:
    """``plain`` text of each paragraph of an HTML (or plain) string, in order: the units chunking keeps
    whole where it can. Joined with spaces they are ``plain(value)``."""
    if not value:
        return []
    return [p for p in (plain(part) for part in _BLOCK.split(value)) if p]


Groups = tuple[tuple[str, ...], ...]


def _group(*values: str | None) -> tuple[str, ...]:
    return tuple(p for v in values for p in paragraphs(v))


def page_groups(title: str, slug: str, sections: Iterable[dict[str, Any]]) -> Groups:
    """Title, slug (unless it only repeats the title), then one group per section (its paragraphs): a
    section is kept whole where it fits."""
    slug_words = slug.replace("-", " ")
    same = slug_words.lower().split() == re.findall(r"\w+", plain(title).lower())
    return tuple(g for g in (_group(title), () if same else _group(slug_words),
                             *(_group(*strings(c)) for c in sections)) if g)


def section_groups(content: dict[str, Any]) -> Groups:
    return tuple(g for g in (_group(*strings(content)),) if g)


def post_groups(title: str, excerpt: str, body: str, categories: list[str], tags: list[str]) -> Groups:
    return tuple(g for g in (_group(title), _group(excerpt), _group(body), _group(" ".join(categories or [])),
                             _group(" ".join(tags or []))) if g)


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
    """Cut ``text`` to at most ``max_tokens`` (estimated) at a character boundary (search queries;
    documents are chunked instead, see ``chunking``)."""
    limit = max_tokens * BYTES_PER_TOKEN
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")
