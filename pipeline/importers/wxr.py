"""Pure mapping from WXR records to Chronicle envelopes: no file, no database, no clock.

What maps (see docs/operations.md for the full table):
- the blog → ``TeamCreated`` + ``SiteCreated`` + ``EnvironmentCreated`` ("production") +
  ``SiteSettingsUpdated`` (description, language, source URL) + one ``SectionDefinitionCreated``
  ("WordPress content") that page bodies are stored under;
- a page → ``PageCreated`` (``post_parent`` → ``parent_id``, date → ``created_at``) + a
  ``SectionEntryCreated`` holding its HTML + ``PagePublished`` when its status is ``publish``;
- a post → ``PostCreated`` (categories, tags, author display name, excerpt, body) + ``PostPublished``
  when ``publish``;
- drafts, pending, private, scheduled (``future``) and password-protected items are imported as
  drafts: Chronicle has no scheduling or passwords, and publishing a protected page would expose it;
- a local image attachment → ``ImageUploaded`` (the runner stores the file; see ``map_attachment``).
Everything else is skipped with a reason: trashed/auto-draft items, revisions and other post types,
comments, attachments whose file is not local.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .wxr_ids import bounded, finish, site_key, wp_slug
from .wxr_model import WxrItem, WxrSite
from .wxr_report import Outcome, mapped, skipped

Envelope = dict[str, Any]
DRAFT_STATUSES = {"draft": "draft", "pending": "pending review", "private": "private", "future": "scheduled"}
DEAD_STATUSES = {"trash", "auto-draft"}
CONTENT_DEFINITION = "content"


@dataclass(slots=True)
class WxrContext:
    """What mapping one item needs to know about the export as a whole."""

    key: str
    base_url: str
    authors: dict[str, str] = field(default_factory=dict)
    category_slugs: dict[str, tuple[str, str]] = field(default_factory=dict)  # term_id → (slug, name)
    titles: dict[str, tuple[str, str]] = field(default_factory=dict)  # post_id → (post_type, title); filled as read

    @classmethod
    def of(cls, site: WxrSite) -> WxrContext:
        return cls(key=site_key(site), base_url=(site.base_blog_url or site.link).rstrip("/"),
                   authors=dict(site.authors),
                   category_slugs={t.term_id: (t.slug, t.name) for t in site.categories})

    def id(self, post_id: str) -> str:
        return f"wxr:{self.key}:{bounded(post_id, 60)}"

    @property
    def team_id(self) -> str:
        return f"wxr:{self.key}:team"

    @property
    def site_id(self) -> str:
        return f"wxr:{self.key}"

    @property
    def environment_id(self) -> str:
        return f"wxr:{self.key}:production"

    @property
    def definition_id(self) -> str:
        return f"wxr:{self.key}:{CONTENT_DEFINITION}"


@dataclass(slots=True)
class Mapped:
    """The envelopes for one record and the outcomes to report for it."""

    envelopes: list[Envelope]
    outcomes: list[Outcome]


def wp_time(gmt: str, local: str) -> str | None:
    """``post_date_gmt`` as ISO-8601 UTC; WordPress writes ``0000-00-00 00:00:00`` for unpublished drafts,
    and then the site-local ``post_date`` (no zone known) is the best we have."""
    if gmt and not gmt.startswith("0000"):
        return gmt.replace(" ", "T") + "+00:00"
    if local and not local.startswith("0000"):
        return local.replace(" ", "T")
    return None


def map_site(site: WxrSite, ctx: WxrContext) -> Mapped:
    """The blog becomes a team, a site, its production environment, its settings and a content section type."""
    name = site.title or ctx.key
    settings = {k: v for k, v in {"description": site.description, "language": site.language,
                                  "source": {"wxr_version": site.wxr_version, "url": ctx.base_url}}.items() if v}
    parts: list[tuple[str, dict[str, Any]]] = [
        ("TeamCreated", {"id": ctx.team_id, "name": name, "slug": ctx.key}),
        ("SiteCreated", {"id": ctx.site_id, "team_id": ctx.team_id, "name": name, "domain": ctx.key}),
        ("EnvironmentCreated", {"id": ctx.environment_id, "site_id": ctx.site_id, "name": "production"}),
        ("SiteSettingsUpdated", {"id": ctx.site_id, "settings": settings}),
        ("SectionDefinitionCreated", {"id": ctx.definition_id, "site_id": ctx.site_id, "name": "WordPress content",
                                      "fields": [{"name": "html", "type": "richtext"}]}),
    ]
    outcomes = [mapped("site", "TeamCreated + SiteCreated + EnvironmentCreated + SiteSettingsUpdated "
                               "+ SectionDefinitionCreated"),
                mapped("author", "author display name on posts (no user events)", len(site.authors)),
                mapped("category", "category names on posts (no taxonomy events)", len(site.categories)),
                mapped("tag", "tag names on posts (no taxonomy events)", len(site.tags))]
    return Mapped(finish(ctx.key, "site", parts), outcomes)


def _status(item: WxrItem) -> tuple[bool, str]:
    """(publish?, how it is imported) for a live item."""
    if item.password:
        return False, "draft (password-protected; password not imported)"
    if item.status == "publish":
        return True, "published"
    return False, f"draft (was {DRAFT_STATUSES.get(item.status, item.status)})"


def _source(item: WxrItem) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": "wordpress", "wp_post_id": item.post_id, "link": item.link}
    if item.comments:
        meta["wp_comment_count"] = item.comments  # the comments themselves are not imported
    return meta


def map_page(item: WxrItem, ctx: WxrContext) -> Mapped:
    pid = ctx.id(item.post_id)
    publish, how = _status(item)
    meta = _source(item) | {"menu_order": item.menu_order}
    if item.meta.get("_wp_page_template"):
        meta["template"] = item.meta["_wp_page_template"]
    if item.excerpt.strip():
        meta["excerpt"] = item.excerpt
    parts: list[tuple[str, dict[str, Any]]] = [("PageCreated", {
        "id": pid, "site_id": ctx.site_id, "environment_id": ctx.environment_id, "title": item.title,
        "slug": wp_slug(item.slug, item.title, item.post_id),
        "parent_id": ctx.id(item.parent) if item.parent not in ("", "0") else None,
        "metadata": meta, "created_at": wp_time(item.date_gmt, item.date)})]
    if item.content.strip():
        parts.append(("SectionEntryCreated", {"id": f"{pid}:content", "definition_id": ctx.definition_id,
                                              "page_id": pid, "content": {"html": item.content}, "order": 0}))
    if publish:
        parts.append(("PagePublished", {"id": pid, "published_at": wp_time(item.date_gmt, item.date)}))
    return Mapped(finish(ctx.key, item.post_id, parts), [mapped("page", how)])


def map_post(item: WxrItem, ctx: WxrContext) -> Mapped:
    pid = ctx.id(item.post_id)
    publish, how = _status(item)
    meta = _source(item)
    formats = [nicename.removeprefix("post-format-") for nicename, _ in item.terms_in("post_format")]
    if formats:
        meta["format"] = formats[0]
    if item.sticky:
        meta["sticky"] = True
    author = ctx.authors.get(item.creator, item.creator) or None
    parts: list[tuple[str, dict[str, Any]]] = [("PostCreated", {
        "id": pid, "site_id": ctx.site_id, "environment_id": ctx.environment_id, "title": item.title,
        "slug": wp_slug(item.slug, item.title, item.post_id), "body": item.content, "excerpt": item.excerpt,
        "author": author, "categories": [label for _, label in item.terms_in("category")],
        "tags": [label for _, label in item.terms_in("post_tag")], "metadata": meta,
        "created_at": wp_time(item.date_gmt, item.date)})]
    if publish:
        parts.append(("PostPublished", {"id": pid, "published_at": wp_time(item.date_gmt, item.date)}))
    return Mapped(finish(ctx.key, item.post_id, parts), [mapped("post", how)])


@dataclass(frozen=True, slots=True)
class LocalFile:
    """An attachment's file, already stored content-addressed by the runner (the IO half)."""

    original_path: str
    filename: str
    mime_type: str
    size: int
    sha256: str


