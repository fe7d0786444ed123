"""Operations: status, failures and retries, reindexing, search, liveness and readiness."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...api import Chronicle
from ...errors import ChronicleError, InvalidEvent
from ...sites import SiteResolver
from ...status import full_status
from .. import deps, failures
from ..auth import ADMIN, READ, READ_ALL, WRITE_LIMITED, Principal, limited, require
from ..config import HttpSettings
from ..health import readiness
from ..problems import ApiError
from ..readmodel import ReadModel
from ..schemas import ERRORS, FailureList, Problem, ReindexIn, ReindexOut, RetryOut

router = APIRouter()
SEARCH = limited(require("read", public="search"), "search")


def status_report(chronicle: Chronicle, read_model: ReadModel, *, exact: bool = False) -> dict[str, Any]:
    """``chronicle status --json`` (lag, queues, images, failures, embeddings) plus rows per table.
    Quick by default (the page polls it every few seconds); ``exact`` as ``chronicle status --exact``."""
    info = full_status(chronicle, exact=exact)
    info["counts"] = read_model.counts()
    info["images"] = {s: 0 for s in ("pending", "processing", "completed", "failed")} | (info.get("images") or {})
    return info


@router.get("/status", tags=["operations"])
def get_status(chronicle: Chronicle = Depends(deps.chronicle),
               read_model: ReadModel = Depends(deps.read_model),
               exact: bool = Query(False, description="Compare every document with the embedding ledger "
                                   "(O(items)) instead of counting rows, as `chronicle status --exact`."),
               _: Principal = Depends(READ_ALL)
               ) -> dict[str, Any]:
    """Log head, each consumer's checkpoint and lag, queue depths, images by status, failures by status,
    embeddings, and rows per read-model table."""
    return status_report(chronicle, read_model, exact=exact)


@router.get("/failures", response_model=FailureList, tags=["operations"])
def get_failures(status: Literal["open", "retrying", "resolved"] | None = Query(None),
                 limit: int = Query(100, ge=1, le=1000),
                 settings: HttpSettings = Depends(deps.settings), sites: SiteResolver = Depends(deps.sites),
                 caller: Principal = Depends(READ)) -> dict[str, Any]:
    """Jobs and images that failed, with their error, attempts and retry state, newest first.
    A site-restricted key sees its sites' image and embedding failures only."""
    return {"failures": failures.failures_json(settings, status=status, limit=limit,
                                               visible=failures.visible_to(caller, sites))}


@router.post("/failures/{failure_id:path}/retry", status_code=202, response_model=RetryOut, tags=["operations"],
             responses={**ERRORS, 404: {"model": Problem}, 409: {"model": Problem}})
def retry_failure(failure_id: str = Path(min_length=1, max_length=1000),
                  chronicle: Chronicle = Depends(deps.chronicle), sites: SiteResolver = Depends(deps.sites),
                  caller: Principal = Depends(WRITE_LIMITED)) -> dict[str, Any]:
    """Run the failed job again: records `FailureRetryRequested`; the workers pick it up, and the outcome
    arrives as events (`FailureResolved`, `ImageProcessed` or `EmbeddingsComputed` close the row; a new
    failure re-opens it). 409 when it is resolved already, or when its content was deleted since (the
    row is then resolved). 404 for another site's failure."""
    return failures.retry(chronicle, failure_id, actor=caller.actor, visible=failures.visible_to(caller, sites))


@router.post("/reindex", status_code=202, response_model=ReindexOut, tags=["operations"],
             responses={**ERRORS, 503: {"model": Problem}})
def reindex(request: ReindexIn | None = Body(default=None),
            chronicle: Chronicle = Depends(deps.chronicle), caller: Principal = Depends(ADMIN)) -> dict[str, Any]:
    """Record a `ReindexRequested` event; the embeddings workers re-embed what it covers."""
    from pipeline.embeddings.api import request_reindex

    body = request or ReindexIn()
    reindex_id = request_reindex(chronicle, kinds=body.kinds, item_id=body.item_id, force=body.force,
                                 actor=caller.actor)
    return {"id": reindex_id, "kinds": body.kinds}


@router.get("/search", tags=["search"], responses={503: {"model": Problem}})
def search(q: str = Query(min_length=1, max_length=1000, description="What to look for."),
           limit: int = Query(10, ge=1, le=100),
           kind: list[str] | None = Query(None, max_length=20, description="pages, posts, sections, images"),
           site: str | None = Query(None, max_length=200),
           status: str | None = Query(None, max_length=40, description="e.g. published"),
           chronicle: Chronicle = Depends(deps.chronicle), caller: Principal = Depends(SEARCH)) -> Any:
    """Hybrid (vector + full-text) search over the CMS content. A site-restricted key searches its
    sites only; without a key (`CHRONICLE_PUBLIC` with "search") only published content."""
    from pipeline.embeddings.api import search as run_search

    if caller.public:
        status = "published"
    if caller.restricted and not caller.sites:
        return {"query": q, "results": []}  # a team without sites yet: nothing to find
    try:
        hits = run_search(chronicle, q, limit=limit, kinds=kind, site=site, status=status,
                          sites=None if caller.unrestricted else caller.sites)
    except InvalidEvent:
        raise
    except ChronicleError as exc:  # e.g. embeddings switched off: a state of the server, not a bug
        raise ApiError(503, "unavailable", f"search is unavailable: {exc}") from None
    return {"query": q, "results": jsonable_encoder(hits)}


@router.get("/metrics", tags=["operations"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def prometheus_metrics(chronicle: Chronicle = Depends(deps.chronicle), _: Principal = Depends(READ_ALL)) -> Response:
    """Prometheus metrics: log head, lag per consumer (events and seconds), queue depth and oldest message
    age, dead letters, images, embedding usage and cost, and this process's counters."""
    from ...metrics import CONTENT_TYPE, render
    from ...observe import PipelineCollector

    return Response(render(PipelineCollector(chronicle)), media_type=CONTENT_TYPE)


@router.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else on purpose (a DB outage must not restart us)."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "A dependency is unreachable"}})
async def readyz(chronicle: Chronicle = Depends(deps.chronicle),
                 read_model: ReadModel = Depends(deps.read_model)) -> JSONResponse:
    """Readiness: the log, the projection database and the broker all answer."""
    ok, checks = await run_in_threadpool(readiness, chronicle, read_model)
    return JSONResponse({"status": "ready" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)
