"""Request body size limits, enforced while the body is read (never after buffering it all).

A declared ``Content-Length`` above the limit is refused before a byte is read; a chunked or lying
client is cut off as soon as the running count passes the limit. Either way the answer is 413.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import ApiError, problem


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", f"request body is larger than the {limit}-byte limit",
                         limit=limit)


class BodyLimitMiddleware:
    """ASGI middleware: ``limit_for(method, path)`` gives each request its byte budget."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared == -1:
            await problem(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
            return
        if declared is not None and declared > limit:
            await problem(413, "payload_too_large", f"request body is larger than the {limit}-byte limit",
                          limit=limit, headers={"Connection": "close"})(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await problem(413, exc.code, str(exc.detail), limit=limit,
                          headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, ``None`` when absent, ``-1`` when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None
