"""What ``chronicle drain`` shows while it works.

Why a watcher thread: drain runs long jobs that report nothing on their own. With the local model, one
embedding pass over a 300 000-event sample embeds ~140 000 texts for ~40 minutes on 2 cores, and the
read model only shows the result at the end. The jobs record their outcomes as events while they run,
so a thread that reads the log after the starting head (plus the projection checkpoints) can tell the
user what is happening without any hook into the jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .envelope import Recorded
from .projector import checkpoints
from .store import EventStore

OUTCOMES = {"EmbeddingsComputed": "embedded", "EmbeddingsFailed": "embedding failed",
            "ImageProcessed": "images processed", "ImageProcessingFailed": "images failed"}


@dataclass
class DrainCounters:
    """Outcomes recorded since drain started (pure bookkeeping, fed event by event)."""

    head: int = 0
    projected: int = 0
    started_at: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: Recorded) -> None:
        label = OUTCOMES.get(event.type)
        if label is None:
            return
        items = event.data.get("items")
        count = len(items) if isinstance(items, list) else 1
        cached = event.data.get("cached", 0) if event.type == "EmbeddingsComputed" else 0
        if cached:  # cache hits cost nothing: shown apart, so the rate is the embedder's real speed
            self.counts["cache hits"] = self.counts.get("cache hits", 0) + cached
        if count - cached:
            self.counts[label] = self.counts.get(label, 0) + count - cached

    def describe(self, now: float | None = None) -> str:
        """One status line, e.g. ``projected 300,000/300,015 · embedded 10,240 (85/s)``."""
        elapsed = max((now if now is not None else time.monotonic()) - self.started_at, 1e-9)
        parts = [f"projected {self.projected:,}/{self.head:,}"]
        for label, count in self.counts.items():
            rate = f" ({count / elapsed:,.0f}/s)" if label == "embedded" else ""
            parts.append(f"{label} {count:,}{rate}")
        return "draining… " + " · ".join(parts)


class DrainProgress:
    """Polls the log and the projection checkpoints every ``interval`` s and calls ``update(text)``."""

    def __init__(self, store: EventStore, projection_db: Path, update: Callable[[str], None], *,
                 interval: float = 0.5) -> None:
        self.store, self.projection_db, self.update, self.interval = store, projection_db, update, interval
        self.counters = DrainCounters()
        self._after = store.head()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drain-progress", daemon=True)

    def poll(self) -> str:
        for event in self.store.iter_all(after=self._after):
            self.counters.add(event)
            self._after = event.position
        self.counters.head = self.store.head()
        done = checkpoints(self.projection_db)
        self.counters.projected = min(done.values(), default=0)
        return self.counters.describe()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.update(self.poll())
            except Exception:  # a display must never break the drain it describes
                continue

    def __enter__(self) -> DrainProgress:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
