"""The OpenAI (or OpenAI-compatible) embedder: one request per batch, retried the way the API asks.

Retries (tenacity): 429, 5xx, timeouts and connection errors, with exponential backoff and full jitter;
a ``Retry-After``/``retry-after-ms`` header on a 429/503 is honoured (we wait at least that long). Any
other 4xx (400 bad input, 401 key, 404 model) is permanent and never retried: retrying it would only
pay for the same refusal again. The client's own retries are switched off so every attempt is counted.
"""

from __future__ import annotations

import os
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..metrics import metrics
from ..retry_after import retry_after_seconds
from .config import EmbeddingSettings
from .embedders import Embedded, PermanentEmbeddingError

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RETRYABLE):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


class OpenAIEmbedder:
    provider = "openai"

    def __init__(self, settings: EmbeddingSettings, *, model: str, dimension: int,
                 client: openai.OpenAI | None = None) -> None:
        self.settings, self.model, self.dimension = settings, model, dimension
        self.client = client or openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "no-key-needed-for-compatible-servers",
            base_url=os.environ.get("OPENAI_BASE_URL") or None,
            timeout=settings.embedding_timeout, max_retries=0)
        self._backoff = wait_random_exponential(multiplier=settings.embedding_backoff_initial,
                                                max=settings.embedding_backoff_max)

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        m = metrics()
        m.embedding_retries.labels(self.provider).inc()
        if isinstance(failure, openai.RateLimitError):
            m.embedding_rate_limited.labels(self.provider).inc()
        backoff = self._backoff(state)
        asked = retry_after_seconds(state.outcome.exception() if state.outcome else None)
        return backoff if asked is None else max(asked, min(backoff, asked * 0.1 + 0.05))

    def _request(self, texts: list[str]) -> Any:
        # encoding_format left to the client: it asks for base64 and decodes it (4× smaller than JSON floats).
        kwargs: dict[str, Any] = {"model": self.model, "input": texts}
        if not self.model.endswith("ada-002"):  # ada-002 rejects `dimensions`
            kwargs["dimensions"] = self.dimension
        return self.client.embeddings.create(**kwargs)

    def embed(self, texts: list[str]) -> Embedded:
        attempts = 0

        def call() -> Any:
            nonlocal attempts
            attempts += 1
            return self._request(texts)

        retrying = Retrying(stop=stop_after_attempt(self.settings.embedding_max_attempts), wait=self._wait,
                            retry=retry_if_exception(is_retryable), reraise=True)
        try:
            response = retrying(call)
        except openai.APIStatusError as exc:
            if isinstance(exc, openai.RateLimitError):  # the last attempt's 429 (earlier ones: ``_wait``)
                metrics().embedding_rate_limited.labels(self.provider).inc()
            raise PermanentEmbeddingError(f"HTTP {exc.status_code}: {_message(exc)}", requests=attempts,
                                          splittable=exc.status_code in (400, 413, 422)) from exc
        except RETRYABLE as exc:
            raise PermanentEmbeddingError(f"gave up after {attempts} attempts: {type(exc).__name__}",
                                          requests=attempts) from exc
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise PermanentEmbeddingError(f"asked for {len(texts)} vectors, got {len(data)}", requests=attempts)
        vectors = [list(d.embedding) for d in data]
        if any(len(v) != self.dimension for v in vectors):
            raise PermanentEmbeddingError(f"provider returned vectors of size {len(vectors[0])}, "
                                          f"expected {self.dimension}", requests=attempts)
        usage = getattr(response, "usage", None)
        return Embedded(vectors, tokens=int(getattr(usage, "total_tokens", 0) or 0), requests=attempts)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str((error or {}).get("message") or exc.message)[:500]
