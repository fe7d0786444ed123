"""Prometheus metrics: every series Chronicle exports, defined once, with bounded labels.

Two kinds of numbers, exported two ways:

* **Counts of things that happened in a process** (task runs and their durations, embedding requests,
  429s and retries, media encode seconds and bytes written, events appended) are counters and
  histograms defined here and incremented where the work happens. Labels are names from closed sets:
  task and queue names, outcomes, providers, configured models, image formats. Never ids or hosts.
* **The state of the pipeline** (log head, checkpoints and lag, queue depth and age, open dead letters,
  images by status, embedding totals and cost) is read from the log, the read model and the broker at
  scrape time by ``pipeline.observe.PipelineCollector``: any process can answer it, and it survives
  restarts because it is derived from what is recorded.

Workers run Celery's prefork pool: the jobs run in child processes a parent forks and replaces. The
worker's ``--metrics-port`` uses ``prometheus_client``'s multiprocess mode: each child writes its
values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the parent's HTTP server sums them at
scrape time (``render``). Counters of a replaced child stay in the totals, as counters must.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values
from prometheus_client.registry import Collector

OUTCOMES = ("succeeded", "retried", "failed", "dead_lettered")
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
ENCODE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def use_multiprocess_dir(path: str) -> None:
    """Switch this process (and the children it forks) to multiprocess mode *before* any metric below
    is created. ``prometheus_client`` picks its value class when it is imported; the worker command
    decides after imports, so it sets the directory and picks the class again here."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    _values.ValueClass = _values.get_value_class()
    _reset()


class _Metrics:
    def __init__(self) -> None:
        self.events_appended = Counter("chronicle_events_appended_total", "Events appended to the log by this process")
        self.task_runs = Counter("chronicle_task_runs_total", "Job and task runs by outcome",
                                 ["task", "outcome"])
        self.task_seconds = Histogram("chronicle_task_duration_seconds", "Job and task run time", ["task"],
                                      buckets=TASK_BUCKETS)
        self.embedding_requests = Counter("chronicle_embedding_requests_total",
                                          "Embedding API/model requests (every attempt)", ["provider", "model"])
        self.embedding_tokens = Counter("chronicle_embedding_input_tokens_total",
                                        "Input tokens billed for embeddings", ["provider", "model"])
        self.embedding_cache_hits = Counter("chronicle_embedding_cache_hits_total",
                                            "Texts whose vector came from the cache (an API call avoided)",
                                            ["provider", "model"])
        self.embedding_rate_limited = Counter("chronicle_embedding_rate_limited_total",
                                              "HTTP 429 answers from the embedding provider", ["provider"])
        self.embedding_retries = Counter("chronicle_embedding_retries_total",
                                         "Embedding requests retried after a transient error", ["provider"])
        self.embedding_errors = Counter("chronicle_embedding_errors_total",
                                        "Embedding batches that failed for good", ["provider", "model"])
        self.embedding_cost = Counter("chronicle_embedding_cost_usd_total",
                                      "Estimated embedding cost (CHRONICLE_EMBEDDING_PRICES, USD per 1M tokens)",
                                      ["provider", "model"])
        self.media_images = Counter("chronicle_media_images_total", "Images processed by this worker, by outcome",
                                    ["outcome"])
        self.media_encode_seconds = Histogram("chronicle_media_encode_seconds", "Time to encode one variant",
                                              ["format"], buckets=ENCODE_BUCKETS)
        self.media_bytes_written = Counter("chronicle_media_bytes_written_total", "Bytes of variants written",
                                           ["format"])


_current: _Metrics | None = None


def _reset() -> None:
    global _current
    if _current is not None:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            if isinstance(collector, Counter | Histogram):
                REGISTRY.unregister(collector)
    _current = None


def metrics() -> _Metrics:
    """The process's metrics, created on first use (after ``use_multiprocess_dir`` in a worker)."""
    global _current
    if _current is None:
        _current = _Metrics()
    return _current


@contextmanager
def task_run(task: str) -> Iterator[dict[str, str]]:
    """Time one run of ``task`` and count its outcome: ``succeeded`` unless the body sets
    ``outcome["outcome"]`` (``retried``, ``dead_lettered``) or raises (``failed``)."""
    m = metrics()
    outcome = {"outcome": "succeeded"}
    started = time.perf_counter()
    try:
        yield outcome
    except BaseException:
        if outcome["outcome"] == "succeeded":
            outcome["outcome"] = "failed"
        raise
    finally:
        m.task_seconds.labels(task).observe(time.perf_counter() - started)
        m.task_runs.labels(task, outcome["outcome"]).inc()


def render(*collectors: Collector) -> bytes:
    """The Prometheus text exposition of this process (or, in multiprocess mode, of every process that
    wrote to ``PROMETHEUS_MULTIPROC_DIR``), plus ``collectors`` (e.g. the pipeline-state collector)."""
    metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
