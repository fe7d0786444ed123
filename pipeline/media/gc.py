"""Media garbage collection: remove the files of content that no image uses any more.

Why a collector rather than a delete in the ``ImageDeleted`` handler: files are content-addressed and
shared (two uploads of the same bytes are one original, one manifest and one set of variants), and
handlers are pure functions of the log that must not touch the disk. The read model knows which
content is still in use; ``chronicle media gc`` removes what it does not name. Files are a projection
of the log like the rows, so this breaks no invariant: re-uploading deleted content (under a new
image id) processes it again.

A content hash (sha256) that no ``images`` row names, whatever its status, loses
- its original (``originals/ab/<sha><ext>``),
- its manifests (``manifests/ab/<sha>-<config>.json``) and every variant they list,
- its cached AI descriptions (``descriptions/ab/<sha>-<model>.json``).

Kept on purpose:
- anything modified within the grace period (default one hour): an upload stores its original before
  its ``ImageUploaded`` is appended and projected, a re-upload of existing bytes touches the file, and
  a media job reusing a manifest touches it. The deletion phase holds the media root's lock
  exclusively (``MediaStore.lock``) and re-checks all of this, so an upload or a media job never finds
  a file between its check and its use gone;
- files a CMS put under the media root itself (only the three directories above, and the variants
  their manifests list, are looked at);
- rejection markers (``variants/ab/<key>.rejected``): empty files, named by a hash, that hold nothing.

On object storage (``CHRONICLE_MEDIA_URL=s3://…``) there is no cross-host lock: the grace period
carries the safety alone (uploads and reusing jobs refresh Last-Modified; the deletion phase re-checks
it), so keep ``--grace`` well above the longest upload-to-processing delay.

A point-in-time replay (``chronicle replay --until``) of a moment before a deletion shows rows whose
variant files have been collected since; that is the price of deleting content for real.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from db.engine import connect
from pipeline.media.errors import MediaRejected
from pipeline.media.storage import MediaStore, media_store

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.media.gc")

DEFAULT_GRACE_SECONDS = 3600.0
SHA_NAMED = ("originals", "manifests", "descriptions")
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file under the media root: its path relative to the root, modification time and size."""

    relative: str
    mtime: float
    size: int

    @property
    def sha(self) -> str | None:
        """The content hash a sha-named file belongs to (its name starts with it), else None."""
        match = _SHA.match(self.relative.rsplit("/", 1)[-1])
        return match.group(0) if match else None


@dataclass
class GcReport:
    contents: int = 0  # distinct content hashes collected
    files: int = 0
    bytes: int = 0
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, object]:
        return {"contents": self.contents, "files": self.files, "bytes": self.bytes, "dry_run": self.dry_run}


def plan(files: Iterable[StoredFile], *, live: set[str], referenced: set[str], cutoff: float,
         manifest_variants: dict[str, list[StoredFile]]) -> dict[str, list[StoredFile]]:
    """Pure: the garbage content hashes, each with the files that go with it (variants first, manifests
    last, so a crash midway leaves a manifest whose files are missing — which ``read_manifest`` already
    treats as "not done").

    ``files`` are the sha-named files; ``manifest_variants`` maps a manifest's relative path to the
    variant files it lists. A content hash is garbage when no live image names it and none of its files
    is younger than ``cutoff`` (one fresh file means an upload is in flight: keep them all).
    """
    by_sha: dict[str, list[StoredFile]] = {}
    for f in files:
        sha = f.sha
        if sha is not None and sha not in live:
            by_sha.setdefault(sha, []).append(f)
    garbage: dict[str, list[StoredFile]] = {}
    for sha in sorted(by_sha):
        owned = by_sha[sha]
        if any(f.mtime >= cutoff or f.relative in referenced for f in owned):
            continue
        variants = [v for f in owned for v in manifest_variants.get(f.relative, ()) if v.relative not in referenced]
        garbage[sha] = variants + sorted(owned, key=lambda f: f.relative.startswith("manifests/"))
    return garbage


