"""The ``failures`` projection's table: one row per dead letter (handlers in ``pipeline.failures.projection``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from .types import JSONText, UnixTime


class Failure(SQLModel, table=True):
    __tablename__ = "failures"
    id: str = Field(primary_key=True)
    kind: str  # "job" (generic), "image" (media outcome) or "embedding" (a refused text)
    subject: str | None = Field(default=None, index=True)  # the image id; "<kind>:<id>" for an embedding
    task: str
    queue: str
    kwargs: dict[str, Any] = Field(default=None, sa_column=Column("kwargs", JSONText))
    error: str
    attempts: int = 1
    permanent: bool = False
    status: str = Field(default="open", index=True)  # open | retrying | resolved
    retries: int = 0
    source_position: int  # the log position of the event that recorded the failure
    failed_at: datetime = Field(sa_column=Column("failed_at", UnixTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column("updated_at", UnixTime, nullable=False))
