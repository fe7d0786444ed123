"""Running a WXR import: read (``wxr_reader``), map (``wxr``, ``wxr_menus``), append in batches, report.

The only IO besides the log is storing attachment files found under ``media_dir`` (by the file name in
the attachment URL), using the media pipeline's content-addressed store, the same one
``chronicle upload`` writes to. Nothing is ever downloaded.

Batches are appended one ``emit_many`` each, so an import interrupted half-way leaves a prefix of the
export in the log; because every id is deterministic, running the import again appends exactly the
rest (and a complete re-run appends nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..envelope import validate_envelope
from ..errors import InvalidEvent
from .wxr import LocalFile, Mapped, WxrContext, map_item, map_site
from .wxr_menus import map_menus
from .wxr_model import WxrItem, WxrSite
from .wxr_reader import WxrError, read_wxr
from .wxr_report import ImportReport, skipped

if TYPE_CHECKING:
    from pipeline.context import JobContext


def local_attachment(item: WxrItem, media_dir: Path | None, chronicle: JobContext) -> LocalFile | None:
    """Find the attachment's file by name under ``media_dir`` and store it as an original (once per content)."""
    if media_dir is None or not item.attachment_url:
        return None
    filename = Path(unquote(urlsplit(item.attachment_url).path)).name
    candidate = media_dir / filename
    if not filename or not candidate.is_file():
        return None
    from pipeline.media.upload import declared_mime, media_store, store_original

    mime = declared_mime(candidate)
    if not mime.startswith("image/"):  # the mapper skips it; do not copy audio/video into the image store
        return LocalFile(original_path="", filename=filename, mime_type=mime, size=candidate.stat().st_size, sha256="")
    sha, key = store_original(candidate, media_store(chronicle.settings))
    return LocalFile(original_path=key, filename=filename, mime_type=mime, size=candidate.stat().st_size,
                     sha256=sha)


class _Batcher:
    """Buffers envelopes and appends them ``size`` at a time, keeping the report's log counters."""

    def __init__(self, chronicle: JobContext, report: ImportReport, size: int) -> None:
        self.chronicle, self.report, self.size = chronicle, report, size
        self.pending: list[dict[str, Any]] = []

    def add(self, result: Mapped) -> None:
        """Queue one record's envelopes; a record the log would reject (e.g. a post over the event size
        limit) is skipped and reported on its own instead of failing its whole batch."""
        try:
            for envelope in result.envelopes:
                validate_envelope(envelope, max_bytes=self.chronicle.settings.max_event_bytes)
        except InvalidEvent as exc:
            self.report.add(*(o if o.verdict == "skipped" else skipped(o.what, f"rejected by the log: {exc.reason}",
                                                                           o.count) for o in result.outcomes))
            return
        self.report.add(*result.outcomes)
        self.pending += result.envelopes
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        appended = self.chronicle.emit_many(self.pending)
        self.report.events += len(self.pending)
        self.report.appended += appended.appended
        self.report.duplicates += appended.duplicates
        self.pending = []


def import_wxr(chronicle: JobContext, path: str | Path, *, media_dir: Path | None = None,
               batch_size: int = 500) -> ImportReport:
    """Import one WXR file into ``chronicle``'s log; returns what was mapped, skipped and appended."""
    report = ImportReport()
    batcher = _Batcher(chronicle, report, batch_size)
    records = read_wxr(path)
    site = next(records)
    if not isinstance(site, WxrSite):  # read_wxr always yields the header first
        raise WxrError("export has no channel header")
    ctx = WxrContext.of(site)
    batcher.add(map_site(site, ctx))
    menu_items: list[WxrItem] = []
    pages: dict[str, str] = {}  # page post_id → parent post_id
    for item in records:
        assert isinstance(item, WxrItem)
        if item.post_type == "nav_menu_item":
            menu_items.append(item)
            continue
        if item.post_type in ("page", "post"):
            ctx.titles[item.post_id] = (item.post_type, item.title)
        if item.post_type == "page":
            pages[item.post_id] = item.parent
        local = local_attachment(item, media_dir, chronicle) if item.post_type == "attachment" else None
        batcher.add(map_item(item, ctx, local))
    batcher.add(map_menus(site.menus, menu_items, ctx))
    orphans = sum(1 for parent in pages.values() if parent not in ("", "0") and parent not in pages)
    report.add(skipped("page parent", "not a page in this export (parent_id kept as given)", orphans))
    batcher.flush()
    return report
