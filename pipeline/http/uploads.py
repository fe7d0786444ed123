"""Storing an uploaded original content-addressed and recording ``ImageUploaded``.

Keys come from the media package's ``MediaStore`` (``originals/ab/<sha256><ext>`` in the media store,
local or S3), so the media job finds what the API stored. Unlike ``pipeline.media.upload`` (which copies
a file that is already on disk), an HTTP upload is a stream: it is hashed while it is written to a
temporary file, so memory stays bounded, then stored with a conditional put, so nothing appears under
a final name until it is complete and two hosts storing the same bytes write it once. The event id
derives from the image id and the content hash, so the same bytes uploaded twice are one event: the
second upload is an idempotent duplicate.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.media.storage import MediaStore
from pipeline.media.upload import media_store as _media_store

from ..api import Chronicle
from ..envelope import NewEvent
from ..settings import Settings

CHUNK = 1 << 20
_SNIFF = (  # magic bytes → (mime, extension); enough to name files well without decoding anything
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
    (b"II*\x00", "image/tiff", ".tif"),
    (b"MM\x00*", "image/tiff", ".tif"),
    (b"8BPS", "image/vnd.adobe.photoshop", ".psd"),
    (b"\x00\x00\x01\x00", "image/x-icon", ".ico"),
    (b"BM", "image/bmp", ".bmp"),
)


@dataclass(frozen=True)
class StoredUpload:
    image_id: str
    sha256: str
    original_path: str
    mime_type: str
    size: int
    position: int | None
    duplicate: bool


def media_store(settings: Settings) -> MediaStore:
    """The store the workers use (``CHRONICLE_MEDIA_URL``, else ``CHRONICLE_MEDIA_ROOT``, default
    ``$CHRONICLE_DATA_DIR/media``)."""
    return _media_store(settings)


def media_root(settings: Settings) -> Path:
    """The local media root (a local store only)."""
    return media_store(settings).root


def sniff(head: bytes, filename: str, declared: str | None) -> tuple[str, str]:
    """(mime type, extension) from the first bytes; the client's claims only as a fallback."""
    for magic, mime, ext in _SNIFF:
        if head.startswith(magic):
            return mime, ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", ".webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "image/avif", ".avif"
    guessed = mimetypes.guess_type(filename)[0]
    chosen = declared if declared and declared != "application/octet-stream" else guessed
    mime = chosen or "application/octet-stream"
    ext = Path(filename).suffix.lower()
    if not ext or len(ext) > 8 or not ext[1:].isalnum():
        ext = mimetypes.guess_extension(mime) or ".bin"
    return mime, ext


def store_upload(chronicle: Chronicle, source: BinaryIO, *, filename: str, content_type: str | None,
                 image_id: str | None = None, site_id: str | None = None,
                 metadata: dict[str, Any] | None = None, actor: str | None = None,
                 authorize: Callable[[list[NewEvent]], None] | None = None) -> StoredUpload:
    """Copy ``source`` into the media root under its sha256 and append ``ImageUploaded`` (``authorize``
    may refuse the event, as ``Chronicle.emit_many``'s; the stored bytes are then left for ``media gc``)."""
    store = media_store(chronicle.settings)
    # locally beside the final place (one filesystem); for object storage any private scratch folder
    tmp_dir = store.root / "originals" if store.local is not None else Path(tempfile.gettempdir()) / "chronicle-uploads"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=".upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                if len(head) < 32:
                    head += chunk[: 32 - len(head)]
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size == 0:
            raise ValueError("the uploaded file is empty")
        sha = digest.hexdigest()
        mime, ext = sniff(head, filename, content_type)
        relative = store.original_key(sha, ext)
        with store.lock():  # never while `chronicle media gc` deletes
            if not store.blobs.put_new(relative, tmp):
                store.blobs.touch(relative)  # the same bytes are there already: fresh again for gc's grace
    finally:
        tmp.unlink(missing_ok=True)

    image_id = image_id or sha[:32]
    data: dict[str, Any] = {"id": image_id, "filename": filename or relative.rsplit("/", 1)[-1],
                            "original_path": relative, "mime_type": mime, "size": size, "hash": sha,
                            "metadata": metadata or {}}
    if site_id:
        data["site_id"] = site_id
    envelope = {"type": "ImageUploaded", "data": data, "id": f"ImageUploaded:{image_id}:{sha}",
                "metadata": {"actor": actor} if actor else {}}
    result = chronicle.emit_many([envelope], authorize=authorize)
    position = result.positions[0] if result.positions else result.last_position
    return StoredUpload(image_id, sha, relative, mime, size, position, duplicate=result.duplicates > 0)
