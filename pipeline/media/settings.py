"""Media pipeline configuration (``CHRONICLE_MEDIA_*`` environment variables).

Kept apart from ``Settings`` so the image knobs (many, and only read by media workers) do not crowd
the core configuration. Every limit that protects a worker from hostile input lives here, so an
operator can see at a glance what a file must satisfy before it is decoded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ModernFormat = Literal["webp", "avif"]


def _csv(value: Any) -> Any:
    """Accept ``320,640`` as well as JSON (``[320, 640]``) in env vars: the first is what people type."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _mapping(value: Any) -> Any:
    """Accept ``webp=80,avif=50`` or JSON for per-key settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            return orjson.loads(text)
        return dict(part.split("=", 1) for part in text.split(",") if part.strip())
    return value


class MediaSettings(BaseSettings):
    """What the media worker produces and the limits it enforces."""

    model_config = SettingsConfigDict(env_prefix="CHRONICLE_MEDIA_", extra="ignore")

    # -- where files live --------------------------------------------------------------------------
    root: Path | None = Field(
        default=None,
        description="Media root: ImageUploaded.original_path is relative to it and may not leave it. "
        "Default $CHRONICLE_DATA_DIR/media.")
    url: str | None = Field(
        default=None,
        description="Where originals, variants, manifests and markers live: unset (the media root above) or "
        "s3://bucket/prefix (endpoint and credentials from the AWS_* variables). See docs/operations.md.")
    presign_seconds: int = Field(
        default=0, ge=0,
        description="On object storage, GET /media/... redirects to a presigned URL valid this long; "
        "0 (default): the API streams the object itself (no bucket access needed by browsers).")

    # -- what to produce ---------------------------------------------------------------------------
    widths: Annotated[list[int], NoDecode, BeforeValidator(_csv)] = Field(
        default=[320, 640, 1024, 1920], description="Variant widths in pixels; never upscaled.")
    formats: Annotated[list[ModernFormat], NoDecode, BeforeValidator(_csv)] = Field(
        default=["webp", "avif"], description="Modern formats, kept only where smaller than the fallback.")
    quality: Annotated[dict[str, int], NoDecode, BeforeValidator(_mapping)] = Field(
        default={"jpeg": 82, "webp": 78, "avif": 55}, description="Encoder quality per format (0-100).")
    avif_speed: int = Field(default=9, ge=0, le=10, description="libaom/rav1e speed: 10 fastest, 0 best. 9: the "
                            "same size and SSIM as 8 at a third of the CPU (docs/media.md, Performance).")
    avif_speed_by_width: Annotated[dict[int, int], NoDecode, BeforeValidator(_mapping)] = Field(
        default={}, description="Override avif_speed for given widths, e.g. 320=6,1920=9.")
    avif_threads: int = Field(default=1, ge=1, le=64,
                              description="Encoder threads per AVIF encode; run one worker process per core instead.")
    keep_gps: bool = Field(default=False, description="Keep GPS coordinates in the recorded EXIF summary.")
    palette_size: int = Field(default=5, ge=1, le=16, description="Colours in the recorded palette.")

    # -- safety limits (checked from the header before decoding) ------------------------------------
    max_file_bytes: int = Field(default=100 * 2**20, ge=1, description="Largest original accepted.")
    max_pixels: int = Field(default=120_000_000, ge=1, description="Largest frame (w×h) accepted.")
    max_total_pixels: int = Field(default=200_000_000, ge=1,
                                  description="w×h×frames: an animation counts every frame.")
    max_frames: int = Field(default=500, ge=1, description="Most frames/pages/layers accepted.")
    max_output_pixels: int = Field(default=12_000_000, ge=1,
                                   description="Sum of w×h over all variants of one image.")
    time_limit: float = Field(default=60.0, gt=0, description="Seconds one image may take, decode to encode.")
    memory_limit_mb: int = Field(default=3072, ge=0,
                                 description="Address-space cap of the sandbox process (0: no cap).")
    isolation: Literal["subprocess", "inline"] = Field(
        default="subprocess",
        description="subprocess: decode in a helper process that is killed on a hang or a crash; "
        "inline: in the worker itself (no time bound beyond Celery's; for debugging).")

    # -- retries -----------------------------------------------------------------------------------
    retry_attempts: int = Field(default=5, ge=1, description="Attempts for transient errors.")
    retry_base: float = Field(default=0.5, ge=0, description="First backoff (seconds), doubled each time.")
    retry_max: float = Field(default=30.0, ge=0, description="Longest single backoff (seconds).")

    # -- AI description ----------------------------------------------------------------------------
    describe_model: str = Field(default="gpt-4o-mini", description="Vision model for alt text/caption/tags.")
    describe_attempts: int = Field(default=5, ge=1, description="API attempts (429 honours Retry-After).")
    describe_timeout: float = Field(default=60.0, gt=0, description="Seconds per API request.")

    def media_root(self, data_media_dir: Path) -> Path:
        return (self.root or data_media_dir).expanduser().resolve()

    def store_url(self, data_media_dir: Path) -> str:
        """``CHRONICLE_MEDIA_URL`` if set (``s3://…`` or a path), else the local media root."""
        if self.url and "://" in self.url:
            return self.url.rstrip("/")
        return str(Path(self.url).expanduser().resolve()) if self.url else str(self.media_root(data_media_dir))

    def speed_for(self, width: int) -> int:
        return self.avif_speed_by_width.get(width, self.avif_speed)

    def render_fingerprint(self) -> str:
        """Hash of everything that changes produced files: a manifest is reused only under the same one."""
        keys = ("widths", "formats", "quality", "avif_speed", "avif_speed_by_width", "keep_gps", "palette_size")
        blob = orjson.dumps(self.model_dump(mode="json", include=set(keys)), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]
