"""Read-only queries on the projection database for the API and the page.

Readers open their own engine (WAL lets them read while the projector writes) and never write: the
projector alone decides what the read model says.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from db.engine import engine_for, projection_tables
from db.models import Image, ImageVariant, Site

from ..envelope import Recorded

MEDIA_PREFIX = "/media/"
_EXTRA_TYPES = {".avif": "image/avif", ".webp": "image/webp", ".jxl": "image/jxl", ".heic": "image/heic"}


def content_type_for(path: str) -> str:
    """Content type from the file name; Python's table lacks some modern image formats."""
    suffix = Path(path).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def iso(value: datetime | int | str | None) -> str | None:
    """A read-model timestamp (Unix seconds, or a datetime from the ORM) or a log time as ISO-8601."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    return value.isoformat() if isinstance(value, datetime) else str(value)


def event_json(event: Recorded) -> dict[str, Any]:
    """A recorded event as JSON (``recorded_at`` may be a string or a datetime depending on the store)."""
    return {
        "position": event.position, "id": event.id, "stream": event.stream, "version": event.version,
        "type": event.type, "schema_version": event.schema_version, "data": event.data,
        "metadata": event.metadata, "recorded_at": iso(event.recorded_at),
    }


def media_url(path: str, media_dir: Path) -> str:
    """URL of a file under the media root; paths are stored relative to it (absolute ones tolerated)."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(media_dir)
        except ValueError:
            return MEDIA_PREFIX + candidate.name
    return MEDIA_PREFIX + candidate.as_posix().lstrip("/")


@dataclass
class ReadModel:
    """Queries over ``data/sqlite.db``; one instance per server, thread-safe through the engine pool."""

    engine: Engine
    media_dir: Path

    @classmethod
    def open(cls, projection_db: Path, media_dir: Path) -> ReadModel:
        return cls(engine_for(projection_db), media_dir.resolve())

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM projection_checkpoints")).scalar_one()

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in projection_tables()}

    def image(self, image_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            row = session.get(Image, image_id)
            if row is None:
                return None
            variants = session.exec(select(ImageVariant).where(ImageVariant.image_id == image_id)
                                    .order_by(col(ImageVariant.format), col(ImageVariant.width))).all()
            return self._image_json(row, list(variants))

    def recent_images(self, limit: int = 24, status: str | None = None,
                      sites: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Newest first; ``sites``: only images of these sites (None: every image)."""
        with Session(self.engine) as session:
            query = select(Image)
            if status:
                query = query.where(Image.status == status)
            if sites is not None:
                query = query.where(col(Image.site_id).in_(sites))
            rows = session.exec(query.order_by(col(Image.created_at).desc(), col(Image.id)).limit(limit)).all()
            ids = [r.id for r in rows]
            variants: dict[str, list[ImageVariant]] = {i: [] for i in ids}
            if ids:
                found = session.exec(select(ImageVariant).where(col(ImageVariant.image_id).in_(ids))
                                     .order_by(col(ImageVariant.format), col(ImageVariant.width))).all()
                for v in found:
                    variants[v.image_id].append(v)
            return [self._image_json(r, variants[r.id]) for r in rows]

    def image_count(self, status: str | None = None, sites: tuple[str, ...] | None = None) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).select_from(Image)
            if status:
                query = query.where(Image.status == status)
            if sites is not None:
                query = query.where(col(Image.site_id).in_(sites))
            return int(session.exec(query).one())

    def sites_of_teams(self, teams: tuple[str, ...]) -> set[str]:
        """The sites the read model knows in ``teams`` (a team-restricted key's sites)."""
        with Session(self.engine) as session:
            return set(session.exec(select(Site.id).where(col(Site.team_id).in_(teams))).all())

    def sites_of_media(self, relative: str) -> set[str | None]:
        """Sites of the images a media file (path relative to the media root) is the original or a
        variant of: content-addressed, one file may serve images of several sites."""
        with Session(self.engine) as session:
            originals = session.exec(select(Image.site_id).where(
                col(Image.original_path).in_([relative, str(self.media_dir / relative)]))).all()
            variants = session.exec(select(Image.site_id).join(ImageVariant, col(ImageVariant.image_id) == Image.id)
                                    .where(col(ImageVariant.path).in_([relative, str(self.media_dir / relative)]))
                                    ).all()
        return set(originals) | set(variants)

    def _image_json(self, row: Image, variants: list[ImageVariant]) -> dict[str, Any]:
        meta = row.meta or {}
        return {
            "id": row.id, "site_id": row.site_id, "filename": row.filename, "status": row.status,
            "mime_type": row.mime_type, "size": row.size, "width": row.width, "height": row.height,
            "hash": row.hash, "error": getattr(row, "error", None), "metadata": meta,
            "placeholder": placeholder_of(meta),
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
            "original_url": media_url(row.original_path, self.media_dir),
            "variants": [{
                "id": v.id, "width": v.width, "height": v.height, "format": v.format, "size": v.size,
                "url": media_url(v.path, self.media_dir), "content_type": content_type_for(v.path),
            } for v in variants],
        }


def placeholder_of(meta: dict[str, Any]) -> dict[str, str] | None:
    """The image's low-quality placeholder (BlurHash/ThumbHash, dominant colour), wherever it was recorded:
    the media projection keeps the worker's findings under ``metadata.media``."""
    media = meta.get("media")
    sources = [meta, media] if isinstance(media, dict) else [meta]
    found: dict[str, str] = {}
    for source in sources:
        for kind in ("blurhash", "thumbhash"):
            value = source.get(kind)
            if isinstance(value, str) and value and "kind" not in found:
                found.update(kind=kind, value=value)
        color = source.get("dominant_color")
        if isinstance(color, str) and color.startswith("#") and "color" not in found:
            found["color"] = color
    return found or None