def map_attachment(item: WxrItem, ctx: WxrContext, local: LocalFile | None) -> Mapped:
    """An image whose file the runner found locally → ``ImageUploaded``; anything else is skipped."""
    if local is None:
        why = "file not local (remote URL; the importer never downloads)" if item.attachment_url else "no file URL"
        return Mapped([], [skipped("attachment", why)])
    if not local.mime_type.startswith("image/"):
        return Mapped([], [skipped("attachment", f"not an image ({local.mime_type})")])
    meta = _source(item) | {"title": item.title}
    if item.meta.get("_wp_attachment_image_alt"):
        meta["alt"] = item.meta["_wp_attachment_image_alt"]
    if item.excerpt.strip():
        meta["caption"] = item.excerpt
    parts: list[tuple[str, dict[str, Any]]] = [("ImageUploaded", {
        "id": ctx.id(item.post_id), "site_id": ctx.site_id, "filename": local.filename,
        "original_path": local.original_path, "mime_type": local.mime_type, "size": local.size,
        "hash": local.sha256, "metadata": meta})]
    return Mapped(finish(ctx.key, item.post_id, parts), [mapped("attachment", "ImageUploaded (local file)")])


def map_item(item: WxrItem, ctx: WxrContext, local: LocalFile | None = None) -> Mapped:
    """Any item except nav menu items (those need the whole menu: see ``wxr_menus``)."""
    outcomes: list[Outcome] = []
    if item.comments:
        outcomes.append(skipped("comment", "no comment events in Chronicle", item.comments))
    if item.post_type in ("page", "post", "attachment") and item.status in DEAD_STATUSES:
        return Mapped([], [*outcomes, skipped(item.post_type, f"status {item.status}")])
    if item.post_type == "page":
        result = map_page(item, ctx)
    elif item.post_type == "post":
        result = map_post(item, ctx)
    elif item.post_type == "attachment":
        result = map_attachment(item, ctx, local)
    elif item.post_type == "revision":
        result = Mapped([], [skipped("revision", "history is not imported, only the current version")])
    else:
        result = Mapped([], [skipped(item.post_type or "item", f"post type {item.post_type!r} not modelled")])
    return Mapped(result.envelopes, outcomes + result.outcomes)
