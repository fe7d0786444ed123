"""Content-addressed media storage.

Originals live at ``originals/ab/<sha256><ext>``, variants at ``variants/ab/<key>.<ext>`` where the
key hashes the original's sha256 with every parameter that changes the output. So a file's name says
what it is: if it exists, the work was done (by this image, a duplicate upload, or an earlier config)
and is never redone. The bytes live behind the ``Blobs`` seam (``pipeline.media.blobs``): the local
media root or an S3 bucket, chosen by ``CHRONICLE_MEDIA_URL``; every write there is whole-or-nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.media.blobs import Blobs, LocalBlobs, check_key, open_blobs
from pipeline.media.settings import MediaSettings

if TYPE_CHECKING:
    from pipeline.settings import Settings

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def variant_key(source_sha256: str, params: dict[str, Any]) -> str:
    """The content address of a variant: same original + same parameters ⇒ same key ⇒ same file."""
    blob = orjson.dumps({"src": source_sha256, **params}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    LocalBlobs(path.parent).put(path.name, data)


class MediaStore:
    """The media layout (which key holds what) over one ``Blobs`` backend."""

    def __init__(self, where: Path | str | Blobs) -> None:
        self.blobs: Blobs = where if isinstance(where, Blobs) else open_blobs(where)

    @property
    def url(self) -> str:
        return self.blobs.url

    @property
    def local(self) -> LocalBlobs | None:
        return self.blobs if isinstance(self.blobs, LocalBlobs) else None

    @property
    def root(self) -> Path:
        """The local media root (only a local store has one)."""
        if self.local is None:
            raise RuntimeError(f"the media store {self.url} is not a local directory")
        return self.local.root

    # -- keys ----------------------------------------------------------------------------------------

    @staticmethod
    def original_key(sha256: str, ext: str) -> str:
        return f"originals/{sha256[:2]}/{sha256}{ext.lower()}"

    @staticmethod
    def variant_path(key: str, ext: str) -> str:
        return f"variants/{key[:2]}/{key}.{ext}"

    @staticmethod
    def rejected_marker(key: str) -> str:
        """Records "encoded, and was not smaller than the fallback", so the encode is not repeated."""
        return f"variants/{key[:2]}/{key}.rejected"

    @staticmethod
    def manifest_path(sha256: str, fingerprint: str) -> str:
        return f"manifests/{sha256[:2]}/{sha256}-{fingerprint}.json"

    @staticmethod
    def description_path(sha256: str, model: str) -> str:
        safe = hashlib.sha256(model.encode()).hexdigest()[:12]
        return f"descriptions/{sha256[:2]}/{sha256}-{safe}.json"

    def check(self, relative: str) -> str:
        """A key as sent by a CMS → the normalised key, refusing anything that leaves the store."""
        if self.local is not None:
            return self.local.path(relative).relative_to(self.local.root).as_posix()
        return check_key(relative)

    def resolve_inside(self, relative: str) -> Path:
        """``relative`` → its absolute path under a local root, refusing anything outside it."""
        if self.local is None:
            raise RuntimeError(f"the media store {self.url} is not a local directory")
        return self.local.path(relative)

    def lock(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """The collector lock. Writers and readers of content-addressed files (an upload storing an
        original, a media job reusing or writing variants) hold it shared; ``chronicle media gc``
        holds it exclusively while it re-checks and deletes. Local only: on object storage the
        collector relies on its grace period and Last-Modified (see ``ObjectBlobs.lock``)."""
        lock: AbstractContextManager[None] = self.blobs.lock(exclusive=exclusive)
        return lock

    def exists(self, key: str) -> bool:
        return self.blobs.info(key) is not None

    def fetch(self, key: str) -> AbstractContextManager[Path]:
        fetched: AbstractContextManager[Path] = self.blobs.fetch(key)
        return fetched

    # -- manifests -----------------------------------------------------------------------------------

    def read_manifest(self, sha256: str, fingerprint: str) -> dict[str, Any] | None:
        key = self.manifest_path(sha256, fingerprint)
        try:
            manifest = orjson.loads(self.blobs.read(key))
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        # A manifest is only as good as the files it lists (someone may have pruned variants).
        if all(self.exists(v["path"]) for v in manifest.get("variants", ())):
            self.blobs.touch(key)  # in use again: `chronicle media gc` keeps content touched within its grace
            return manifest
        return None

    def latest_manifest(self, sha256: str) -> dict[str, Any] | None:
        """The newest manifest of this original under any configuration (what a backfill starts from)."""
        mine = [b for b in self._listing(f"manifests/{sha256[:2]}")
                if b.key.rsplit("/", 1)[-1].startswith(f"{sha256}-")]
        newest = max(mine, key=lambda b: b.mtime, default=None)
        if newest is None:
            return None
        try:
            manifest: dict[str, Any] = orjson.loads(self.blobs.read(newest.key))
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return manifest

    def write_manifest(self, sha256: str, fingerprint: str, manifest: dict[str, Any]) -> None:
        self.blobs.put(self.manifest_path(sha256, fingerprint), orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))

    def _listing(self, prefix: str) -> Iterator[Any]:
        return self.blobs.walk(prefix)


def media_store(settings: Settings) -> MediaStore:
    """The store every role uses: ``CHRONICLE_MEDIA_URL``, else the media root (``CHRONICLE_MEDIA_ROOT``,
    default ``$CHRONICLE_DATA_DIR/media``). Here, not in ``upload``: a job or ``status`` needs no Pillow."""
    return MediaStore(settings.section(MediaSettings).store_url(settings.media_dir))
