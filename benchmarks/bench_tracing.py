"""What traces cost when they are on: emits and projection, traced vs untraced, in the same run.

One process, a SQLite log, no broker. Traced phases use the real SDK with a ``BatchSpanProcessor`` whose
exporter drops the spans (what is measured is Chronicle's spans, the context stamping and the SDK's
per-span work, not a collector). Phases alternate (untraced, traced, untraced, traced…) so drift of the
machine hits both.

* ``emit``: single durable ``Chronicle.emit`` calls (one ``chronicle.append`` span each, the context
  stamped in the metadata). Target ≥ 0.8 × untraced.
* ``project``: ``Chronicle.drain`` over a batch of events that each carry a trace context of their own
  (the worst case: one ``chronicle.project`` span per event; the events of one traced append share one
  span). Baseline: the same events, with the same metadata, projected with traces off. A span costs tens
  of microseconds, the SDK's own work (attributes, context, processor), against a few for projecting an
  event, so the worst case runs at a fraction of the untraced rate: target ≥ 0.2 ×, which still leaves
  the projector several times faster than traced single emits arrive (the ``emit`` figure).

Traces off costs one cached boolean per append, per projector batch and per reactor batch: not measured
here (nothing to see); ``tests/test_cli_imports.py`` checks that nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import Result


class _Dropped:
    """A span exporter that drops everything (the SDK's processing is measured, not an exporter)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _events(prefix: str, n: int, *, own_traces: bool = False) -> list[dict[str, Any]]:
    """``n`` page events; with ``own_traces`` each carries a trace context of its own, as if each had been
    appended by a separate traced request (the worst case for the projector: one span per event)."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        event: dict[str, Any] = {"type": "PageCreated",
                                 "data": {"id": f"{prefix}{i}", "site_id": "s", "title": "T", "slug": f"{prefix}-{i}"}}
        if own_traces:
            event["metadata"] = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}
        events.append(event)
    return events


def run(quick: bool = False) -> list[Result]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from pipeline import Chronicle, Settings, tracing
    from pipeline.notify import NullNotifier

    emits, batch, rounds = (100, 300, 1) if quick else (1500, 5000, 4)
    workdir = Path(tempfile.mkdtemp(prefix="chronicle-bench-tracing-"))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))  # type: ignore[arg-type]
    saved = os.environ.get("CHRONICLE_EMBEDDER")
    os.environ["CHRONICLE_EMBEDDER"] = "off"  # projection and reactions, not a model, are measured
    chronicle = Chronicle(Settings(data_dir=workdir / "data"), notifier=NullNotifier())
    rates: dict[tuple[str, bool], list[float]] = {}
    try:
        for r in range(rounds):
            for traced in (False, True):
                if traced:
                    tracing.use_provider(provider)
                else:
                    tracing.reset()
                with tracing.span("bench.caller"):  # the caller's span (a CMS request) the emits continue
                    started = time.perf_counter()
                    for event in _events(f"e{r}{traced}-", emits):
                        chronicle.emit_many([event])
                    rates.setdefault(("emit", traced), []).append(emits / (time.perf_counter() - started))
                    chronicle.drain()  # the emits' own projection is not part of the next measurement
                    chronicle.emit_many(_events(f"p{r}{traced}-", batch, own_traces=True))
                started = time.perf_counter()
                chronicle.drain()
                rates.setdefault(("project", traced), []).append(batch / (time.perf_counter() - started))
    finally:
        tracing.reset()
        provider.shutdown()
        chronicle.close()
        if saved is None:
            os.environ.pop("CHRONICLE_EMBEDDER", None)
        else:
            os.environ["CHRONICLE_EMBEDDER"] = saved
        shutil.rmtree(workdir, ignore_errors=True)
    return [
        Result("tracing: emit, traced vs untraced", "events/s", statistics.median(rates["emit", True]),
               statistics.median(rates["emit", False]), target_ratio=0.8),
        Result("tracing: project + react, traced vs untraced", "events/s", statistics.median(rates["project", True]),
               statistics.median(rates["project", False]), target_ratio=0.2),
    ]
