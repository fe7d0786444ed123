"""Content-addressed media storage.

Originals live at ``originals/ab/<sha256><ext>``, variants at ``variants/ab/<key>.<ext>`` where the
key hashes the original's sha256 with every parameter that changes the output. So a file's name says
what it is: if it exists, the work was done (by this image, a duplicate upload, or an earlier config)
and is never redone. Writes go to a temporary name and are renamed, so a crash never leaves a
half-written file under a final name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from pipeline.media.errors import MediaRejected

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MediaStore:
    """Paths under one media root; every path handed out or accepted stays inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def original_path(self, sha256: str, ext: str) -> Path:
        return self.root / "originals" / sha256[:2] / f"{sha256}{ext.lower()}"

    def variant_path(self, key: str, ext: str) -> Path:
        return self.root / "variants" / key[:2] / f"{key}.{ext}"

    def rejected_marker(self, key: str) -> Path:
        """Records "encoded, and was not smaller than the fallback", so the encode is not repeated."""
        return self.root / "variants" / key[:2] / f"{key}.rejected"

    def manifest_path(self, sha256: str, fingerprint: str) -> Path:
        return self.root / "manifests" / sha256[:2] / f"{sha256}-{fingerprint}.json"

    def description_path(self, sha256: str, model: str) -> Path:
        safe = hashlib.sha256(model.encode()).hexdigest()[:12]
        return self.root / "descriptions" / sha256[:2] / f"{sha256}-{safe}.json"

    @contextmanager
    def lock(self, *, exclusive: bool = False) -> Iterator[None]:
        """The media root's collector lock (an ``flock`` on ``<root>/.gc.lock``).

        Writers and readers of content-addressed files (an upload storing an original, a media job
        reusing or writing variants) hold it shared; ``chronicle media gc`` holds it exclusively while it
        re-checks and deletes. So a collector never deletes a file between another process's check that
        it exists and its use of it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".gc.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def resolve_inside(self, relative: str) -> Path:
        """``relative`` (as sent by a CMS) → an absolute path, refusing anything outside the root.

        Rejects absolute paths, ``..`` escapes and symlinks pointing out: the path is resolved first
        and then compared, so ``a/../../etc/passwd`` and a link to ``/etc`` both fail.
        """
        if not relative or "\x00" in relative:
            raise MediaRejected("original_path is empty or contains a NUL byte")
        candidate = Path(relative)
        if candidate.is_absolute():
            raise MediaRejected(f"original_path {relative!r} must be relative to the media root")
        resolved = (self.root / candidate).resolve()
        if not resolved.is_relative_to(self.root):
            raise MediaRejected(f"original_path {relative!r} leaves the media root")
        return resolved

    def read_manifest(self, sha256: str, fingerprint: str) -> dict[str, Any] | None:
        path = self.manifest_path(sha256, fingerprint)
        try:
            manifest = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        # A manifest is only as good as the files it lists (someone may have pruned variants).
        if all((self.root / v["path"]).is_file() for v in manifest.get("variants", ())):
            os.utime(path)  # in use again: `chronicle media gc` keeps content touched within its grace period
            return manifest
        return None

    def latest_manifest(self, sha256: str) -> dict[str, Any] | None:
        """The newest manifest of this original under any configuration (what a backfill starts from)."""
        path = _latest(list((self.root / "manifests" / sha256[:2]).glob(f"{sha256}-*.json")))
        if path is None:
            return None
        try:
            return orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def write_manifest(self, sha256: str, fingerprint: str, manifest: dict[str, Any]) -> None:
        atomic_write(self.manifest_path(sha256, fingerprint), orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))


def _latest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime, default=None)
