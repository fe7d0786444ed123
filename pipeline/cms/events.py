"""The CMS data model as events: teams → sites → environments → pages, sections, posts, images,
navigation, chat sessions. Field names follow the CMS's tables (its Drizzle schema, see
docs/read-model.md) so a row and the event that made it read the same. ``metadata`` is called ``meta``
in Python (pydantic reserves nothing here, but the ORM does) and ``metadata`` on the wire and in the
tables; likewise a section definition's ``schema`` is ``schema_`` in Python.

Events recorded under an older shape are upcast on read (``pipeline.cms.upcasters``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from pipeline.events.base import EventData, Id, Json, LongText, Sha256, Slug, Title, event

# --- tenancy -------------------------------------------------------------------------------------


@event("TeamCreated", stream="team")
class TeamCreated(EventData):
    """A team (tenant) was created."""

    id: Id
    name: Title
    slug: Slug | None = None


@event("SiteCreated", stream="site", site="id")
class SiteCreated(EventData):
    """A site was created inside a team."""

    id: Id
    team_id: Id
    name: Title
    domain: Slug | None = None


@event("SiteSettingsUpdated", stream="site", partial=True, site="id")
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


Status = Annotated[str, StringConstraints(min_length=1, max_length=50)]


@event("PageCreated", stream="page")
class PageCreated(EventData):
    """A page was created (a draft unless ``status`` says otherwise).

    Without ``environment_id`` the page goes to its site's first environment (``sites.default_environment_id``).
    """

    id: Id
    site_id: Id
    environment_id: Id | None = None
    title: Title
    slug: Slug
    status: Status = "draft"
    parent_id: Id | None = None
    meta: Json = Field(default_factory=dict, alias="metadata")
    created_at: datetime | None = None
    published_at: datetime | None = None


@event("PageUpdated", stream="page", partial=True)
class PageUpdated(EventData):
    """Some page fields changed; fields not sent stay as they are."""

    id: Id
    title: Title | None = None
    slug: Slug | None = None
    environment_id: Id | None = None
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


def _fields_as_schema(data: Any) -> Any:
    """Senders of the v1 shape still work: ``fields`` is accepted as the ``schema`` it always was."""
    if isinstance(data, dict) and "fields" in data and "schema" not in data:
        data = {("schema" if k == "fields" else k): v for k, v in data.items()}
    return data


@event("SectionDefinitionCreated", stream="section-definition", version=2)
class SectionDefinitionCreated(EventData):
    """A reusable section type (hero, gallery, FAQ…) with its (Zod) schema and default content.

    v1 had ``fields`` (a list of field specs) and a required ``site_id``; its ``fields`` become ``schema``.
    """

    id: Id
    name: Title
    schema_: JsonValue = Field(default=None, alias="schema")
    default_content: JsonValue = None
    site_id: Id | None = None
    environment_id: Id | None = None

    _accept_fields = model_validator(mode="before")(_fields_as_schema)


@event("SectionDefinitionUpdated", stream="section-definition", partial=True, version=2)
class SectionDefinitionUpdated(EventData):
    """A section definition's name, schema or default content changed (each replaced whole)."""

    id: Id
    name: Title | None = None
    schema_: JsonValue = Field(default=None, alias="schema")
    default_content: JsonValue = None

    _accept_fields = model_validator(mode="before")(_fields_as_schema)


@event("SectionEntryCreated", stream="section-entry",
       site_via={"page_id": "page", "definition_id": "section-definition"})
class SectionEntryCreated(EventData):
    """A section instance with content; when ``page_id`` is set it is linked at ``order``."""

    id: Id
    definition_id: Id
    page_id: Id | None = None
    content: JsonValue = Field(default_factory=dict)
    order: int = Field(default=0, ge=0, le=1_000_000)


@event("SectionEntryUpdated", stream="section-entry", partial=True)
class SectionEntryUpdated(EventData):
    """A section entry's content (replaced whole) or order changed."""

    id: Id
    content: JsonValue = None
    order: int | None = Field(default=None, ge=0, le=1_000_000)


@event("SectionEntryDeleted", stream="section-entry")
class SectionEntryDeleted(EventData):
    """A section entry and its page link were removed."""

    id: Id


@event("PageSectionsReordered", stream="page", key="page_id", site_via={"page_id": "page"})
class PageSectionsReordered(EventData):
    """The page's sections are exactly ``section_ids``, in this order."""

    page_id: Id
    section_ids: list[Id] = Field(max_length=10_000)


# --- posts ---------------------------------------------------------------------------------------


@event("PostCreated", stream="post", personal=("title", "body", "excerpt", "author"), subject="author")
class PostCreated(EventData):
    """A blog post was created (a draft unless ``status`` says otherwise); environment as for pages."""

    id: Id
    site_id: Id
    environment_id: Id | None = None
    title: Title
    slug: Slug
    status: Status = "draft"
    body: LongText = ""
    excerpt: LongText = ""
    author: Title | None = None
    categories: list[Title] = Field(default_factory=list)
    tags: list[Title] = Field(default_factory=list)
    meta: Json = Field(default_factory=dict, alias="metadata")
    created_at: datetime | None = None
    published_at: datetime | None = None


@event("PostUpdated", stream="post", partial=True, personal=("title", "body", "excerpt", "author"))
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
    """An environment's menu ``name`` now holds exactly ``items`` (nested {label, url|page_id, children}).

    Without ``environment_id`` the menu is the site's first environment's.
    """

    site_id: Id
    environment_id: Id | None = None
    name: Title = "main"
    items: list[Json] = Field(default_factory=list, max_length=10_000)


# --- chat sessions -------------------------------------------------------------------------------


@event("SessionCreated", stream="session", personal=("title", "user_id"), subject="user_id")
class SessionCreated(EventData):
    """A chat session (e.g. an editor talking to the site assistant) started."""

    id: Id
    site_id: Id | None = None
    user_id: Id | None = None
    title: Title | None = None


@event("MessageAdded", stream="session", key="session_id", site_via={"session_id": "session"},
       personal=("content",))
class MessageAdded(EventData):
    """A message was added to a chat session (its ``updated_at`` moves to the message's time).

    ``content`` is any JSON (a string, or the CMS's structured parts), stored as JSON text.
    """

    id: Id
    session_id: Id
    role: Literal["user", "assistant", "system", "tool"]
    content: JsonValue
    meta: dict[str, Any] = Field(default_factory=dict, alias="metadata")
