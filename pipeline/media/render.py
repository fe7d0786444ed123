"""Pillow IO: resize an upright sRGB image along the plan and encode what is not on disk yet.

Resizing goes largest → smallest, each step from the previous result (with ``reducing_gap`` so
Pillow first does a cheap integer reduce), which is both faster and lighter on memory than resizing
the full-size original for every width. A modern-format file is kept only when it is smaller than
the fallback at the same width; when it is not, a marker records that, so the encode is never repeated.
Variants and markers are written with conditional puts: whole objects, first writer wins.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from pipeline.media.errors import MediaUnavailable
from pipeline.media.plan import VariantSpec
from pipeline.media.storage import MediaStore, variant_key

RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0


@dataclass
class RenderStats:
    """What rendering cost: files encoded, files reused, seconds per phase (``encode_<format>``)."""

    encoded: int = 0
    reused: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, phase: str, started: float) -> None:
        self.seconds[phase] += time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Planned:
    spec: VariantSpec
    key: str
    state: str  # "exists" | "rejected" | "todo"


def survey(specs: list[VariantSpec], source_sha256: str, store: MediaStore) -> list[Planned]:
    """Which planned variants are already done (file or rejection marker), without decoding anything."""
    out = []
    for spec in specs:
        key = variant_key(source_sha256, spec.params())
        if store.exists(store.variant_path(key, spec.ext)):
            state = "exists"
        elif store.exists(store.rejected_marker(key)):
            state = "rejected"
        else:
            state = "todo"
        out.append(Planned(spec, key, state))
    return out


def encode(im: Image.Image, spec: VariantSpec, avif_threads: int) -> bytes:
    """One variant's bytes. Nothing from the original's metadata is passed: ``im.info`` is empty, and
    no exif/icc/xmp argument is given, so variants carry pixels only."""
    buf = io.BytesIO()
    options: dict[str, Any]
    if spec.format == "jpeg":
        options = {"quality": spec.quality or 82, "progressive": True, "optimize": False}
    elif spec.format == "png":
        options = {"optimize": False, "compress_level": 6}
    elif spec.format == "webp":
        options = {"quality": spec.quality or 78, "method": 4}
    elif spec.format == "avif":
        options = {"quality": spec.quality or 55, "speed": spec.speed if spec.speed is not None else 8,
                   "max_threads": avif_threads}
    else:  # pragma: no cover - plan only produces the four above
        raise ValueError(f"unknown variant format {spec.format}")
    im.save(buf, format=spec.format.upper(), **options)
    return buf.getvalue()


def render(im: Image.Image | None, planned: list[Planned], store: MediaStore, stats: RenderStats,
           avif_threads: int = 1) -> list[dict[str, Any]]:
    """Produce every planned variant that is missing; returns the kept variants (largest first)."""
    kept: list[dict[str, Any]] = []
    by_width: dict[int, list[Planned]] = defaultdict(list)
    for item in planned:
        by_width[item.spec.width].append(item)
    current = im
    for width in sorted(by_width, reverse=True):
        items = by_width[width]
        spec0 = items[0].spec
        needs_pixels = any(p.state == "todo" for p in items)
        needs_smaller = any(p.state == "todo" for w, ps in by_width.items() if w < width for p in ps)
        if needs_pixels or needs_smaller:
            assert current is not None, "the caller decodes the original whenever a variant is missing"
        if (needs_pixels or needs_smaller) and current is not None and current.size != (spec0.width, spec0.height):
            started = time.perf_counter()
            resized = current.resize((spec0.width, spec0.height), RESAMPLE, reducing_gap=REDUCING_GAP)
            if current is not im and current is not None:
                current.close()  # free the previous step eagerly: only one intermediate lives at a time
            current = resized
            stats.add("resize", started)
        fallback_size = 0
        for item in items:
            spec, path = item.spec, store.variant_path(item.key, item.spec.ext)
            if item.state == "rejected":
                stats.reused += 1
                continue
            if item.state == "exists":
                stats.reused += 1
                found = store.blobs.info(path)
                if found is None:  # collected since the survey: make it again
                    raise MediaUnavailable(f"variant {path} vanished since the survey")
                size = found.size
            else:
                started = time.perf_counter()
                assert current is not None  # a "todo" variant means the original was decoded
                data = encode(current, spec, avif_threads)
                stats.add(f"encode_{spec.format}", started)
                stats.encoded += 1
                size = len(data)
                if not spec.fallback and size >= fallback_size:
                    store.blobs.put_new(store.rejected_marker(item.key), b"")
                    continue
                # Conditional put: a concurrent worker that wrote this key first wrote the same content.
                store.blobs.put_new(path, data)
            if spec.fallback:
                fallback_size = size
            kept.append({"width": spec.width, "height": spec.height, "format": spec.format,
                         "path": path, "size": size, "key": item.key})
    if current is not None and current is not im:
        current.close()
    return kept
