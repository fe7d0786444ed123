"""The pipeline's state as Prometheus gauges, read at scrape time (``/metrics`` of ``chronicle serve``).

Everything here is derived from what is recorded (the log, the read model, the broker), so any process
can answer it and a restart loses nothing. A source that fails (the broker down) drops its series and
sets ``chronicle_scrape_error{source}`` instead of failing the scrape. Labels are projection, subscriber
and queue names, statuses and configured models: closed sets.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .status import oldest_message_ages, queue_depths

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from .api import Chronicle

log = logging.getLogger("chronicle.observe")


def _age(value: str | int | None) -> float:
    """Seconds since ``value``: the read model's Unix seconds, or the log's ISO-8601 text."""
    if not value:
        return 0.0
    if isinstance(value, int | float):
        return max(0.0, time.time() - value)
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - at).total_seconds())


class PipelineCollector(Collector):
    def __init__(self, chronicle: Chronicle) -> None:
        self.chronicle = chronicle

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("chronicle_scrape_error", "1 when a source of these metrics failed",
                                   labels=["source"])
        for source, fn in (("log", self._log), ("broker", self._queues), ("read_model", self._read_model)):
            try:
                yield from fn()
                errors.add_metric([source], 0)
            except Exception as exc:  # one source down must not hide the others
                log.warning("metrics source %s failed: %s", source, exc)
                errors.add_metric([source], 1)
        yield errors

    def _log(self) -> Iterator[Metric]:
        status = self.chronicle.status()
        yield GaugeMetricFamily("chronicle_log_head", "Highest position in the event log", value=status["head"])
        checkpoint = GaugeMetricFamily("chronicle_checkpoint", "Last position a consumer applied",
                                       labels=["consumer", "kind"])
        lag = GaugeMetricFamily("chronicle_lag_events", "Events a consumer has not applied yet",
                                labels=["consumer", "kind"])
        lag_s = GaugeMetricFamily("chronicle_lag_seconds", "Age of the oldest event a consumer has not applied",
                                  labels=["consumer", "kind"])
        for kind, group in (("projection", "projections"), ("subscriber", "subscribers")):
            for name, entry in status[group].items():
                checkpoint.add_metric([name, kind], entry["checkpoint"])
                lag.add_metric([name, kind], entry["lag"])
                lag_s.add_metric([name, kind], entry["lag_seconds"])
        yield from (checkpoint, lag, lag_s)

    def _queues(self) -> Iterator[Metric]:
        depths = queue_depths(self.chronicle)
        if depths.get("queues") is None:
            raise RuntimeError(depths.get("reason") or "queue depths unavailable")
        depth = GaugeMetricFamily("chronicle_queue_depth", "Messages waiting in a broker queue", labels=["queue"])
        for queue, n in depths["queues"].items():
            depth.add_metric([queue], n)
        yield depth
        ages = oldest_message_ages(self.chronicle) or {}
        age = GaugeMetricFamily("chronicle_queue_oldest_message_age_seconds",
                                "How long the oldest waiting message of a queue has waited (0: empty)",
                                labels=["queue"])
        for queue in depths["queues"]:
            age.add_metric([queue], ages.get(queue) or 0.0)
        yield age

    def _read_model(self) -> Iterator[Metric]:
        conn = sqlite3.connect(f"file:{self.chronicle.settings.projection_db_path}?mode=ro", uri=True, timeout=5)
        try:
            yield from self._failures(conn)
            images = GaugeMetricFamily("chronicle_images", "Images by processing status", labels=["status"])
            found = dict(conn.execute("SELECT status, count(*) FROM images GROUP BY status").fetchall())
            for status in ("pending", "processing", "completed", "failed"):
                images.add_metric([status], found.get(status, 0))
            yield images
            yield from self._embeddings(conn)
        finally:
            conn.close()

    def _failures(self, conn: sqlite3.Connection) -> Iterator[Metric]:
        open_ = GaugeMetricFamily("chronicle_dead_letters_open", "Dead letters not resolved (open or retrying)",
                                  labels=["kind"])
        oldest = GaugeMetricFamily("chronicle_dead_letters_oldest_age_seconds",
                                   "Age of the oldest unresolved dead letter (0: none)", labels=["kind"])
        rows = conn.execute("SELECT kind, count(*), min(failed_at) FROM failures WHERE status != 'resolved' "
                            "GROUP BY kind").fetchall()
        found = {kind: (n, first) for kind, n, first in rows}
        for kind in sorted({"job", "image", "embedding", *found}):
            n, first = found.get(kind, (0, None))
            open_.add_metric([kind], n)
            oldest.add_metric([kind], _age(first))
        yield from (open_, oldest)

    def _embeddings(self, conn: sqlite3.Connection) -> Iterator[Metric]:
        from .embeddings.config import EmbeddingSettings

        settings = self.chronicle.settings.section(EmbeddingSettings)
        families = {
            "requests": CounterMetricFamily("chronicle_embedding_recorded_requests", "Embedding requests recorded "
                                            "in the log (all workers, ever)", labels=["model"]),
            "tokens": CounterMetricFamily("chronicle_embedding_recorded_tokens", "Input tokens recorded in the log",
                                          labels=["model"]),
            "cached": CounterMetricFamily("chronicle_embedding_recorded_cache_hits", "Items served from the vector "
                                          "cache (API calls avoided)", labels=["model"]),
            "failed": CounterMetricFamily("chronicle_embedding_recorded_failures", "Items whose embedding failed",
                                          labels=["model"]),
        }
        cost = CounterMetricFamily("chronicle_embedding_recorded_cost_usd", "Estimated cost of the recorded tokens "
                                   "(CHRONICLE_EMBEDDING_PRICES)", labels=["model"])
        for model, requests, tokens, cached, failed in conn.execute(
                "SELECT model, sum(requests), sum(tokens), sum(cached), sum(failed) FROM embedding_usage "
                "GROUP BY model"):
            for key, value in (("requests", requests), ("tokens", tokens), ("cached", cached), ("failed", failed)):
                families[key].add_metric([model], value or 0)
            cost.add_metric([model], (tokens or 0) * settings.price_per_million(model) / 1_000_000)
        yield from families.values()
        yield cost
