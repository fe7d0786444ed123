"""Pure planning: an original's size and the settings → the variants to make. No Pillow, no IO.

Kept pure so the interesting rules (never upscale, which fallback, which key) are tested with plain
values and so the same plan decides what the worker renders and what ``media backfill`` considers
missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.media.errors import MediaRejected
from pipeline.media.settings import MediaSettings

# Bumped when rendering changes in a way that alters output bytes: new keys, so old files are not reused.
RENDER_VERSION = 1

EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}


@dataclass(frozen=True, slots=True)
class VariantSpec:
    width: int
    height: int
    format: str  # jpeg | png | webp | avif
    quality: int | None
    speed: int | None
    fallback: bool  # the universally supported rendition at this width (always kept)

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.format]

    def params(self) -> dict[str, Any]:
        """Everything that determines the output bytes besides the original (→ the content key)."""
        return {"v": RENDER_VERSION, "w": self.width, "h": self.height, "fmt": self.format,
                "q": self.quality, "s": self.speed}


def target_sizes(width: int, height: int, widths: list[int]) -> list[tuple[int, int]]:
    """Widths below the original, plus the original width when it is within the largest configured
    width (so a small image still gets one rendition); never upscaled. Largest first."""
    if width < 1 or height < 1:
        raise MediaRejected(f"image has no pixels ({width}×{height})")
    chosen = {w for w in widths if 0 < w < width}
    if widths and width <= max(widths):
        chosen.add(width)
    return [(w, max(1, round(height * w / width))) for w in sorted(chosen, reverse=True)]


def fallback_format(has_alpha: bool) -> str:
    return "png" if has_alpha else "jpeg"


def plan_variants(width: int, height: int, has_alpha: bool, settings: MediaSettings) -> list[VariantSpec]:
    """Every variant to produce, largest width first, the fallback before the modern formats."""
    sizes = target_sizes(width, height, settings.widths)
    total = sum(w * h for w, h in sizes)
    if total > settings.max_output_pixels:
        raise MediaRejected(f"variants would total {total:,} pixels, over the limit of "
                             f"{settings.max_output_pixels:,} (CHRONICLE_MEDIA_MAX_OUTPUT_PIXELS)")
    fallback = fallback_format(has_alpha)
    specs: list[VariantSpec] = []
    for w, h in sizes:
        specs.append(VariantSpec(w, h, fallback, settings.quality.get(fallback) if fallback == "jpeg" else None,
                                 None, fallback=True))
        for fmt in dict.fromkeys(settings.formats):
            speed = settings.speed_for(w) if fmt == "avif" else None
            specs.append(VariantSpec(w, h, fmt, settings.quality.get(fmt, 75), speed, fallback=False))
    return specs


def draft_size(width: int, height: int, widths: list[int], swapped: bool) -> tuple[int, int]:
    """The smallest decode size that still covers the largest variant (JPEG draft mode decodes at
    1/2, 1/4, 1/8 scale for free). ``swapped``: the EXIF orientation turns the stored image 90°."""
    sizes = target_sizes(width, height, widths)
    w, h = sizes[0]
    return (h, w) if swapped else (w, h)
