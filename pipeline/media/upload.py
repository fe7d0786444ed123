"""Getting an image in: store the original content-addressed and record ``ImageUploaded``.

The original is copied to ``originals/ab/<sha256><ext>`` under the media root (a second upload of the
same bytes writes nothing), and the event's ``original_path`` is relative to that root, which is what
the media job accepts. The mime type is what the file claims (its extension, or what the caller
says); the job checks it against the decoded content, as it does for a CMS's own events.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pipeline.media.limits import FORMAT_MIME
from pipeline.media.storage import MediaStore, media_store, sha256_file

if TYPE_CHECKING:
    from pipeline.context import JobContext


def declared_mime(path: Path) -> str:
    """The type a browser would declare: by extension, else by sniffing the header, else unknown."""
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed:
        return guessed
    try:
        with Image.open(path) as im:
            return FORMAT_MIME.get(im.format or "", "application/octet-stream")
    except Exception:
        return "application/octet-stream"


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""


def store_original(path: Path, store: MediaStore) -> tuple[str, str]:
    """Copy ``path`` into the content-addressed originals (once per content); returns (sha256, key).

    A conditional put: when two uploads (on any hosts) store the same bytes, one writes and the other
    finds the object there, which is the same content by its name; it refreshes it for gc's grace period."""
    sha = sha256_file(path)
    key = store.original_key(sha, _extension(path))
    with store.lock():  # `chronicle media gc` deletes nothing while we look and touch
        if not store.blobs.put_new(key, path):
            store.blobs.touch(key)  # fresh again: gc keeps what was touched within its grace period
    return sha, key


def upload(chronicle: JobContext, path: str | Path, *, image_id: str | None = None, site_id: str | None = None,
           mime_type: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``path`` and emit ``ImageUploaded``; returns the event data. Processing happens on drain/worker."""
    source = Path(path)
    store = media_store(chronicle.settings)
    sha, key = store_original(source, store)
    data = {"id": image_id or uuid.uuid4().hex, "site_id": site_id, "filename": source.name[:2000],
            "original_path": key, "mime_type": mime_type or declared_mime(source),
            "size": source.stat().st_size, "hash": sha, "metadata": metadata or {}}
    chronicle.emit("ImageUploaded", data)
    return data
