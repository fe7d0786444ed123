"""Getting an image in: store the original content-addressed and record ``ImageUploaded``.

The original is copied to ``originals/ab/<sha256><ext>`` under the media root (a second upload of the
same bytes writes nothing), and the event's ``original_path`` is relative to that root, which is what
the media job accepts. The mime type is what the file claims (its extension, or what the caller
says); the job checks it against the decoded content, as it does for a CMS's own events.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pipeline.media.limits import FORMAT_MIME
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore, sha256_file

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


def store_original(path: Path, store: MediaStore) -> tuple[str, Path]:
    """Copy ``path`` into the content-addressed originals (once per content); returns (sha256, stored path)."""
    sha = sha256_file(path)
    target = store.original_path(sha, _extension(path))
    with store.lock():  # `chronicle media gc` deletes nothing while we look and touch
        if target.exists():
            os.utime(target)  # fresh again: gc keeps what was touched within its grace period
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
            shutil.copyfile(path, tmp)
            tmp.replace(target)
    return sha, target


def upload(chronicle: JobContext, path: str | Path, *, image_id: str | None = None, site_id: str | None = None,
           mime_type: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``path`` and emit ``ImageUploaded``; returns the event data. Processing happens on drain/worker."""
    source = Path(path)
    store = MediaStore(chronicle.settings.section(MediaSettings).media_root(chronicle.settings.media_dir))
    sha, stored = store_original(source, store)
    data = {"id": image_id or uuid.uuid4().hex, "site_id": site_id, "filename": source.name[:2000],
            "original_path": store.relative(stored), "mime_type": mime_type or declared_mime(source),
            "size": stored.stat().st_size, "hash": sha, "metadata": metadata or {}}
    chronicle.emit("ImageUploaded", data)
    return data
