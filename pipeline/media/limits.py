"""Safety checks that run on the header, before a single pixel is decoded.

``Image.open`` only parses headers; these checks then refuse what would be expensive or dangerous to
decode: too many bytes, too many pixels in one frame or across all frames (an animation's cost is
every frame), too many frames, a format we do not serve, or a file whose content is not what the
uploader declared (a "PNG" that is really a PSD is refused rather than guessed at).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.media.errors import MediaRejected
from pipeline.media.settings import MediaSettings

# Pillow format → the canonical mime type we accept for it.
FORMAT_MIME = {
    "JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
    "AVIF": "image/avif", "TIFF": "image/tiff", "ICO": "image/x-icon", "PSD": "image/vnd.adobe.photoshop",
    "BMP": "image/bmp",
}
ALLOWED_FORMATS = tuple(FORMAT_MIME)

# Spellings browsers, CMSs and mimetypes use for the same types.
MIME_ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/mpo": "image/jpeg", "image/x-png": "image/png",
    "image/apng": "image/png", "image/vnd.microsoft.icon": "image/x-icon", "image/ico": "image/x-icon",
    "image/x-ms-bmp": "image/bmp", "image/tif": "image/tiff", "image/x-tiff": "image/tiff",
    "image/x-photoshop": "image/vnd.adobe.photoshop", "image/psd": "image/vnd.adobe.photoshop",
    "application/x-photoshop": "image/vnd.adobe.photoshop", "application/photoshop": "image/vnd.adobe.photoshop",
}


def canonical_mime(mime: str) -> str:
    base = mime.split(";", 1)[0].strip().lower()
    return MIME_ALIASES.get(base, base)


@dataclass(frozen=True, slots=True)
class Header:
    format: str
    mime: str
    width: int
    height: int
    frames: int
    mode: str


def check_file_size(size: int, settings: MediaSettings) -> None:
    if size > settings.max_file_bytes:
        raise MediaRejected(f"file is {size:,} bytes, over the limit of {settings.max_file_bytes:,} "
                             "(CHRONICLE_MEDIA_MAX_FILE_BYTES)")
    if size == 0:
        raise MediaRejected("file is empty")


def check_header(im: Image.Image, declared_mime: str, settings: MediaSettings) -> Header:
    """Refuse before decoding; returns what the header says."""
    fmt = im.format or "?"
    if fmt not in FORMAT_MIME:
        raise MediaRejected(f"unsupported image format {fmt}")
    actual, declared = FORMAT_MIME[fmt], canonical_mime(declared_mime)
    if declared != actual:
        raise MediaRejected(f"declared type {declared_mime!r} does not match the content ({fmt}, {actual})")
    width, height = im.size
    pixels = width * height
    if pixels > settings.max_pixels:
        raise MediaRejected(f"decompression bomb: {width}×{height} = {pixels:,} pixels, over the limit of "
                             f"{settings.max_pixels:,} (CHRONICLE_MEDIA_MAX_PIXELS)")
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > settings.max_frames:
        raise MediaRejected(f"{frames} frames, over the limit of {settings.max_frames} "
                             "(CHRONICLE_MEDIA_MAX_FRAMES)")
    if pixels * frames > settings.max_total_pixels:
        raise MediaRejected(f"decompression bomb: {frames} frames × {pixels:,} pixels = {pixels * frames:,}, "
                             f"over the limit of {settings.max_total_pixels:,} (CHRONICLE_MEDIA_MAX_TOTAL_PIXELS)")
    return Header(fmt, actual, width, height, frames, im.mode)


@contextmanager
def open_checked(path: Path, declared_mime: str, settings: MediaSettings) -> Iterator[tuple[Image.Image, Header]]:
    """Open ``path`` lazily with Pillow's own bomb guard set to our limit, then check the header."""
    check_file_size(path.stat().st_size, settings)
    # Pillow raises above 2× its limit (some plugins while parsing the header, where our check cannot
    # run yet); at half ours it refuses exactly what we would. Its warning below that is ours to give.
    Image.MAX_IMAGE_PIXELS = max(1, settings.max_pixels // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            Image.init()  # registers every plugin, so the format list below can name them
            im = Image.open(path, formats=[f for f in ALLOWED_FORMATS if f in Image.OPEN])
        except UnidentifiedImageError:
            raise MediaRejected("not an image, or a format Chronicle does not accept") from None
        except Image.DecompressionBombError as exc:
            raise MediaRejected(f"decompression bomb: {exc} (limit: CHRONICLE_MEDIA_MAX_PIXELS)") from None
        with im:
            yield im, check_header(im, declared_mime, settings)
