"""The one place exceptions become HTTP status codes.

Every error body has the same shape, ``{"error": code, "detail": message, ...}``, plus ``index`` and
``field`` when the mistake is in a submitted event, so a CMS developer in any language can point at
the offending field without reading our code.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AccessDenied,
    ChronicleError,
    ConcurrencyConflict,
    CorruptEvent,
    InvalidEvent,
    NotFound,
    StoreUnavailable,
)

log = logging.getLogger("chronicle.http")


class ApiError(StarletteHTTPException):
    """An HTTP-level refusal raised by our own code (404, 413, 415, 503, ...), with a stable code."""

    def __init__(self, status_code: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.code = code
        self.extra = extra


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
                 422: "invalid", 429: "rate_limited", 503: "unavailable"}


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"error": code, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


def status_for(exc: Exception) -> int:
    """The HTTP status of a Chronicle error: the whole mapping, in one readable function."""
    if isinstance(exc, ConcurrencyConflict):
        return 409
    if isinstance(exc, InvalidEvent):  # includes UnknownEventType
        return 422
    if isinstance(exc, NotFound):  # UnknownFailure, ItemGone…
        return 404
    if isinstance(exc, AccessDenied):  # a valid key, but not for this scope or site
        return 403
    if isinstance(exc, StoreUnavailable):  # locked, disk full, PostgreSQL down: retry later
        return 503
    return 500  # CorruptEvent, ProjectionError, anything else: our side, not the client's


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ChronicleError)
    async def chronicle_error(_: Request, exc: ChronicleError) -> JSONResponse:
        status = status_for(exc)
        if isinstance(exc, ConcurrencyConflict):
            return problem(status, "version_conflict", str(exc), stream=exc.stream, expected=exc.expected,
                           actual=exc.actual, index=exc.index)
        if isinstance(exc, InvalidEvent):
            code = "unknown_event_type" if type(exc).__name__ == "UnknownEventType" else "invalid_event"
            return problem(status, code, str(exc), index=exc.index, field=exc.field, reason=exc.reason)
        if isinstance(exc, NotFound):
            return problem(status, "not_found", str(exc))
        if isinstance(exc, AccessDenied):
            return problem(status, "forbidden", str(exc), index=exc.index)
        if isinstance(exc, StoreUnavailable):
            log.warning("store unavailable: %s", exc)
            return problem(status, "unavailable", str(exc), headers={"Retry-After": "5"})
        if isinstance(exc, CorruptEvent):
            log.error("corrupt event: %s", exc)
            return problem(status, "corrupt_event", str(exc), position=exc.position)
        log.exception("unexpected Chronicle error", exc_info=exc)
        return problem(status, "internal", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _STATUS_CODES.get(exc.status_code, "error")
        extra = getattr(exc, "extra", {})
        return problem(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None), **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _field_path(first.get("loc", ()))
        detail = f"field '{field}': {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid"))
        return problem(422, "invalid", detail, field=field or None)
