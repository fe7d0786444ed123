"""What we record about an image besides its variants: EXIF summary, colours, placeholder, hashes.

The EXIF summary is deliberately small (camera, lens, taken-at, exposure): the full EXIF block can
hold serial numbers, names and GPS, and it is stripped from every variant. GPS appears in the summary
only when ``CHRONICLE_MEDIA_KEEP_GPS`` is set.
"""

from __future__ import annotations

from typing import Any, cast

from PIL import Image, ImageOps

from pipeline.media.hashes import blurhash, phash

_BASE = {271: "make", 272: "model", 305: "software", 306: "modified_at"}
_EXIF_IFD = {36867: "taken_at", 42036: "lens", 33437: "f_number", 33434: "exposure_time", 34855: "iso",
             37386: "focal_length"}
EXIF_IFD_POINTER, GPS_IFD_POINTER = 0x8769, 0x8825


def _clean(value: Any) -> Any:
    """EXIF values (bytes, IFDRational, tuples) → short JSON-safe values."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.replace("\x00", "").strip()[:200] or None
    if isinstance(value, tuple | list):
        return _clean(value[0]) if len(value) == 1 else [_clean(v) for v in value[:8]]
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() else round(number, 6)


def _gps_degrees(values: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = d + m / 60 + s / 3600
    return round(-degrees if str(ref).upper().startswith(("S", "W")) else degrees, 7)


def exif_summary(im: Image.Image, keep_gps: bool, warnings: list[str]) -> dict[str, Any]:
    """Camera, lens, taken-at and exposure from the header (no decode needed); broken EXIF → {}."""
    try:
        exif = im.getexif()
        summary = {name: _clean(exif.get(tag)) for tag, name in _BASE.items()}
        sub = exif.get_ifd(EXIF_IFD_POINTER)
        summary.update({name: _clean(sub.get(tag)) for tag, name in _EXIF_IFD.items()})
        gps = exif.get_ifd(GPS_IFD_POINTER)
    except Exception as exc:  # fuzzed/broken EXIF is common and must not fail the image
        warnings.append(f"EXIF unreadable: {exc}")
        return {}
    summary = {k: v for k, v in summary.items() if v not in (None, "", [])}
    if gps:
        summary["has_gps"] = True
        if keep_gps:
            lat, lon = _gps_degrees(gps.get(2), gps.get(1)), _gps_degrees(gps.get(4), gps.get(3))
            if lat is not None and lon is not None:
                summary["gps"] = {"lat": lat, "lon": lon}
    return summary


def thumbnail(im: Image.Image, size: int = 64) -> Image.Image:
    """A small RGB copy for colour and hash analysis (transparent areas over white)."""
    small = im.copy()
    small.thumbnail((size, size), Image.Resampling.BILINEAR)
    if small.mode == "RGBA":
        background = Image.new("RGB", small.size, (255, 255, 255))
        background.paste(small, mask=small.getchannel("A"))
        return background
    return small.convert("RGB")


def palette(small: Image.Image, colours: int) -> list[dict[str, Any]]:
    """The ``colours`` most common colours (median cut), most frequent first, with their share."""
    quantised = small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    counts = sorted(quantised.getcolors() or [], reverse=True)
    lut: list[int] = list(quantised.getpalette() or [])
    total = sum(count for count, _ in counts) or 1
    out = []
    for count, index in counts[:colours]:
        start = cast(int, index) * 3  # a palette image's colours are palette indexes
        r, g, b = lut[start: start + 3]
        out.append({"hex": f"#{r:02x}{g:02x}{b:02x}", "share": round(count / total, 4)})
    return out


def pixel_metadata(im: Image.Image, palette_size: int) -> dict[str, Any]:
    """Colours, placeholder and perceptual hash of an upright sRGB image."""
    small = thumbnail(im)
    colours = palette(small, palette_size)
    placeholder = ImageOps.contain(small, (32, 32))
    return {
        "dominant_color": colours[0]["hex"] if colours else None,
        "palette": colours,
        "blurhash": blurhash(placeholder),
        "phash": phash(small),
        "has_alpha": im.mode == "RGBA",
    }
