"""What every benchmark reports: a measured figure next to its baseline from the same run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Result:
    name: str
    unit: str
    ours: float
    baseline: float
    target_ratio: float | None = None
    higher_is_better: bool = True
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.ours / self.baseline if self.baseline else float("inf")
        return self.baseline / self.ours if self.ours else float("inf")

    @property
    def ok(self) -> bool | None:
        return None if self.target_ratio is None else self.ratio >= self.target_ratio


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a block (settings read them), restoring what was there after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
