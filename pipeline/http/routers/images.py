"""Images: upload an original, look at one or the recent ones, and serve the media files."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from ...api import Chronicle
from ...envelope import NewEvent
from ...events.base import Id
from ...sites import SiteResolver
from .. import deps
from ..auth import READ, WRITE_LIMITED, Principal, require
from ..problems import ApiError
from ..readmodel import ReadModel, content_type_for
from ..schemas import ERRORS, ImageList, ImageOut, Problem, UploadOut
from ..uploads import media_store, store_upload

router = APIRouter(tags=["images"])
IMMUTABLE = "public, max-age=31536000, immutable"
PRIVATE = "private, max-age=31536000, immutable"  # behind a key: no shared cache may keep it
_ID: TypeAdapter[str] = TypeAdapter(Id)
MEDIA = require("read", public="media", cookie=True)
PUBLIC_DIRS = ("originals", "variants")  # not manifests/ or descriptions/: the worker's bookkeeping


def _checked_id(value: str | None, field: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return _ID.validate_python(value)
    except ValidationError:
        raise ApiError(422, "invalid", f"field '{field}': must be 1-200 characters", field=field) from None


@router.post("/images", status_code=202, response_model=UploadOut, responses={**ERRORS})
def upload_image(file: UploadFile = File(description="The original image."),
                 id: str | None = Form(default=None, description="Your image id (default: from the content hash)."),
                 site_id: str | None = Form(default=None, description="Required with a site-restricted key."),
                 chronicle: Chronicle = Depends(deps.chronicle), sites: SiteResolver = Depends(deps.sites),
                 caller: Principal = Depends(WRITE_LIMITED)) -> dict[str, Any]:
    """Store an original content-addressed and record `ImageUploaded`; processing happens in the workers.

    Answers 202: poll `GET /images/{id}` until `status` is `completed` or `failed`. Uploading the same
    bytes again is a no-op (`duplicate: true`).
    """
    image_id = _checked_id(id, "id")
    site = _checked_id(site_id, "site_id")
    def authorize(events: list[NewEvent]) -> None:
        if not caller.unrestricted:
            sites.authorize_append(events, caller.sites)

    filename = (file.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"
    try:
        stored = store_upload(chronicle, file.file, filename=filename, content_type=file.content_type,
                              image_id=image_id, site_id=site, actor=caller.actor, authorize=authorize)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), field="file") from None
    return {"id": stored.image_id, "sha256": stored.sha256, "original_path": stored.original_path,
            "mime_type": stored.mime_type, "size": stored.size, "position": stored.position,
            "duplicate": stored.duplicate, "url": f"/images/{stored.image_id}"}


@router.get("/images", response_model=ImageList)
def list_images(limit: int = Query(24, ge=1, le=200), status: str | None = Query(None, max_length=40),
                read_model: ReadModel = Depends(deps.read_model),
                caller: Principal = Depends(READ)) -> dict[str, Any]:
    """The most recent images, newest first (a site-restricted key: its sites' images only)."""
    only = None if caller.unrestricted else caller.sites
    return {"images": read_model.recent_images(limit=limit, status=status, sites=only),
            "total": read_model.image_count(status=status, sites=only)}


@router.get("/images/{image_id}", response_model=ImageOut, responses={404: {"model": Problem}})
def get_image(image_id: str = Path(min_length=1, max_length=200),
              read_model: ReadModel = Depends(deps.read_model),
              caller: Principal = Depends(READ)) -> dict[str, Any]:
    """Status (`pending`, `processing`, `completed`, `failed`), metadata and variants with their URLs."""
    image = read_model.image(image_id)
    if image is not None and not caller.sees(image["site_id"]):
        image = None  # another site's image does not exist for this key
    if image is None:
        raise ApiError(404, "not_found", f"no image '{image_id}' (an upload appears once it is projected)")
    return image


@router.get("/media/{path:path}", response_class=FileResponse, responses={404: {"model": Problem}},
            summary="Serve an original or variant file")
async def media_file(path: str, chronicle: Chronicle = Depends(deps.chronicle),
                     read_model: ReadModel = Depends(deps.read_model),
                     caller: Principal = Depends(MEDIA)) -> Response:
    """Files in the media store. Their names are content hashes, so they never change: cached for a year.
    A site-restricted key gets only the files of its sites' images.

    On object storage the API streams the object (default: browsers need no access to the bucket), or
    redirects to a presigned URL when ``CHRONICLE_MEDIA_PRESIGN_SECONDS`` > 0 (the bucket serves the bytes)."""
    store = media_store(chronicle.settings)
    cache = PRIVATE if caller.id is not None else IMMUTABLE
    restricted = not caller.unrestricted and not caller.public
    if store.local is None:
        if restricted:
            owners = await run_in_threadpool(read_model.sites_of_media, path)
            if not any(caller.sees(s) for s in owners):
                raise ApiError(404, "not_found", f"no media file '{path}'")
        return await run_in_threadpool(_from_object_store, store, path, chronicle, cache)
    target = await run_in_threadpool(_inside, store.root, path)
    if target is not None and restricted:
        owners = await run_in_threadpool(read_model.sites_of_media, target.relative_to(store.root).as_posix())
        if not any(caller.sees(s) for s in owners):
            target = None
    if target is None:
        raise ApiError(404, "not_found", f"no media file '{path}'")
    return FileResponse(target, media_type=content_type_for(target.name), headers={"Cache-Control": cache})


def _from_object_store(store: Any, relative: str, chronicle: Chronicle, cache: str) -> Response:
    from pipeline.media.blobs import ObjectBlobs
    from pipeline.media.errors import MediaRejected
    from pipeline.media.settings import MediaSettings

    parts = relative.split("/")
    missing = ApiError(404, "not_found", f"no media file '{relative}'")
    if not relative or "\x00" in relative or parts[0] not in PUBLIC_DIRS or any(p.startswith(".") for p in parts):
        raise missing
    blobs = store.blobs
    assert isinstance(blobs, ObjectBlobs)
    try:
        seconds = chronicle.settings.section(MediaSettings).presign_seconds
        if seconds:
            if blobs.info(relative) is None:
                raise missing
            return RedirectResponse(blobs.sign(relative, seconds), status_code=307)
        size, chunks = blobs.stream(relative)
    except (FileNotFoundError, MediaRejected):
        raise missing from None
    return StreamingResponse(chunks, media_type=content_type_for(parts[-1]),
                             headers={"Cache-Control": cache, "Content-Length": str(size)})


def _inside(root: FsPath, relative: str) -> FsPath | None:
    """``relative`` resolved inside ``root``'s public folders, or None (missing, a directory, hidden,
    bookkeeping such as manifests, or escaping the root)."""
    parts = relative.split("/")
    if not relative or "\x00" in relative or parts[0] not in PUBLIC_DIRS or any(p.startswith(".") for p in parts):
        return None
    try:
        target = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(root) or target.relative_to(root).parts[0] not in PUBLIC_DIRS:
        return None  # checked after resolving too: a symlink must not lead out of the public folders
    return target if target.is_file() else None
