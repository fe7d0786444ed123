"""OpenTelemetry traces: off unless the standard ``OTEL_*`` variables switch them on.

One trace follows an event from the emit that appended it to everything the pipeline did with it:
``POST /events`` → ``chronicle.append`` → (worker) ``chronicle.project`` / ``chronicle.react`` → the job's
Celery run → its outcome event's ``chronicle.append`` → ``chronicle.vectors.write``.

**How the context travels.** Projectors, the reactor and the subscribers read events from the log, not from
a message: the Celery wake-up that made them run is coalesced (one for a burst of appends) and may come from
the sweeper instead. So the W3C trace context of the append is stamped on each event, in its metadata
(``traceparent``, ``tracestate``: the names of the CloudEvents distributed-tracing extension), and whoever
reads the event continues that trace (``trace_groups``, ``events_span``). Between a reaction and its job the
hop *is* a Celery message: ``opentelemetry-instrumentation-celery`` carries the context in the message
headers (``workers.tracing``). Metadata always holds W3C trace context, whatever ``OTEL_PROPAGATORS`` says
for HTTP: the log outlives any propagator setting. Baggage is never written to the log (it may carry user
data).

**Off means free.** Nothing of OpenTelemetry is imported until ``enabled()`` is true; it reads the
environment once. Callers on hot paths test ``enabled()`` and skip the tracing branch entirely. The events
of one append share one context, so a projector batch makes one span per append (``trace_groups``).

**Switching on.** ``OTEL_TRACES_EXPORTER`` set to anything but ``none`` (``otlp``, ``console``, or an
exporter's entry-point name), or an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) with no exporter named. ``OTEL_SDK_DISABLED=true`` wins. The rest
(sampler, batch processor delays, headers, resource attributes, ``OTEL_SERVICE_NAME``) is read by the
SDK itself. A process whose host application installed its own tracer provider keeps it.

Span names are a fixed set (``SPAN_NAMES`` plus Celery's ``run/<task>`` and ``apply_async/<task>``);
attributes are event types, positions, streams, task names, models and counts: never payloads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import groupby
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from .envelope import Envelope, Recorded

log = logging.getLogger("chronicle.tracing")

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
TRACE_KEYS = (TRACEPARENT, TRACESTATE)
INSTRUMENTATION = "chronicle"
SPAN_NAMES = ("POST /events", "chronicle.append", "chronicle.project", "chronicle.react", "chronicle.job",
              "chronicle.embed", "chronicle.vectors.write", "chronicle.media.render")
DEFAULT_SERVICE = "chronicle"

_enabled: bool | None = None
_setup_lock = threading.Lock()
_provider: Any = None  # the tracer provider Chronicle traces into (None: off, or not set up yet)
_tracer: Any = None


# -- switching on -----------------------------------------------------------------------------------------


def configured_by(env: Mapping[str, str]) -> bool:
    """Pure: do these environment variables ask for traces?"""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if exporters:
        return any(name.strip().lower() not in ("", "none") for name in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def enabled() -> bool:
    """Traces are on in this process (read from the environment once; ``reset`` reads it again)."""
    global _enabled
    if _enabled is None:
        wanted = configured_by(os.environ)
        if wanted:
            try:
                import opentelemetry.sdk.trace  # noqa: F401
            except ImportError:
                log.warning("OTEL_* variables ask for traces but the OpenTelemetry SDK is not installed "
                            "(pip install 'chronicle-pipeline[otel]'); traces stay off")
                wanted = False
        _enabled = wanted
    return _enabled


def reset() -> None:
    """Forget the environment reading and the provider (tests change ``OTEL_*`` variables)."""
    global _enabled, _provider, _tracer
    _enabled, _provider, _tracer = None, None, None


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """Pure: the entry-point names (group ``opentelemetry_traces_exporter``) of the exporters to build.
    ``otlp`` means OTLP over HTTP/protobuf unless the protocol says ``grpc``."""
    names = [n.strip().lower() for n in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")]
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    otlp = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
    return [otlp if n == "otlp" else n for n in names if n not in ("", "none")]


def setup(service: str = DEFAULT_SERVICE) -> bool:
    """Install an SDK tracer provider exporting to what ``OTEL_*`` says, once per process, if traces are
    on. ``service`` is ``service.name`` unless the environment names one. A provider the host application
    installed globally is used instead. A forked child (a Celery pool process) calls this after the fork:
    span processors own a thread. Returns whether traces are on."""
    global _provider
    if not enabled():
        return False
    if _provider is not None:
        return True
    with _setup_lock:
        if _provider is not None:
            return True
        from opentelemetry import trace

        installed = trace.get_tracer_provider()
        if not isinstance(installed, trace.ProxyTracerProvider):
            _provider = installed
            return True
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"process.pid": os.getpid()})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service}))
        provider = TracerProvider(resource=resource)
        for exporter in _exporters(exporter_names(os.environ)):
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider = provider
        return True


def use_provider(provider: Any) -> None:
    """Trace into ``provider`` from now on, whatever the environment says (tests: an in-memory exporter;
    ``reset`` undoes it)."""
    global _enabled, _provider, _tracer
    _enabled, _provider, _tracer = True, provider, None


def provider() -> Any:
    """The tracer provider Chronicle traces into, or None when traces are off."""
    return _provider if setup() else None


def _exporters(names: Iterable[str]) -> Iterator[Any]:
    from importlib.metadata import entry_points

    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("no trace exporter named %r is installed (OTEL_TRACES_EXPORTER); skipped", name)
            continue
        yield next(iter(found)).load()()


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered now (a pool process about to exit, a CLI command ending)."""
    force_flush = getattr(_provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis)


def tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        found = provider()
        _tracer = found.get_tracer(INSTRUMENTATION) if found is not None else trace.get_tracer(INSTRUMENTATION)
    return _tracer


# -- the context in event metadata (pure) -------------------------------------------------------------------


def carrier_of(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace-context entries of an event's metadata (strings only; anything else is ignored)."""
    if not isinstance(metadata, Mapping):
        return {}
    return {k: v for k in TRACE_KEYS if isinstance(v := metadata.get(k), str) and v}


def stamp(envelope: Envelope | dict[str, Any] | Any, carrier: Mapping[str, str]) -> Any:
    """``envelope`` with ``carrier`` in its metadata, unless the sender put a trace context there already
    (a CloudEvent with the distributed-tracing extension continues the sender's trace). A copy; the
    input is not changed. A malformed envelope is returned as it is, for validation to reject."""
    from .envelope import Envelope, EventMetadata

    if not carrier:
        return envelope
    if isinstance(envelope, Envelope):
        current = envelope.metadata.model_dump(exclude_none=True)
        if carrier_of(current):
            return envelope
        return envelope.model_copy(update={"metadata": EventMetadata.model_validate({**current, **carrier})})
    if not isinstance(envelope, dict):
        return envelope
    metadata = envelope.get("metadata", {})
    if not isinstance(metadata, dict) or carrier_of(metadata):
        return envelope
    return {**envelope, "metadata": {**metadata, **carrier}}


def stamp_all(envelopes: Iterable[Any], carrier: Mapping[str, str] | None) -> Iterable[Any]:
    """``stamp`` over a batch, keeping a list a list (validated whole) and a stream a stream."""
    if not carrier:
        return envelopes
    if isinstance(envelopes, list | tuple):
        return [stamp(e, carrier) for e in envelopes]
    return (stamp(e, carrier) for e in envelopes)


def context_of(metadata: Mapping[str, Any] | None) -> Context | None:
    """The remote parent an event's metadata names, or None (no, or no valid, ``traceparent``)."""
    carrier = carrier_of(metadata)
    if TRACEPARENT not in carrier:
        return None
    return _parsed(carrier[TRACEPARENT], carrier.get(TRACESTATE))


@lru_cache(maxsize=1024)
def _parsed(traceparent: str, tracestate: str | None) -> Context | None:
    """Parsed once: the events of one append share their context (contexts are immutable)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {TRACEPARENT: traceparent, **({TRACESTATE: tracestate} if tracestate else {})}
    context = TraceContextTextMapPropagator().extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trace_groups(events: Sequence[Recorded]) -> Iterator[tuple[Context | None, list[Recorded]]]:
    """Pure: runs of consecutive events that carry the same trace context (typically: one append), each with
    that context (None: no trace). A projector batch then makes one span per append, not one per event."""
    def key(event: Recorded) -> tuple[str | None, str | None]:
        carrier = carrier_of(event.metadata)
        return carrier.get(TRACEPARENT), carrier.get(TRACESTATE)

    for (traceparent, tracestate), group in groupby(events, key=key):
        yield (_parsed(traceparent, tracestate) if traceparent else None), list(group)


def current_carrier() -> dict[str, str]:
    """The W3C trace context of the current span, to stamp on events ({} when off or no span)."""
    if not enabled():
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier_of(carrier)


# -- spans --------------------------------------------------------------------------------------------------


def events_attributes(events: Sequence[Recorded]) -> dict[str, Any]:
    """Pure: what a span over ``events`` says about them: their first position and count, and their type
    and stream when they share one (never their data)."""
    first = events[0]
    found: dict[str, Any] = {"chronicle.event.position": first.position, "chronicle.events.count": len(events)}
    if len(events) > 1:
        found["chronicle.position.last"] = events[-1].position
    if all(e.type == first.type for e in events):
        found["chronicle.event.type"] = first.type
    if all(e.stream == first.stream for e in events):
        found["chronicle.event.stream"] = first.stream
    return found


def batch_attributes(envelopes: Iterable[Any]) -> dict[str, Any]:
    """Pure: the append span's attributes known before appending: the batch size and, when the batch is
    of one type, that type (a stream being validated as it goes is not looked into)."""
    if not isinstance(envelopes, list | tuple):
        return {}
    types = {e.get("type") if isinstance(e, dict) else getattr(e, "type", None) for e in envelopes}
    found = {"chronicle.events.count": len(envelopes)}
    from .events import CATALOGUE

    if len(types) == 1 and (one := next(iter(types))) in CATALOGUE:  # a known type: a closed set
        return {**found, "chronicle.event.type": one}
    return found


@contextmanager
def span(name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None,
         parent: Context | None = None) -> Iterator[Span | None]:
    """A span (child of ``parent``, else of the current span); yields None when traces are off."""
    if not enabled():
        yield None
        return
    from opentelemetry.trace import SpanKind

    with tracer().start_as_current_span(name, context=parent, kind=SpanKind[kind.upper()],
                                        attributes=dict(attributes or {})) as current:
        yield current


@contextmanager
def events_span(name: str, events: Sequence[Recorded], parent: Context | None,
                attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """A span over ``events`` (one run of ``trace_groups``) continuing the trace they were appended in
    (``parent``), linked to the span running now (the Celery task that read them). Events appended
    without a trace get none: a projector catching up on untraced history creates no spans at all."""
    if parent is None or not enabled():
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    here = trace.get_current_span().get_span_context()
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER,
                                        attributes={**events_attributes(events), **(attributes or {})},
                                        links=[Link(here)] if here.is_valid else None) as current:
        yield current
