"""The embeddings pipeline as the API sees it: search and reindex, when that pipeline is installed.

The HTTP layer does not know how search works. It looks for ``pipeline.embeddings`` (``search`` and
``request_reindex``) and answers 503 with a clear message when it is absent, rather than pretending
to have found nothing.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..api import Chronicle

SearchFn = Callable[..., Any]


def _module() -> ModuleType | None:
    try:
        return importlib.import_module("pipeline.embeddings")
    except ImportError:
        return None


def find_backend(chronicle: Chronicle) -> SearchFn | None:
    """``backend(query, limit=…, **filters)`` or None. Filters the backend does not accept are dropped."""
    module = _module()
    fn = getattr(module, "search", None) if module else None
    if not callable(fn):
        return None
    accepted = set(inspect.signature(fn).parameters)

    def backend(query: str, *, limit: int, **filters: Any) -> Any:
        chosen = {k: v for k, v in filters.items() if v is not None and k in accepted}
        return fn(chronicle, query, limit=limit, **chosen)

    return backend


def find_reindex() -> Callable[..., str] | None:
    module = _module()
    fn = getattr(module, "request_reindex", None) if module else None
    return fn if callable(fn) else None
