"""Streaming a WXR file into ``WxrSite`` and ``WxrItem`` records (the only module that sees XML).

Safety: exports come from other people's sites, so the parser is ``defusedxml``'s ``iterparse`` with
DTDs, entity declarations and external references all forbidden (no billion-laughs, no XXE). WXR
never needs a DTD, so refusing one costs nothing.

Memory: ``iterparse`` hands over one ``<item>`` at a time and each is cleared once read, so a
multi-gigabyte export is read in roughly constant memory. Namespaces are matched by what they are
(``wp``, ``content``, ``excerpt``, ``dc``) rather than by exact URI, because WXR 1.0, 1.1 and 1.2 use
different ``wp`` namespace URIs for the same elements.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from ..errors import PermanentError
from .wxr_model import WxrItem, WxrSite, WxrTerm


class WxrError(PermanentError):
    """The file is not a readable, safe WXR export."""


def _prefix(uri: str) -> str:
    if "wordpress.org/export" in uri:
        return "excerpt" if "excerpt" in uri else "wp"
    if "purl.org/rss/1.0/modules/content" in uri:
        return "content"
    if "purl.org/dc/elements" in uri:
        return "dc"
    return uri


def name(tag: str) -> str:
    """``{https://wordpress.org/export/1.2/}post_id`` → ``wp:post_id``; plain RSS tags stay as they are."""
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        return f"{_prefix(uri)}:{local}"
    return tag


_RAW = {"content:encoded", "excerpt:encoded"}  # HTML bodies: keep their whitespace


def _children(elem: Element) -> dict[str, str]:
    """First text of each direct child by prefixed name (CDATA and plain text read the same)."""
    out: dict[str, str] = {}
    for child in elem:
        tag, text = name(child.tag), child.text or ""
        out.setdefault(tag, text if tag in _RAW else text.strip())
    return out


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def read_item(elem: Element) -> WxrItem:
    """One ``<item>`` element → ``WxrItem``."""
    f = _children(elem)
    meta: dict[str, str] = {}
    terms: list[tuple[str, str, str]] = []
    comments = 0
    for child in elem:
        tag = name(child.tag)
        if tag == "wp:postmeta":
            pm = _children(child)
            meta[pm.get("wp:meta_key", "")] = pm.get("wp:meta_value", "")
        elif tag == "category":
            terms.append((child.get("domain", ""), child.get("nicename", ""), (child.text or "").strip()))
        elif tag == "wp:comment":
            comments += 1
    return WxrItem(
        post_id=f.get("wp:post_id", ""), post_type=f.get("wp:post_type", ""), status=f.get("wp:status", ""),
        title=f.get("title", ""), slug=f.get("wp:post_name", ""), link=f.get("link", ""), guid=f.get("guid", ""),
        creator=f.get("dc:creator", ""), content=f.get("content:encoded", ""), excerpt=f.get("excerpt:encoded", ""),
        date=f.get("wp:post_date", ""), date_gmt=f.get("wp:post_date_gmt", ""), parent=f.get("wp:post_parent") or "0",
        menu_order=_int(f.get("wp:menu_order", "0")), password=f.get("wp:post_password", ""),
        sticky=f.get("wp:is_sticky", "0") == "1", attachment_url=f.get("wp:attachment_url", ""),
        comments=comments, terms=terms, meta=meta,
    )


def _channel_entry(site: WxrSite, elem: Element) -> None:
    """Fold one direct child of ``<channel>`` (other than an item) into the site header."""
    tag, f = name(elem.tag), _children(elem)
    simple = {"title": "title", "link": "link", "description": "description", "language": "language",
              "wp:base_blog_url": "base_blog_url", "wp:wxr_version": "wxr_version"}
    if tag in simple:
        setattr(site, simple[tag], (elem.text or "").strip())
    elif tag == "wp:author":
        login = f.get("wp:author_login", "")
        site.authors[login] = f.get("wp:author_display_name") or login
    elif tag == "wp:category":
        site.terms.append(WxrTerm("category", f.get("wp:term_id", ""), f.get("wp:category_nicename", ""),
                                  f.get("wp:cat_name", "")))
    elif tag == "wp:tag":
        site.terms.append(WxrTerm("post_tag", f.get("wp:term_id", ""), f.get("wp:tag_slug", ""),
                                  f.get("wp:tag_name", "")))
    elif tag == "wp:term":
        site.terms.append(WxrTerm(f.get("wp:term_taxonomy", ""), f.get("wp:term_id", ""), f.get("wp:term_slug", ""),
                                  f.get("wp:term_name", "")))


def read_wxr(source: str | Path | IO[bytes]) -> Iterator[WxrSite | WxrItem]:
    """Yield the ``WxrSite`` header first (before any item), then each ``WxrItem`` in file order."""
    site = WxrSite(title="", link="")
    site_sent = False
    depth = 0
    channel: Element | None = None
    try:
        for event, elem in iterparse(source, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                if depth == 2:
                    channel = elem
                elif depth == 3 and elem.tag == "item" and not site_sent:
                    site_sent = True
                    yield site
                continue
            depth -= 1
            if depth == 2 and channel is not None:  # a direct child of <channel> has ended
                if elem.tag == "item":
                    yield read_item(elem)
                else:
                    _channel_entry(site, elem)
                channel.remove(elem)  # detach, not just clear: the tree stays empty however long the file
    except DefusedXmlException as exc:
        raise WxrError(f"refusing unsafe XML ({type(exc).__name__}: {exc})") from None
    except ParseError as exc:
        raise WxrError(f"not well-formed XML: {exc}") from None
    if not site_sent:
        if not site.link and not site.title:
            raise WxrError("no <channel> found: not a WXR export")
        yield site
