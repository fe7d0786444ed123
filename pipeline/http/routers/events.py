"""``POST /events`` (envelopes or CloudEvents, one or a batch) and reading the log back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from ...api import Chronicle
from ...envelope import NewEvent
from ...errors import InvalidEvent
from ...sites import SiteResolver
from .. import deps
from ..auth import READ, WRITE_LIMITED, Principal
from ..cloudevents import (
    BINARY_MODE_HEADERS,
    CE_BATCH_CONTENT_TYPE,
    CE_CONTENT_TYPE,
    from_binary,
    is_binary,
    is_json_content_type,
    rename_binary_field,
    rename_field,
    to_envelope,
    to_envelopes,
)
from ..problems import ApiError
from ..readmodel import event_json
from ..schemas import ERRORS, EVENTS_REQUEST_BODY, AppendResponse, EventPage, Problem, StreamOut

router = APIRouter(tags=["events"])
SCAN_PAGES = 10  # a site-restricted read scans at most this many pages of the log per request
MAX_POSITION = 2**62  # keeps fuzzed query values inside SQLite's 64-bit integers


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


Renamer = Callable[[InvalidEvent], InvalidEvent]


def _same(exc: InvalidEvent) -> InvalidEvent:
    return exc


def envelopes_from(media_type: str, body: bytes, headers: list[tuple[str, str]] | None = None,
                   ) -> tuple[list[Any], Renamer]:
    """(envelopes, how to name a field in an error) for a request body of ``media_type``.

    The content type picks structured or batch mode; otherwise ``ce-`` headers mean binary mode."""
    headers = headers or []
    if media_type == CE_CONTENT_TYPE:
        return [to_envelope(_decode(body))], rename_field
    if media_type == CE_BATCH_CONTENT_TYPE:
        return to_envelopes(_decode(body)), rename_field
    if is_binary(name for name, _ in headers):
        return [_binary_envelope(media_type, body, headers)], rename_binary_field
    if media_type in ("application/json", ""):
        value = _decode(body)
        if isinstance(value, list):
            return value, _same
        if isinstance(value, dict):
            return [value], _same
        raise InvalidEvent("the body must be an event object or an array of them")
    raise ApiError(415, "unsupported_media_type",
                   f"send application/json, {CE_CONTENT_TYPE} or {CE_BATCH_CONTENT_TYPE}, not '{media_type}'")


def _binary_envelope(media_type: str, body: bytes, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """CloudEvents binary content mode: attributes in ``ce-`` headers, the JSON data as the body."""
    if media_type and not is_json_content_type(media_type):
        raise ApiError(415, "unsupported_media_type",
                       f"CloudEvents binary mode: the body (the event's data) must be JSON (application/json "
                       f"or …+json), not '{media_type}'")
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    try:
        ce = from_binary(headers, content_type, _decode(body) if body.strip() else None)
        return to_envelope(ce)
    except InvalidEvent as exc:
        raise rename_binary_field(exc) from None


def _with_actor(envelopes: list[Any], actor: str | None) -> list[Any]:
    """The actor comes from the key, whatever the body says (a body that is no object is left to
    validation, which refuses it)."""
    if actor is None:
        return envelopes
    out = []
    for env in envelopes:
        if isinstance(env, dict):
            meta = env.get("metadata")
            if meta is None or isinstance(meta, dict):
                env = {**env, "metadata": {**(meta or {}), "actor": actor}}
        out.append(env)
    return out


def _append(chronicle: Chronicle, envelopes: list[Any], rename: Renamer, caller: Principal,
            sites: SiteResolver) -> AppendResponse:
    def authorize(events: list[NewEvent]) -> None:
        if not caller.unrestricted:
            sites.authorize_append(events, caller.sites)

    try:
        result = chronicle.emit_many(_with_actor(envelopes, caller.actor), authorize=authorize)
    except InvalidEvent as exc:
        raise rename(exc) from None
    except (ValueError, RecursionError) as exc:
        # Valid JSON the payload models cannot serialise (e.g. nested hundreds of levels deep) is still
        # the client's input, not our failure: a clear 422 instead of a 500. Nothing was written.
        raise InvalidEvent(f"the payload cannot be stored: {exc}", field="data") from None
    return AppendResponse(appended=result.appended, duplicates=result.duplicates,
                          last_position=result.last_position, positions=result.positions)


@router.post("/events", response_model=AppendResponse,
             openapi_extra={**EVENTS_REQUEST_BODY, "parameters": BINARY_MODE_HEADERS},
             responses={**ERRORS, 409: {"model": Problem, "description": "Version conflict"},
                        415: {"model": Problem, "description": "Unsupported content type"}})
async def post_events(request: Request, chronicle: Chronicle = Depends(deps.chronicle),
                      caller: Principal = Depends(WRITE_LIMITED)) -> AppendResponse:
    """Append one event or a batch, atomically: all of it or nothing.

    Re-sending an id that is already in the log is a no-op (reported as a duplicate, with the earlier
    position), so retries are safe. `expected_version` (CloudEvents: extension `expectedversion`)
    makes the append conditional on the stream's current version (409 otherwise).

    CloudEvents come in any HTTP content mode: structured (`application/cloudevents+json`), batch
    (`application/cloudevents-batch+json`) or binary: the attributes as `ce-specversion`, `ce-id`,
    `ce-type`, `ce-source`, `ce-subject`, `ce-time`, extensions such as `ce-expectedversion`, and the
    event's data as a JSON body (`application/json` or `…+json`). A missing required header is a 422
    naming it (`field: "ce-id"`).
    """
    body = await request.body()
    try:
        envelopes, rename = envelopes_from(_media_type(request), body, request.headers.items())
    except InvalidEvent as exc:
        raise rename_field(exc) from None
    return await run_in_threadpool(_append, chronicle, envelopes, rename, caller, deps.sites(request))


@router.get("/events", response_model=EventPage)
def read_events(after: int = Query(0, ge=0, le=MAX_POSITION, description="Read events after this position."),
                limit: int = Query(100, ge=1, le=1000),
                chronicle: Chronicle = Depends(deps.chronicle), sites: SiteResolver = Depends(deps.sites),
                caller: Principal = Depends(READ)) -> dict[str, Any]:
    """The log in position order, a page at a time (for other consumers of the events).

    A site-restricted key gets its sites' events only; `next_after` is the last position scanned, so
    paging with it skips other sites' events without ever returning them."""
    if caller.unrestricted:
        events = chronicle.store.read(after=after, limit=limit)
        return {"events": [event_json(e) for e in events], "head": chronicle.store.head(),
                "next_after": events[-1].position if events else after}
    found: list[Any] = []
    scanned, cursor = 0, after
    while len(found) < limit and scanned < SCAN_PAGES * limit:
        page = chronicle.store.read(after=cursor, limit=limit)
        for e in page:
            cursor = e.position
            scanned += 1
            if caller.sees(sites.site_of(e)):
                found.append(e)
                if len(found) == limit:
                    break
        if len(page) < limit:
            break
    return {"events": [event_json(e) for e in found], "head": chronicle.store.head(), "next_after": cursor}


@router.get("/streams/{stream:path}", response_model=StreamOut, responses={404: {"model": Problem}})
def read_stream(stream: str = Path(min_length=1, max_length=300),
                after_version: int = Query(0, ge=0, le=MAX_POSITION),
                limit: int = Query(1000, ge=1, le=10_000),
                chronicle: Chronicle = Depends(deps.chronicle), sites: SiteResolver = Depends(deps.sites),
                caller: Principal = Depends(READ)) -> dict[str, Any]:
    """One stream's events in version order (e.g. `page-42`); 404 for a stream of another site."""
    events = chronicle.store.read_stream(stream)
    if events and not caller.unrestricted:
        events = [e for e in events if caller.sees(sites.site_of(e))]
    if not events:
        raise ApiError(404, "not_found", f"stream '{stream}' has no events")
    selected = [e for e in events if e.version > after_version][:limit]
    return {"stream": stream, "version": events[-1].version, "events": [event_json(e) for e in selected]}
