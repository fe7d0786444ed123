"""The CMS data model as events: teams → sites → environments → pages, sections, posts, images,
navigation, chat sessions. Field names follow the CMS tables so a row and the event that made it read
the same. ``metadata`` is called ``meta`` in Python (pydantic reserves nothing here, but the ORM does)
and ``metadata`` on the wire and in the tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pipeline.events.base import EventData, Id, Json, LongText, Sha256, Slug, Title, event

# --- tenancy -------------------------------------------------------------------------------------


@event("TeamCreated", stream="team")
class TeamCreated(EventData):
    """A team (tenant) was created."""

    id: Id
    name: Title
    slug: Slug | None = None


@event("SiteCreated", stream="site")
class SiteCreated(EventData):
    """A site was created inside a team."""

    id: Id
    team_id: Id
    name: Title
    domain: Slug | None = None


@event("SiteSettingsUpdated", stream="site", partial=True)
class SiteSettingsUpdated(EventData):
    """Site settings changed; keys are merged into the current settings, a null value removes a key."""

    id: Id
    settings: Json


@event("EnvironmentCreated", stream="environment")
class EnvironmentCreated(EventData):
    """An environment (production, staging, preview…) of a site."""

    id: Id
    site_id: Id
    name: Title


# --- pages ---------------------------------------------------------------------------------------


@event("PageCreated", stream="page")
class PageCreated(EventData):
    """A draft page was created."""

    id: Id
    site_id: Id
    environment_id: Id | None = None
    title: Title
    slug: Slug
    parent_id: Id | None = None
    meta: Json = Field(default_factory=dict, alias="metadata")
    created_at: datetime | None = None


@event("PageUpdated", stream="page", partial=True)
class PageUpdated(EventData):
    """Some page fields changed; fields not sent stay as they are."""

    id: Id
    title: Title | None = None
    slug: Slug | None = None
    parent_id: Id | None = None
    meta: Json | None = Field(default=None, alias="metadata")


@event("PagePublished", stream="page")
class PagePublished(EventData):
    """The page went live."""

    id: Id
    published_at: datetime | None = None


@event("PageUnpublished", stream="page")
class PageUnpublished(EventData):
    """The page went back to draft."""

    id: Id


@event("PageDeleted", stream="page")
class PageDeleted(EventData):
    """The page and its page_sections links were removed (its section entries stay, unlinked)."""

    id: Id


# --- sections ------------------------------------------------------------------------------------


@event("SectionDefinitionCreated", stream="section-definition")
class SectionDefinitionCreated(EventData):
    """A reusable section type (hero, gallery, FAQ…) with its field schema."""

    id: Id
    site_id: Id
    name: Title
    fields: list[Json] = Field(default_factory=list)


@event("SectionDefinitionUpdated", stream="section-definition", partial=True)
class SectionDefinitionUpdated(EventData):
    """A section definition's name or field schema changed."""

    id: Id
    name: Title | None = None
    fields: list[Json] | None = None


@event("SectionEntryCreated", stream="section-entry")
class SectionEntryCreated(EventData):
    """A section instance with content; when ``page_id`` is set it is linked at ``order``."""

    id: Id
    definition_id: Id
    page_id: Id | None = None
    content: Json = Field(default_factory=dict)
    order: int = Field(default=0, ge=0, le=1_000_000)


@event("SectionEntryUpdated", stream="section-entry", partial=True)
class SectionEntryUpdated(EventData):
    """A section entry's content (replaced whole) or order changed."""

    id: Id
    content: Json | None = None
    order: int | None = Field(default=None, ge=0, le=1_000_000)


@event("SectionEntryDeleted", stream="section-entry")
class SectionEntryDeleted(EventData):
    """A section entry and its page link were removed."""

    id: Id


@event("PageSectionsReordered", stream="page", key="page_id")
class PageSectionsReordered(EventData):
    """The page's sections are exactly ``section_ids``, in this order."""

    page_id: Id
    section_ids: list[Id] = Field(max_length=10_000)


# --- posts ---------------------------------------------------------------------------------------


@event("PostCreated", stream="post")
class PostCreated(EventData):
    """A draft blog post was created."""

    id: Id
    site_id: Id
    environment_id: Id | None = None
    title: Title
    slug: Slug
    body: LongText = ""
    excerpt: LongText = ""
    author: Title | None = None
    categories: list[Title] = Field(default_factory=list)
    tags: list[Title] = Field(default_factory=list)
    meta: Json = Field(default_factory=dict, alias="metadata")
    created_at: datetime | None = None


@event("PostUpdated", stream="post", partial=True)
class PostUpdated(EventData):
    """Some post fields changed; fields not sent stay as they are."""

    id: Id
    title: Title | None = None
    slug: Slug | None = None
    body: LongText | None = None
    excerpt: LongText | None = None
    author: Title | None = None
    categories: list[Title] | None = None
    tags: list[Title] | None = None
    meta: Json | None = Field(default=None, alias="metadata")


@event("PostPublished", stream="post")
class PostPublished(EventData):
    """The post went live."""

    id: Id
    published_at: datetime | None = None


@event("PostDeleted", stream="post")
class PostDeleted(EventData):
    """The post was removed."""

    id: Id


# --- images --------------------------------------------------------------------------------------


@event("ImageUploaded", stream="image")
class ImageUploaded(EventData):
    """An original image is available at ``original_path`` (relative to the media root); status pending."""

    id: Id
    site_id: Id | None = None
    filename: Title
    original_path: Slug
    mime_type: Title
    size: int = Field(ge=0)
    hash: Sha256 | None = None
    meta: Json = Field(default_factory=dict, alias="metadata")


@event("ImageDeleted", stream="image")
class ImageDeleted(EventData):
    """The image and its variant rows were removed."""

    id: Id


# --- navigation ----------------------------------------------------------------------------------


@event("NavigationUpdated", stream="navigation", key="site_id")
class NavigationUpdated(EventData):
    """A site's menu ``name`` now holds exactly ``items`` (nested {label, url|page_id, children})."""

    site_id: Id
    name: Title = "main"
    items: list[Json] = Field(default_factory=list, max_length=10_000)


# --- chat sessions -------------------------------------------------------------------------------


@event("SessionCreated", stream="session")
class SessionCreated(EventData):
    """A chat session (e.g. an editor talking to the site assistant) started."""

    id: Id
    site_id: Id | None = None
    user_id: Id | None = None
    title: Title | None = None


@event("MessageAdded", stream="session", key="session_id")
class MessageAdded(EventData):
    """A message was added to a chat session."""

    id: Id
    session_id: Id
    role: Literal["user", "assistant", "system", "tool"]
    content: LongText
    meta: dict[str, Any] = Field(default_factory=dict, alias="metadata")
