"""The CMS read model as SQLModel tables in ``data/sqlite.db``: the CMS's own Drizzle schema.

The CMS (``../shared/seeds/001_bc5434b24b84d427.txt``) reads this file with Drizzle ORM, so the tables it
defines (pages, section_definitions, section_entries, images, image_variants, sessions, messages) are
here column for column: its table and column names, its NOT NULLs and defaults, timestamps as INTEGER
Unix seconds (``UnixTime``, Drizzle ``mode: "timestamp"``) and JSON as JSON text (``JSONText``, Drizzle
``mode: "json"``). Columns Chronicle keeps beyond the seed's are nullable or defaulted, so a row
inserted the seed's way is still valid. The tables the seed only names (teams, sites, environments,
page_sections, posts, navigation, site_settings) follow the same conventions; docs/read-model.md
describes every table, and ``chronicle schema drizzle`` prints the matching ``schema.ts``.

These are projections: every row can be dropped and rebuilt from the log. Timestamps come from the
event (``recorded_at`` or a time the CMS sent, floored to whole seconds), never from the projector's
clock, so two builds of the same log are byte-identical (``chronicle checksum``). There are no
foreign-key constraints on purpose: the log is the authority, and a CMS that references a parent it
never created must not wedge the projector; the dangling reference is visible in the read model instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from .types import JSONText, UnixTime


def _json(name: str, *, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(name, JSONText, nullable=nullable))


def _time(name: str, *, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(name, UnixTime, nullable=nullable, index=index))


def _text_default(name: str, default: str, *, nullable: bool = True, index: bool = False) -> Any:
    """A TEXT column with a SQL default (the seed's ``.default("draft")``), so inserts may omit it."""
    return Field(default=default, sa_column=Column(name, Text, nullable=nullable, server_default=default,
                                                   index=index))


def _int_default(name: str, default: int, *, nullable: bool = True) -> Any:
    return Field(default=default, sa_column=Column(name, Integer, nullable=nullable, server_default=str(default)))


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    id: str = Field(primary_key=True)
    name: str
    slug: str | None = None
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")


class Site(SQLModel, table=True):
    __tablename__ = "sites"
    id: str = Field(primary_key=True)
    team_id: str = Field(index=True)
    name: str
    domain: str | None = None
    default_environment_id: str | None = None  # the site's first environment: pages that name none go there
    settings: dict[str, Any] | None = _json("settings")  # the whole settings object; rows in site_settings
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")


class SiteSetting(SQLModel, table=True):
    """One row per top-level settings key of a site (migration ``0003_add_site_settings.sql``)."""

    __tablename__ = "site_settings"
    site_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: Any = _json("value")
    updated_at: datetime | None = _time("updated_at")


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    name: str
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")


class Page(SQLModel, table=True):
    __tablename__ = "pages"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    environment_id: str
    title: str
    slug: str
    status: str | None = _text_default("status", "draft")
    meta: dict[str, Any] | None = _json("metadata")
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")
    parent_id: str | None = None
    published_at: datetime | None = _time("published_at")


class SectionDefinition(SQLModel, table=True):
    __tablename__ = "section_definitions"
    id: str = Field(primary_key=True)
    name: str
    schema_: Any = _json("schema")  # the section's (Zod) schema, as JSON
    default_content: Any = _json("default_content")
    site_id: str | None = Field(default=None, index=True)
    environment_id: str | None = None
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")


class SectionEntry(SQLModel, table=True):
    __tablename__ = "section_entries"
    id: str = Field(primary_key=True)
    definition_id: str = Field(index=True)
    content: Any = _json("content")
    page_id: str | None = Field(default=None, index=True)
    order: int | None = None
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")


class PageSection(SQLModel, table=True):
    """Which section entries a page shows, in order (the CMS's junction table ``pageSections``)."""

    __tablename__ = "page_sections"
    page_id: str = Field(primary_key=True)
    section_entry_id: str = Field(primary_key=True, index=True)
    position: int = _int_default("position", 0, nullable=False)


class Post(SQLModel, table=True):
    __tablename__ = "posts"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    environment_id: str
    title: str
    slug: str
    body: str = _text_default("body", "", nullable=False)
    excerpt: str = _text_default("excerpt", "", nullable=False)
    author: str | None = None
    categories: list[str] | None = _json("categories")
    tags: list[str] | None = _json("tags")
    status: str | None = _text_default("status", "draft")
    meta: dict[str, Any] | None = _json("metadata")
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")
    published_at: datetime | None = _time("published_at")


class Image(SQLModel, table=True):
    __tablename__ = "images"
    id: str = Field(primary_key=True)
    filename: str
    original_path: str
    mime_type: str
    size: int
    width: int | None = None
    height: int | None = None
    hash: str | None = Field(default=None, index=True)
    status: str | None = _text_default("status", "pending", index=True)  # the sweeper looks for stuck ones
    meta: dict[str, Any] | None = _json("metadata")
    created_at: datetime | None = _time("created_at")
    site_id: str | None = Field(default=None, index=True)
    error: str | None = None  # why processing failed (media pipeline), readable by an editor
    updated_at: datetime | None = _time("updated_at")


class ImageVariant(SQLModel, table=True):
    __tablename__ = "image_variants"
    id: str = Field(primary_key=True)
    image_id: str = Field(index=True)
    width: int
    format: str
    path: str
    size: int
    height: int | None = None


class Navigation(SQLModel, table=True):
    """A menu of an environment (the seed puts navigation under the environment)."""

    __tablename__ = "navigation"
    __table_args__ = (Index("ix_navigation_environment_name", "environment_id", "name"),)
    id: str = Field(primary_key=True)  # "<site_id>:<environment_id>:<name>"
    site_id: str = Field(index=True)
    environment_id: str
    name: str = _text_default("name", "main", nullable=False)
    items: list[dict[str, Any]] | None = _json("items")
    updated_at: datetime | None = _time("updated_at")


class ChatSession(SQLModel, table=True):
    __tablename__ = "sessions"
    id: str = Field(primary_key=True)
    title: str | None = None
    created_at: datetime | None = _time("created_at")
    updated_at: datetime | None = _time("updated_at")  # moved by every message of the session
    site_id: str | None = None
    user_id: str | None = None


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_session_created", "session_id", "created_at"),)
    id: str = Field(primary_key=True)
    session_id: str
    role: str
    content: Any = _json("content")  # any JSON: a string, or the CMS's structured parts
    created_at: datetime | None = _time("created_at")
    meta: dict[str, Any] | None = _json("metadata")


class ProjectionCheckpoint(SQLModel, table=True):
    """Last applied log position per projection; written in the same transaction as the rows."""

    __tablename__ = "projection_checkpoints"
    name: str = Field(primary_key=True)
    position: int = 0


class ProjectionSchema(SQLModel, table=True):
    """The schema each projection's tables were built with (``db.schema_version``): a release whose
    tables differ rebuilds that projection from the log before projecting (``pipeline.migrations``)."""

    __tablename__ = "projection_schemas"
    name: str = Field(primary_key=True)
    version: int
    hash: str
