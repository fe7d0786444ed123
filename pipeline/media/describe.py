"""AI alt text, caption and tags through the ``openai`` client's vision (chat completions) API.

Configured by the standard ``OPENAI_API_KEY`` (and optional ``OPENAI_BASE_URL`` for any compatible
server); without a key nothing is dispatched and nothing fails. The client's own retries are off
(``max_retries=0``) so that one policy applies: tenacity, exponential backoff with jitter, and a 429's
``Retry-After`` honoured when the server sends one. Errors that retrying cannot fix (bad request,
authentication) stop at once.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import openai
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from pipeline.media.settings import MediaSettings
from pipeline.retry_after import retry_after_seconds

PROMPT = (
    "Describe this image for a website's media library. Reply with a JSON object with keys "
    '"alt_text" (one sentence, under 125 characters, for screen readers), "caption" (one or two '
    'sentences) and "tags" (up to 10 lowercase keywords).'
)
MAX_RETRY_AFTER = 120.0
_fallback_wait = wait_exponential_jitter(multiplier=0.5, max=30.0)


def configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


def is_transient(exc: BaseException) -> bool:
    """Network trouble, timeouts, 408/409/429 and 5xx are worth another try; other 4xx are not."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500)


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait, capped: an image description is not worth a long stall."""
    asked = retry_after_seconds(exc)
    return None if asked is None else min(asked, MAX_RETRY_AFTER)


def wait_for(state: RetryCallState) -> float:
    """Retry-After when the server sent it, else exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    asked = retry_after(exc)
    return asked if asked is not None else _fallback_wait(state)


def _clean(reply: dict[str, Any]) -> dict[str, Any]:
    def text(value: Any, limit: int) -> str:
        return str(value).strip()[:limit] if isinstance(value, str | int | float) else ""

    found = reply.get("tags")
    tags: list[Any] = found if isinstance(found, list) else []
    return {"alt_text": text(reply.get("alt_text"), 500), "caption": text(reply.get("caption"), 2000),
            "tags": [t for t in (text(tag, 60).lower() for tag in tags[:20]) if t]}


def parse_reply(content: str) -> dict[str, Any]:
    """The model's JSON answer → our fields; a non-JSON answer becomes the caption (and alt text)."""
    stripped = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        reply = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        reply = None
    if not isinstance(reply, dict):
        return {"alt_text": content.strip()[:125], "caption": content.strip()[:2000], "tags": []}
    return _clean(reply)


def describe(image: bytes, mime: str, settings: MediaSettings) -> dict[str, Any]:
    """Ask the vision model about ``image``; returns alt_text, caption, tags, model and attempts."""
    client = openai.OpenAI(max_retries=0, timeout=settings.describe_timeout)
    url = f"data:{mime};base64,{base64.b64encode(image).decode()}"
    messages: Any = [{"role": "user", "content": [
        {"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]
    attempts = 0
    try:
        for attempt in Retrying(stop=stop_after_attempt(settings.describe_attempts), wait=wait_for,
                                retry=retry_if_exception(is_transient), reraise=True):
            with attempt:
                attempts += 1
                response = client.chat.completions.create(
                    model=settings.describe_model, messages=messages, max_tokens=400,
                    response_format={"type": "json_object"})
    finally:
        client.close()
    content = response.choices[0].message.content or ""
    return {**parse_reply(content), "model": response.model or settings.describe_model, "attempts": attempts}
