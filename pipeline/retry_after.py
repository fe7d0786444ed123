"""What an HTTP API asked us to wait before retrying: ``retry-after-ms`` or ``Retry-After``.

Shared by every OpenAI call (embeddings, image descriptions): honouring the server's own estimate on a
429 is both faster and cheaper than guessing with backoff alone.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def retry_after_seconds(exc: BaseException | None, *, now: float | None = None) -> float | None:
    """Seconds from the error's response headers (milliseconds, seconds or an HTTP date); ``None`` if
    the server did not say."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - (now or time.time()))
        except (TypeError, ValueError):
            return None
