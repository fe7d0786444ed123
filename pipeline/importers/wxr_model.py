"""Plain records read out of a WordPress WXR export: what the mapper needs, nothing XML-shaped.

The reader fills these; the mapper only ever sees them, so mapping is testable with hand-made records.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class WxrTerm:
    """A category, tag or nav menu declared in the channel header."""

    taxonomy: str  # "category", "post_tag", "nav_menu", …
    term_id: str
    slug: str
    name: str


@dataclass(slots=True)
class WxrSite:
    """The channel header: the blog itself, its authors and its declared terms."""

    title: str
    link: str
    description: str = ""
    language: str = ""
    base_blog_url: str = ""
    wxr_version: str = ""
    authors: dict[str, str] = field(default_factory=dict)  # login → display name
    terms: list[WxrTerm] = field(default_factory=list)

    @property
    def categories(self) -> list[WxrTerm]:
        return [t for t in self.terms if t.taxonomy == "category"]

    @property
    def tags(self) -> list[WxrTerm]:
        return [t for t in self.terms if t.taxonomy == "post_tag"]

    @property
    def menus(self) -> list[WxrTerm]:
        return [t for t in self.terms if t.taxonomy == "nav_menu"]


@dataclass(slots=True)
class WxrItem:
    """One ``<item>``: a post, page, attachment, nav menu item or any other post type."""

    post_id: str
    post_type: str
    status: str
    title: str = ""
    slug: str = ""
    link: str = ""
    guid: str = ""
    creator: str = ""
    content: str = ""
    excerpt: str = ""
    date: str = ""       # site-local "YYYY-MM-DD HH:MM:SS"
    date_gmt: str = ""   # UTC, or "0000-00-00 00:00:00" for never-published drafts
    parent: str = "0"
    menu_order: int = 0
    password: str = ""
    sticky: bool = False
    attachment_url: str = ""
    comments: int = 0
    # (domain, nicename, label) of each <category> element: category, post_tag, post_format, nav_menu.
    terms: list[tuple[str, str, str]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # <wp:postmeta> key → value (last one wins)

    def terms_in(self, domain: str) -> list[tuple[str, str]]:
        """(nicename, label) of this item's terms in ``domain``, in export order, without repeats."""
        seen: dict[tuple[str, str], None] = {}
        for d, nicename, label in self.terms:
            if d == domain:
                seen.setdefault((nicename, label), None)
        return list(seen)