def _walk(store: MediaStore, directories: Iterable[str]) -> Iterator[StoredFile]:
    for name in directories:
        for blob in store.blobs.walk(name):
            yield StoredFile(blob.key, blob.mtime, blob.size)


def _in_use(chronicle: JobContext) -> tuple[set[str], set[str]]:
    """(content hashes any image row names, relative paths any image or variant row names)."""
    conn = connect(chronicle.settings.projection_db_path)
    try:
        live = {r[0] for r in conn.execute("SELECT hash FROM images WHERE hash IS NOT NULL")}
        referenced = {r[0] for r in conn.execute("SELECT original_path FROM images")}
        referenced |= {r[0] for r in conn.execute("SELECT path FROM image_variants")}
    finally:
        conn.close()
    return live, referenced


def _listed_variants(store: MediaStore, manifest: StoredFile) -> list[StoredFile]:
    """The variant files a manifest lists that exist under ``variants/`` (a listed path that escapes it
    — a damaged or hand-edited manifest — is ignored, never followed)."""
    try:
        listed = orjson.loads(store.blobs.read(manifest.relative)).get("variants", ())
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return []
    found = []
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            continue
        try:
            relative = store.check(item["path"])
            blob = store.blobs.info(relative)
        except (MediaRejected, OSError):
            continue
        if relative.startswith("variants/") and blob is not None:
            found.append(StoredFile(relative, blob.mtime, blob.size))
    return found


def collect(chronicle: JobContext, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
            dry_run: bool = False) -> GcReport:
    """Remove the files of every content hash no image uses (see the module docstring)."""
    store = media_store(chronicle.settings)
    chronicle.project()  # a deletion (or an upload) just appended must count
    live, referenced = _in_use(chronicle)
    files = list(_walk(store, SHA_NAMED))
    manifests = {f.relative: _listed_variants(store, f) for f in files
                 if f.relative.startswith("manifests/") and f.sha not in live}
    cutoff = time.time() - grace_seconds
    garbage = plan(files, live=live, referenced=referenced, cutoff=cutoff, manifest_variants=manifests)
    report = GcReport(dry_run=dry_run)
    if dry_run or not garbage:
        _count(report, garbage)
        return report
    with store.lock(exclusive=True):  # uploads and media jobs wait while we re-check and delete
        # What changed while we looked: content uploaded again (a new row), or touched (a job reused
        # its manifest, an upload its original) — such content is in use, keep all of it.
        chronicle.project()
        now_live, now_referenced = _in_use(chronicle)
        garbage = {sha: owned for sha, owned in garbage.items()
                   if sha not in now_live and not _sha_touched(store, sha, cutoff)
                   and not any(f.relative in now_referenced for f in owned)
                   and not any(_touched(store, f, cutoff) for f in owned if f.relative.startswith("variants/"))}
        for owned in garbage.values():
            for f in owned:
                store.blobs.delete(store.check(f.relative))  # gone already: a concurrent collector
        _count(report, garbage)
    log.info("media gc: %d contents, %d files, %d bytes", report.contents, report.files, report.bytes)
    return report


def _sha_touched(store: MediaStore, sha: str, cutoff: float) -> bool:
    """Any file of ``sha`` written since the survey, e.g. a new manifest of a media job that reused
    this content's older variants (which are then in use although their own mtimes are old)."""
    return any(blob.mtime >= cutoff for directory in SHA_NAMED
               for blob in store.blobs.walk(f"{directory}/{sha[:2]}")
               if blob.key.rsplit("/", 1)[-1].startswith(sha))


def _touched(store: MediaStore, f: StoredFile, cutoff: float) -> bool:
    blob = store.blobs.info(f.relative)
    return blob is not None and blob.mtime >= cutoff


def _count(report: GcReport, garbage: dict[str, list[StoredFile]]) -> None:
    report.contents = len(garbage)
    for owned in garbage.values():
        report.files += len(owned)
        report.bytes += sum(f.size for f in owned)
        report.removed.extend(f.relative for f in owned)
