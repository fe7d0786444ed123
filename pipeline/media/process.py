"""One original → its variants and metadata: the unit of work the sandbox runs.

Order matters for safety and cost: size check → sha256 → reuse a manifest (a duplicate upload or a
second delivery of the job costs one hash) → header checks → survey what is already on disk (a
backfill with nothing missing never decodes) → decode (JPEG in draft mode, at the smallest scale
that covers the largest variant) → orientation and colour → metadata → encode what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.media.colour import to_srgb, upright
from pipeline.media.errors import MediaRejected
from pipeline.media.limits import Header, open_checked
from pipeline.media.metadata import exif_summary, pixel_metadata
from pipeline.media.plan import draft_size, plan_variants
from pipeline.media.render import RenderStats, render, survey
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore, sha256_file

ORIENTATION_TAG = 0x0112


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(ORIENTATION_TAG) or 1)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _animation(im: Image.Image, header: Header) -> dict[str, Any]:
    if header.frames <= 1:
        return {"animated": False, "frames": 1}
    # GIF/WebP/AVIF animations and multi-page TIFF/PSD layers: variants show the first frame (a poster);
    # the original stays available for playback. See docs/media.md, "Animated images".
    animated = header.format in ("GIF", "WEBP", "AVIF", "PNG") and bool(getattr(im, "is_animated", True))
    return {"animated": animated, "frames": header.frames, "loop": im.info.get("loop"),
            "frame_duration_ms": im.info.get("duration")}


def process_original(path: Path, declared_mime: str, settings: MediaSettings, store: MediaStore,
                     expected_sha256: str | None = None) -> dict[str, Any]:
    """Process the original at ``path``; raises ``MediaError`` subclasses (or Pillow's) on failure."""
    stats = RenderStats()
    started = time.perf_counter()
    size = path.stat().st_size
    sha = sha256_file(path)
    stats.add("hash", started)
    if expected_sha256 and sha != expected_sha256:
        raise MediaRejected(f"content sha256 {sha[:12]}… does not match the declared hash {expected_sha256[:12]}…")
    fingerprint = settings.render_fingerprint()
    manifest = store.read_manifest(sha, fingerprint)
    if manifest is not None:
        return {**manifest, "reused": True, "encoded": 0, "seconds": dict(stats.seconds)}
    previous = store.latest_manifest(sha)

    with open_checked(path, declared_mime, settings) as (im, header):
        warnings: list[str] = []
        rgb: Image.Image | None = None
        if previous is not None:
            # Backfill: the pixels' facts are known; decode only if some planned file is missing.
            width, height, meta = previous["width"], previous["height"], previous["metadata"]
            planned = survey(plan_variants(width, height, bool(meta.get("has_alpha")), settings), sha, store)
            if any(p.state == "todo" for p in planned):
                rgb, orientation = _decode(im, header, settings, warnings, stats)
        else:
            rgb, orientation = _decode(im, header, settings, warnings, stats)
        if rgb is not None:
            swapped = orientation in (5, 6, 7, 8)
            width, height = (header.height, header.width) if swapped else (header.width, header.height)
            t = time.perf_counter()
            meta = {"exif": exif_summary(im, settings.keep_gps, warnings), "orientation": orientation,
                    **_animation(im, header), **pixel_metadata(rgb, settings.palette_size)}
            stats.add("analyse", t)
            planned = survey(plan_variants(width, height, rgb.mode == "RGBA", settings), sha, store)
            if warnings:
                meta["warnings"] = warnings
        variants = render(rgb, planned, store, stats, avif_threads=settings.avif_threads)

    result = {"hash": sha, "width": width, "height": height, "format": header.format, "mime_type": header.mime,
              "size": size, "metadata": meta, "variants": variants, "config": fingerprint}
    store.write_manifest(sha, fingerprint, result)
    return {**result, "reused": False, "encoded": stats.encoded, "seconds": dict(stats.seconds)}


def _decode(im: Image.Image, header: Header, settings: MediaSettings, warnings: list[str],
            stats: RenderStats) -> tuple[Image.Image, int]:
    """Decode the first frame, upright, as sRGB RGB/RGBA; JPEGs at a reduced scale when that suffices.

    Pixels are loaded *before* anything else reads the file's metadata: some plugins (PNG) load the
    image to find EXIF, and a decode error swallowed there would leave garbage pixels behind.
    """
    started = time.perf_counter()
    orientation = 1
    if header.format in ("JPEG", "MPO"):
        orientation = _orientation(im)  # JPEG EXIF lives in a header segment: reading it decodes nothing
        swapped = orientation in (5, 6, 7, 8)
        w, h = (header.height, header.width) if swapped else (header.width, header.height)
        im.draft(None, draft_size(w, h, settings.widths, swapped))
    im.load()
    if header.format not in ("JPEG", "MPO"):
        orientation = _orientation(im)
    stats.add("decode", started)
    started = time.perf_counter()
    rgb = to_srgb(upright(im, warnings), warnings)
    stats.add("colour", started)
    return rgb, orientation
