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

A point-in-time replay (``chronicle replay --until``) of a moment before a deletion shows rows whose
variant files have been collected since; that is the price of deleting content for real.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from db.engine import connect
from pipeline.media.errors import MediaRejected
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore

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


def _walk(root: Path, directories: Iterable[str]) -> Iterator[StoredFile]:
    for name in directories:
        base = root / name
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.name.startswith(".tmp-") or path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            yield StoredFile(path.relative_to(root).as_posix(), stat.st_mtime, stat.st_size)


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
        listed = orjson.loads((store.root / manifest.relative).read_bytes()).get("variants", ())
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return []
    found = []
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            continue
        try:
            path = store.resolve_inside(item["path"])
            stat = path.stat()
        except (MediaRejected, OSError):
            continue
        relative = path.relative_to(store.root).as_posix()
        if relative.startswith("variants/") and path.is_file():
            found.append(StoredFile(relative, stat.st_mtime, stat.st_size))
    return found


def collect(chronicle: JobContext, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
            dry_run: bool = False) -> GcReport:
    """Remove the files of every content hash no image uses (see the module docstring)."""
    store = MediaStore(chronicle.settings.section(MediaSettings).media_root(chronicle.settings.media_dir))
    root = store.root
    chronicle.project()  # a deletion (or an upload) just appended must count
    live, referenced = _in_use(chronicle)
    files = list(_walk(root, SHA_NAMED))
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
                   if sha not in now_live and not _sha_touched(root, sha, cutoff)
                   and not any(f.relative in now_referenced for f in owned)
                   and not any(_touched(root, f, cutoff) for f in owned if f.relative.startswith("variants/"))}
        for owned in garbage.values():
            for f in owned:
                try:
                    store.resolve_inside(f.relative).unlink()
                except FileNotFoundError:
                    continue  # a concurrent collector got there first
        _count(report, garbage)
    log.info("media gc: %d contents, %d files, %d bytes", report.contents, report.files, report.bytes)
    return report


def _sha_touched(root: Path, sha: str, cutoff: float) -> bool:
    """Any file of ``sha`` written since the survey, e.g. a new manifest of a media job that reused
    this content's older variants (which are then in use although their own mtimes are old)."""
    return any(path.stat().st_mtime >= cutoff for directory in SHA_NAMED
               for path in (root / directory / sha[:2]).glob(f"{sha}*") if path.is_file())


def _touched(root: Path, f: StoredFile, cutoff: float) -> bool:
    try:
        return (root / f.relative).stat().st_mtime >= cutoff
    except FileNotFoundError:
        return False


def _count(report: GcReport, garbage: dict[str, list[StoredFile]]) -> None:
    report.contents = len(garbage)
    for owned in garbage.values():
        report.files += len(owned)
        report.bytes += sum(f.size for f in owned)
        report.removed.extend(f.relative for f in owned)
