"""The CMS read model as SQLModel tables in ``data/sqlite.db``.

These are projections: every row can be dropped and rebuilt from the log. Timestamps come from the
event (``recorded_at`` or a time the CMS sent), never from the projector's clock, so two builds of the
same log are byte-identical (``chronicle checksum``). There are no foreign-key constraints on purpose:
the log is the authority, and a CMS that references a parent it never created must not wedge the
projector; the dangling reference is visible in the read model instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


def _json(name: str | None = None, *, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(name, JSON, nullable=nullable) if name else Column(JSON))


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    id: str = Field(primary_key=True)
    name: str
    slug: str | None = None
    created_at: datetime


class Site(SQLModel, table=True):
    __tablename__ = "sites"
    id: str = Field(primary_key=True)
    team_id: str = Field(index=True)
    name: str
    domain: str | None = None
    settings: dict[str, Any] = _json("settings")
    created_at: datetime
    updated_at: datetime


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    name: str
    created_at: datetime


class Page(SQLModel, table=True):
    __tablename__ = "pages"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    environment_id: str | None = None
    parent_id: str | None = None
    title: str
    slug: str
    status: str = "draft"
    meta: dict[str, Any] = _json("metadata")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class SectionDefinition(SQLModel, table=True):
    __tablename__ = "section_definitions"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    name: str
    fields: list[dict[str, Any]] = _json("fields")
    created_at: datetime
    updated_at: datetime


class SectionEntry(SQLModel, table=True):
    __tablename__ = "section_entries"
    id: str = Field(primary_key=True)
    definition_id: str = Field(index=True)
    page_id: str | None = Field(default=None, index=True)
    content: dict[str, Any] = _json("content")
    order: int = 0
    created_at: datetime
    updated_at: datetime


class PageSection(SQLModel, table=True):
    """Which section entries a page shows, in order (the CMS's join table)."""

    __tablename__ = "page_sections"
    page_id: str = Field(primary_key=True)
    section_entry_id: str = Field(primary_key=True, index=True)
    position: int


class Post(SQLModel, table=True):
    __tablename__ = "posts"
    id: str = Field(primary_key=True)
    site_id: str = Field(index=True)
    environment_id: str | None = None
    title: str
    slug: str
    body: str = ""
    excerpt: str = ""
    author: str | None = None
    categories: list[str] = _json("categories")
    tags: list[str] = _json("tags")
    status: str = "draft"
    meta: dict[str, Any] = _json("metadata")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class Image(SQLModel, table=True):
    __tablename__ = "images"
    id: str = Field(primary_key=True)
    site_id: str | None = Field(default=None, index=True)
    filename: str
    original_path: str
    mime_type: str
    size: int
    width: int | None = None
    height: int | None = None
    hash: str | None = Field(default=None, index=True)
    status: str = Field(default="pending", index=True)  # the sweeper looks for stuck ones
    error: str | None = None  # why processing failed (media pipeline), readable by an editor
    meta: dict[str, Any] = _json("metadata")
    created_at: datetime
    updated_at: datetime


class ImageVariant(SQLModel, table=True):
    __tablename__ = "image_variants"
    id: str = Field(primary_key=True)
    image_id: str = Field(index=True)
    width: int
    height: int | None = None
    format: str
    path: str
    size: int


class Navigation(SQLModel, table=True):
    __tablename__ = "navigation"
    site_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    items: list[dict[str, Any]] = _json("items")
    updated_at: datetime


class ChatSession(SQLModel, table=True):
    __tablename__ = "sessions"
    id: str = Field(primary_key=True)
    site_id: str | None = None
    user_id: str | None = None
    title: str | None = None
    created_at: datetime


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_session_created", "session_id", "created_at"),)
    id: str = Field(primary_key=True)
    session_id: str
    role: str
    content: str
    meta: dict[str, Any] = _json("metadata")
    created_at: datetime


class ProjectionCheckpoint(SQLModel, table=True):
    """Last applied log position per projection; written in the same transaction as the rows."""

    __tablename__ = "projection_checkpoints"
    name: str = Field(primary_key=True)
    position: int = 0
