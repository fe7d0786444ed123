"""Embedding settings (env prefix ``CHRONICLE_``), kept out of the core ``Settings`` on purpose: only the
embedding modules read them, and they change with providers, not with the pipeline."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_DEFAULT_DIMENSION = 1536
LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSION = 384
LOCAL_CLAIM_BATCH = 128

# Hard limits of the OpenAI embeddings endpoint (per request / per input).
API_MAX_INPUTS = 2048
API_MAX_REQUEST_TOKENS = 300_000
API_MAX_INPUT_TOKENS = 8192


class EmbeddingSettings(BaseSettings):
    """Which embedder, which model, and how hard to push the provider."""

    model_config = SettingsConfigDict(env_prefix="CHRONICLE_", extra="ignore")

    embedder: Literal["openai", "local", "test", "off"] | None = Field(
        default=None, description="Provider; default `openai` when OPENAI_API_KEY is set, else `local`; "
                                  "`off` disables embedding (content events are then left for later).")
    local_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto", description="How the local model runs: `onnx` (ONNX Runtime, the `local` extra, no torch), "
                                    "`torch` (sentence-transformers, the `torch` extra); `auto` prefers onnx.")
    embedding_model: str | None = Field(default=None, description="Model name; default per provider.")
    embedding_dimension: int | None = Field(default=None, ge=1, le=65_536, description="Vector size.")
    embedding_batch_size: int = Field(default=API_MAX_INPUTS, ge=1, le=API_MAX_INPUTS,
                                      description="Inputs per request (API limit 2048).")
    embedding_batch_tokens: int = Field(default=API_MAX_REQUEST_TOKENS, ge=1, le=API_MAX_REQUEST_TOKENS,
                                        description="Estimated tokens per request (API limit 300k).")
    embedding_input_tokens: int = Field(default=API_MAX_INPUT_TOKENS, ge=16, le=API_MAX_INPUT_TOKENS,
                                        description="Longer texts are truncated to this many (estimated) tokens.")
    embedding_chunk_tokens: int | None = Field(
        default=None, ge=24, le=API_MAX_INPUT_TOKENS,
        description="Tokens per chunk (the model's own tokens, special tokens included); default: the "
                    "model's window up to 512 (256 for all-MiniLM-L6-v2, 512 for OpenAI models).")
    embedding_chunk_overlap: int | None = Field(
        default=None, ge=0, description="Tokens of the previous chunk repeated at the start of the next; "
                                        "default: an eighth of the chunk size (32 / 64).")
    embedding_max_chunks: int = Field(default=32, ge=1, le=1000,
                                      description="Chunks per item; text after them is not embedded.")
    embedding_timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP request.")
    embedding_max_attempts: int = Field(default=8, ge=1, description="Attempts per request (429/5xx/timeouts).")
    embedding_backoff_initial: float = Field(default=0.5, ge=0, description="First backoff, seconds.")
    embedding_backoff_max: float = Field(default=60.0, ge=0, description="Longest single backoff, seconds.")
    embedding_claim_seconds: float = Field(default=600.0, gt=0,
                                           description="Lease on an item being embedded by one worker.")
    embedding_prices: str = Field(
        default="text-embedding-3-small=0.02,text-embedding-3-large=0.13,text-embedding-ada-002=0.10",
        description="USD per 1M input tokens per model (`model=price,…`), for the cost metric.")

    def price_per_million(self, model: str) -> float:
        """The configured price of ``model`` (0 when unlisted: a local model costs nothing)."""
        for entry in self.embedding_prices.split(","):
            name, _, price = entry.strip().partition("=")
            if name.strip() == model and price:
                return float(price)
        return 0.0

    @property
    def provider(self) -> str:
        """The explicit choice, else `openai` with a key, else `local` (the offline default)."""
        if self.embedder:
            return self.embedder
        return "openai" if os.environ.get("OPENAI_API_KEY") else "local"

    @property
    def claim_batch(self) -> int:
        """Texts claimed (and embedded) at a time. The local model on a CPU takes seconds per 2 048 texts,
        so it works in smaller batches unless told otherwise: a catch-up slice then ends on time."""
        if "embedding_batch_size" in self.model_fields_set or self.provider != "local":
            return self.embedding_batch_size
        return min(self.embedding_batch_size, LOCAL_CLAIM_BATCH)

    @property
    def enabled(self) -> bool:
        return self.provider != "off"

    @property
    def default_model(self) -> str:
        if self.embedding_model:
            return self.embedding_model
        return LOCAL_MODEL if self.provider == "local" else OPENAI_DEFAULT_MODEL

    @property
    def default_dimension(self) -> int:
        if self.embedding_dimension:
            return self.embedding_dimension
        return LOCAL_DIMENSION if self.provider == "local" else OPENAI_DEFAULT_DIMENSION
