"""Process-level plumbing shared by the embedding jobs: settings, embedders, connections.

(Bringing the read model up to an event is ``working_copy``'s: on a worker host it is a private copy.)"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from db.engine import connect

from .cache import VectorCache
from .chunking import Chunker, counter_for
from .config import EmbeddingSettings
from .embedders import Embedder, make_embedder

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.settings import Settings

def embedding_settings() -> EmbeddingSettings:
    """The settings as the environment says now. Building them costs ~350 µs (pydantic-settings reads
    and validates the environment) and the reactor asks for every content event, so they are built
    once per distinct ``CHRONICLE_*`` environment; tests and operators changing it still take effect."""
    return _settings_for(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CHRONICLE_"))))


@lru_cache(maxsize=8)
def _settings_for(_environment: tuple[tuple[str, str], ...]) -> EmbeddingSettings:
    return EmbeddingSettings()


@cache
def _embedder(provider: str, model: str, dimension: int, settings_json: str, endpoint: str) -> Embedder:
    return make_embedder(EmbeddingSettings.model_validate_json(settings_json), model=model, dimension=dimension)


def embedder_for(settings: EmbeddingSettings, model: str, dimension: int) -> Embedder:
    """One embedder per (provider, model, dimension, settings, endpoint) per process: HTTP connections
    are reused and the local model loads once."""
    endpoint = f"{os.environ.get('OPENAI_BASE_URL', '')}|{os.environ.get('OPENAI_API_KEY', '')}"
    return _embedder(settings.provider, model, dimension, settings.model_dump_json(), endpoint)


def chunker_for(settings: EmbeddingSettings, model: str) -> Chunker:
    """How documents are cut for ``model``: its tokenizer, the chunk size and overlap settings."""
    return _chunker(model, settings.embedding_chunk_tokens, settings.embedding_chunk_overlap,
                    settings.embedding_max_chunks, settings.embedding_input_tokens)


@cache
def _chunker(model: str, size: int | None, overlap: int | None, max_chunks: int, input_tokens: int) -> Chunker:
    counter = counter_for(model, input_tokens)
    size = min(size or min(counter.window, 512), counter.window, input_tokens)
    return Chunker(counter, size, size // 8 if overlap is None else overlap, max_chunks)


@contextmanager
def read_model(chronicle: JobContext) -> Iterator[sqlite3.Connection]:
    conn = connect(chronicle.settings.projection_db_path)
    try:
        yield conn
    finally:
        conn.close()


def shared_on_postgres(settings: Settings) -> bool:
    """The vector cache (and what every host shares with it: reindex progress) lives in the log's
    PostgreSQL database rather than in this host's data directory."""
    on_pg = settings.resolved_event_store_url.startswith("postgresql")
    return settings.vector_cache == "postgres" or (settings.vector_cache == "auto" and on_pg)


@contextmanager
def vector_cache(chronicle: JobContext) -> Iterator[VectorCache]:
    """The local SQLite cache, or the shared one in the log's PostgreSQL database (``CHRONICLE_VECTOR_CACHE``)."""
    settings = chronicle.settings
    store: VectorCache
    if shared_on_postgres(settings):
        from .cache_pg import PostgresVectorCache

        store = PostgresVectorCache(settings.resolved_event_store_url)
    else:
        store = VectorCache(settings.resolved_data_dir)
    try:
        yield store
    finally:
        store.close()
