"""Any decoded frame → an upright sRGB image in mode RGB or RGBA, without metadata.

Browsers assume untagged images are sRGB, and we strip every profile from variants (they leak
information and cost bytes), so the pixels themselves must be converted: through the embedded ICC
profile when there is one (CMYK print files, Adobe RGB/Display P3 photos, gray profiles), through a
Lab profile for Lab TIFFs, and by scaling for 16-bit and float data. Transparency survives as alpha;
an alpha channel that is fully opaque is dropped so the JPEG fallback can be used.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageCms, ImageOps

log = logging.getLogger("chronicle.media")

_SRGB = ImageCms.createProfile("sRGB")
_HIGH_DEPTH = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def upright(im: Image.Image, warnings: list[str]) -> Image.Image:
    """Apply the EXIF orientation (the pixels are stored sideways in most phone photos)."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # broken EXIF must not lose the picture; it only loses the rotation
        warnings.append(f"EXIF orientation ignored: {exc}")
        return im


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    data = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") else max(float(data.max()), 1.0)
    if im.mode in ("I", "F") and data.max() <= 255 and data.min() >= 0:
        top = 255.0
    return Image.fromarray(np.clip(data * (255.0 / top), 0, 255).round().astype(np.uint8), "L")


def _apply_icc(im: Image.Image, icc: bytes, warnings: list[str]) -> Image.Image | None:
    if im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return None
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, source, _SRGB, outputMode=out_mode,
                                         renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except Exception as exc:  # a broken profile: fall back to the naive conversion, and say so
        warnings.append(f"ICC profile ignored: {exc}")
        return None


def has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def to_srgb(im: Image.Image, warnings: list[str]) -> Image.Image:
    """Convert a decoded frame to RGB/RGBA sRGB pixels with an empty ``info`` (no EXIF/ICC/XMP)."""
    icc = im.info.get("icc_profile")
    out: Image.Image | None = None
    if im.mode in _HIGH_DEPTH:
        im = _to_8bit_gray(im)
    if im.mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        out = ImageCms.profileToProfile(im, lab, _SRGB, outputMode="RGB")
    elif icc:
        out = _apply_icc(im, icc, warnings)
    if out is None:
        out = im.convert("RGBA" if has_transparency(im) else "RGB")
    if out.mode == "RGBA":
        low, _ = out.getchannel("A").getextrema()
        if low == 255:
            out = out.convert("RGB")
    out.info = {}
    return out
