"""Pure batching: pack inputs into requests under the provider's limits (count and tokens)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from .text import estimate_tokens

T = TypeVar("T")


def batches(items: Sequence[T], texts: Sequence[str], *, max_inputs: int, max_tokens: int) -> Iterator[list[T]]:
    """Consecutive groups of ``items`` with ≤ ``max_inputs`` members and ≤ ``max_tokens`` estimated tokens.

    Texts are chunks, each below the per-input limit, which is below ``max_tokens``, so every item fits
    in some batch; the number of requests is ceil(N / max_inputs) unless the token budget binds first.
    """
    batch: list[T] = []
    tokens = 0
    for item, text in zip(items, texts, strict=True):
        cost = estimate_tokens(text)
        if batch and (len(batch) >= max_inputs or tokens + cost > max_tokens):
            yield batch
            batch, tokens = [], 0
        batch.append(item)
        tokens += cost
    if batch:
        yield batch
