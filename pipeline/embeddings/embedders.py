"""The embedder interface and its small implementations (local model, deterministic test embedder).

An embedder turns one batch of texts into vectors. Batching across requests, caching and recording
belong to ``engine``; an embedder only knows its provider. ``make_embedder`` picks one from settings.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Protocol

from pipeline.errors import PermanentError

from .config import LOCAL_DIMENSION, LOCAL_MODEL, EmbeddingSettings


@dataclass(slots=True)
class Embedded:
    """Vectors for one batch, in input order, with what producing them cost."""

    vectors: list[list[float]]
    tokens: int = 0
    requests: int = 0


class PermanentEmbeddingError(PermanentError):
    """The provider refused the batch (HTTP 400 and friends) or retries ran out: do not try again."""

    def __init__(self, message: str, *, requests: int = 1, splittable: bool = False) -> None:
        super().__init__(message)
        self.requests = requests
        self.splittable = splittable  # an input-level refusal (400): halving the batch may isolate it


class EmbeddingsOff(PermanentError):
    """``CHRONICLE_EMBEDDER=off``: nothing can be embedded (full-text search still works)."""


class Embedder(Protocol):
    provider: str
    model: str
    dimension: int

    def embed(self, texts: list[str]) -> Embedded: ...


_WORD = re.compile(r"\w+", re.UNICODE)


def hashed_bag_of_words(text: str, dimension: int) -> list[float]:
    """A deterministic, normalised bag-of-words vector: shared words → similar vectors.

    Used by the test embedder and the fake OpenAI server, so that vector search behaves sensibly in
    tests without a model.
    """
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimension
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class DeterministicEmbedder:
    """Deterministic embedder for unit tests only: no network, no model, any model name/dimension."""

    provider = "test"

    def __init__(self, model: str = "test-bow", dimension: int = 64) -> None:
        self.model, self.dimension = model, dimension
        self.calls = 0

    def embed(self, texts: list[str]) -> Embedded:
        self.calls += 1
        return Embedded([hashed_bag_of_words(t, self.dimension) for t in texts], tokens=0, requests=0)


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine, through ONNX Runtime or torch (``CHRONICLE_LOCAL_BACKEND``).

    The backend is picked on first use (``local_model.resolve_backend``: ONNX when installed, torch as
    the fallback) and the model loaded once per process. Both give the same vectors (cosine ≥ 0.999
    on every text of the WordPress export, ``tests/test_local_model.py``), so the vector cache key is
    the model alone: switching backend re-embeds nothing. ``backend`` says which one runs.
    """

    provider = "local"

    def __init__(self, model: str = LOCAL_MODEL, dimension: int = LOCAL_DIMENSION, *, backend: str = "auto") -> None:
        if model != LOCAL_MODEL or dimension != LOCAL_DIMENSION:
            raise ValueError(f"the local embedder only offers {LOCAL_MODEL} ({LOCAL_DIMENSION}-d)")
        self.model, self.dimension = model, dimension
        self._choice = backend
        self._backend: str | None = None

    @property
    def backend(self) -> str:
        """``onnx`` or ``torch`` (raises ``LocalModelUnavailable`` naming what to install)."""
        if self._backend is None:
            from .local_model import resolve_backend

            self._backend = resolve_backend(self._choice)
        return self._backend

    def embed(self, texts: list[str]) -> Embedded:
        if self.backend == "onnx":
            from . import onnx_embedder

            vectors = onnx_embedder.load().encode(texts)
        else:
            from . import torch_embedder

            vectors = torch_embedder.load().encode(texts)
        return Embedded([v.tolist() for v in vectors], tokens=0, requests=0)


def make_embedder(settings: EmbeddingSettings, *, model: str | None = None,
                  dimension: int | None = None) -> Embedder:
    """The configured provider for (model, dimension), defaults from settings."""
    model = model or settings.default_model
    dimension = dimension or settings.default_dimension
    provider = settings.provider
    if provider == "openai":
        from .openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(settings, model=model, dimension=dimension)
    if provider == "local":
        return LocalEmbedder(model, dimension, backend=settings.local_backend)
    if provider == "test":
        return DeterministicEmbedder(model, dimension)
    raise EmbeddingsOff("embeddings are off: set CHRONICLE_EMBEDDER=openai|local (or use --mode fts)")
