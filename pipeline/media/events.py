"""Media pipeline outcomes as events: what the media worker did with an uploaded image.

The worker never writes the read model; it records these, and the ``media`` projection turns them
into ``images``/``image_variants`` rows. Because the result (metadata, variant list) is in the log, a
replay rebuilds the rows without decoding or encoding anything.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.events.base import EventData, Id, Json, LongText, Sha256, Slug, Title, event


class VariantInfo(BaseModel):
    """One file produced from an original (content-addressed: ``path`` contains its key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(ge=1)
    height: int = Field(ge=1)
    format: Title
    path: Slug
    size: int = Field(ge=0)
    key: Sha256


@event("ImageProcessingStarted", stream="image")
class ImageProcessingStarted(EventData):
    """A media worker started on the image; status processing."""

    id: Id
    attempt: int = Field(default=1, ge=1)


@event("ImageProcessed", stream="image")
class ImageProcessed(EventData):
    """The image was decoded and its variants exist on disk; status completed. Replaces the variant list."""

    id: Id
    hash: Sha256
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    format: Title
    mime_type: Title
    size: int = Field(ge=0)
    meta: Json = Field(default_factory=dict, alias="metadata")
    variants: list[VariantInfo] = Field(default_factory=list, max_length=1000)
    config: Title = ""
    encoded: int = Field(default=0, ge=0)
    reused: bool = False
    attempts: int = Field(default=1, ge=1)


@event("ImageProcessingFailed", stream="image")
class ImageProcessingFailed(EventData):
    """The image could not be processed; ``permanent`` failures are not retried. Status failed."""

    id: Id
    reason: LongText
    permanent: bool = True
    attempts: int = Field(default=1, ge=1)


@event("ImageDescribed", stream="image")
class ImageDescribed(EventData):
    """AI-written alt text, caption and tags for the image (merged into its metadata under ``ai``)."""

    id: Id
    alt_text: LongText = ""
    caption: LongText = ""
    tags: list[Title] = Field(default_factory=list, max_length=100)
    model: Title = ""


@event("ImageBackfillRequested", stream="image")
class ImageBackfillRequested(EventData):
    """Produce the variants the current configuration asks for and the image lacks (``chronicle media backfill``)."""

    id: Id
    original_path: Slug
    mime_type: Title
    hash: Sha256 | None = None
