"""OpenTelemetry traces: the trace context in event metadata (pure functions), the spans of one process
with the SDK's in-memory exporter, and one trace from an HTTP emit to a vector write across a real
``chronicle serve`` and a real ``chronicle worker`` on Redis, collected by an OTLP/HTTP receiver run here.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline import Chronicle, tracing
from pipeline.envelope import Envelope, Recorded, validate_envelope
from pipeline.jobs.spec import Job
from tests.helpers import stop_process_group, wait_until, worker_process

REPO = Path(__file__).resolve().parent.parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def page(n: int | str) -> dict[str, Any]:
    return {"type": "PageCreated", "data": {"id": f"p{n}", "site_id": "s", "title": f"Hello {n}", "slug": f"p-{n}"}}


# -- switching on (pure) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "cms"}, False),
    ({"OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "console,none"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_traces_are_off_unless_otel_variables_ask(env: dict[str, str], on: bool) -> None:
    assert tracing.configured_by(env) is on


def test_exporter_names_map_otlp_to_the_protocol() -> None:
    assert tracing.exporter_names({}) == ["otlp_proto_http"]
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp_proto_http", "console"]
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == [
        "otlp_proto_grpc"]


# -- the context in event metadata (pure) -------------------------------------------------------------------

CARRIER = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}


def test_stamp_adds_the_context_to_the_metadata_without_changing_the_input() -> None:
    bare = page(1)
    assert tracing.stamp(bare, CARRIER)["metadata"] == CARRIER
    assert "metadata" not in bare
    with_meta = {**page(2), "metadata": {"actor": "editor"}}
    assert tracing.stamp(with_meta, CARRIER)["metadata"] == {"actor": "editor", **CARRIER}
    assert with_meta["metadata"] == {"actor": "editor"}


def test_stamp_keeps_a_context_the_sender_brought() -> None:
    """A CloudEvent with the distributed-tracing extension continues the sender's own trace."""
    theirs = {**page(1), "metadata": {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}}
    assert tracing.stamp(theirs, CARRIER) is theirs


def test_stamp_leaves_malformed_input_for_validation_to_reject() -> None:
    for bad in ({**page(1), "metadata": None}, {**page(1), "metadata": "x"}, ["not", "an", "object"], 42):
        assert tracing.stamp(bad, CARRIER) is bad


def test_stamp_works_on_envelope_models_and_keeps_lists_lists() -> None:
    env = Envelope.model_validate({**page(1), "metadata": {"actor": "a", "custom": 1}})
    stamped = tracing.stamp(env, CARRIER)
    assert stamped.metadata.model_dump(exclude_none=True) == {"actor": "a", "custom": 1, **CARRIER}
    assert env.metadata.model_dump(exclude_none=True) == {"actor": "a", "custom": 1}
    assert isinstance(tracing.stamp_all([page(1)], CARRIER), list)
    streamed = tracing.stamp_all(iter([page(1)]), CARRIER)
    assert not isinstance(streamed, list) and next(iter(streamed))["metadata"] == CARRIER
    batch = [page(1)]
    assert tracing.stamp_all(batch, {}) is batch


def test_context_of_reads_a_valid_traceparent_only() -> None:
    from opentelemetry import trace

    context = tracing.context_of({"traceparent": TRACEPARENT, "actor": "x"})
    assert context is not None
    parent = trace.get_current_span(context).get_span_context()
    assert (format(parent.trace_id, "032x"), format(parent.span_id, "016x")) == (TRACE_ID, CALLER_SPAN)
    assert parent.is_remote
    for metadata in ({}, None, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-{'0' * 16}-01"},
                     {"traceparent": 7}):
        assert tracing.context_of(metadata) is None
    assert tracing.carrier_of({"traceparent": TRACEPARENT, "tracestate": "", "baggage": "user=me"}) == {
        "traceparent": TRACEPARENT}


def recorded(position: int, metadata: dict[str, Any], stream: str = "page-x", type: str = "PageUpdated") -> Recorded:
    return Recorded(position, f"e{position}", stream, position, type, 1, {"id": "x"}, metadata,
                    "2026-01-01T00:00:00+00:00")


def test_trace_groups_are_runs_of_one_context() -> None:
    one, two = (f"00-{TRACE_ID}-{span * 16}-01" for span in "12")
    events = [recorded(1, {"traceparent": one}), recorded(2, {"traceparent": one, "actor": "x"}), recorded(3, {}),
              recorded(4, {"traceparent": two}), recorded(5, {"traceparent": two, "tracestate": "k=v"})]
    groups = list(tracing.trace_groups(events))
    assert [[e.position for e in g] for _, g in groups] == [[1, 2], [3], [4], [5]]
    assert [c is None for c, _ in groups] == [False, True, False, False]


def test_events_attributes_say_type_and_stream_only_when_shared() -> None:
    assert tracing.events_attributes([recorded(7, {})]) == {
        "chronicle.event.position": 7, "chronicle.events.count": 1, "chronicle.event.type": "PageUpdated",
        "chronicle.event.stream": "page-x"}
    mixed = tracing.events_attributes([recorded(1, {}), recorded(2, {}, stream="page-y", type="PageCreated")])
    assert mixed == {"chronicle.event.position": 1, "chronicle.events.count": 2, "chronicle.position.last": 2}


def test_batch_attributes_name_a_known_type_only() -> None:
    assert tracing.batch_attributes([page(1), page(2)]) == {"chronicle.events.count": 2,
                                                            "chronicle.event.type": "PageCreated"}
    assert tracing.batch_attributes([{"type": "my secret text"}]) == {"chronicle.events.count": 1}
    assert tracing.batch_attributes(iter([page(1)])) == {}


# -- spans in one process, with the SDK's in-memory exporter --------------------------------------------------


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.reset()
        provider.shutdown()


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_off_stamps_nothing_and_makes_no_span(chronicle: Chronicle) -> None:
    tracing.reset()
    assert not tracing.enabled()
    chronicle.emit_many([page(1)])
    chronicle.drain()
    assert "traceparent" not in chronicle.store.read(after=0, limit=1)[0].metadata
    with tracing.span("chronicle.append") as span:
        assert span is None


def test_emit_stamps_its_append_span_and_the_projector_and_reactor_continue_it(chronicle: Chronicle, spans,
                                                                             monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    caller = SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(caller)):
        chronicle.emit_many([page(1), {**page(2), "metadata": {"actor": "editor"}}])
    chronicle.drain()
    by_name: dict[str, list[Any]] = {}
    for finished in spans.get_finished_spans():
        by_name.setdefault(finished.name, []).append(finished)
    append = next(s for s in by_name["chronicle.append"] if s.attributes["chronicle.events.count"] == 2)
    assert append.parent.span_id == caller.span_id and append.context.trace_id == caller.trace_id
    assert append.attributes["chronicle.event.type"] == "PageCreated"
    assert append.attributes["chronicle.events.appended"] == 2
    recorded = chronicle.store.read(after=0, limit=2)
    expected = f"00-{TRACE_ID}-{hexid(append.context.span_id, 16)}-01"
    assert [e.metadata.get("traceparent") for e in recorded] == [expected, expected]
    assert recorded[1].metadata["actor"] == "editor"
    projected = [s for s in by_name["chronicle.project"] if s.attributes["chronicle.event.type"] == "PageCreated"]
    assert len(projected) == 1  # the events of one append: one span
    (one,) = projected
    assert one.parent.span_id == append.context.span_id and one.context.trace_id == caller.trace_id
    assert "cms" in one.attributes["chronicle.projections"]
    assert one.attributes["chronicle.events.count"] == 2
    assert (one.attributes["chronicle.event.position"], one.attributes["chronicle.position.last"]) == (1, 2)
    reacted = [s for s in by_name["chronicle.react"] if s.attributes["chronicle.event.type"] == "PageCreated"]
    assert reacted and all(s.parent.span_id == append.context.span_id for s in reacted)
    # drain runs the jobs in-process: each continues the reaction that made it, and records its outcome there
    react_ids = {s.context.span_id for s in reacted}
    jobs = [s for s in by_name["chronicle.job"] if s.parent is not None and s.parent.span_id in react_ids]
    assert {s.attributes["chronicle.job.task"] for s in jobs} >= {"chronicle.embeddings.catch_up"}
    embed_job = next(s for s in jobs if s.attributes["chronicle.job.task"] == "chronicle.embeddings.catch_up")
    outcome = next(s for s in by_name["chronicle.append"] if s.attributes.get("chronicle.event.type")
                   == "EmbeddingsComputed")
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    parents, at = [], outcome
    while at.parent is not None and at.parent.span_id in by_id:
        at = by_id[at.parent.span_id]
        parents.append(at.context.span_id)
    assert embed_job.context.span_id in parents and append.context.span_id in parents
    writes = [s for s in by_name["chronicle.vectors.write"] if s.context.trace_id == caller.trace_id]
    assert any(s.attributes["chronicle.vectors.upserts"] >= 1 for s in writes)
    # no payloads in any attribute
    for finished in spans.get_finished_spans():
        assert not any("Hello" in str(v) for v in (finished.attributes or {}).values()), finished.name


def ancestors(spans: Any, span: Any) -> list[Any]:
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


def test_an_image_upload_traces_through_the_media_job_to_its_outcome(chronicle: Chronicle, spans,
                                                                    tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.media.upload import upload

    source = tmp_path / "square.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(source)
    with tracing.span("cms.upload") as caller:
        upload(chronicle, source, image_id="img-1")
    chronicle.drain()
    finished = spans.get_finished_spans()
    render = next(s for s in finished if s.name == "chronicle.media.render")
    processed = next(s for s in finished if s.name == "chronicle.append"
                     and s.attributes.get("chronicle.event.type") == "ImageProcessed")
    for span in (render, processed):
        chain = ancestors(spans, span)
        names = [s.name for s in chain]
        assert names[-3:] == ["chronicle.react", "chronicle.append", "cms.upload"], names
        job = chain[0]
        assert job.name == "chronicle.job" and job.attributes["chronicle.job.task"] == "chronicle.media.process"
        assert span.context.trace_id == caller.get_span_context().trace_id
    projected = [s for s in finished if s.name == "chronicle.project"
                 and s.attributes.get("chronicle.event.type") == "ImageProcessed"]
    assert projected and projected[0].parent.span_id == processed.context.span_id


def test_an_event_appended_without_a_trace_gets_no_spans(chronicle: Chronicle, spans) -> None:
    """A projector catching up on history appended while traces were off creates no spans at all."""
    chronicle.emit_many([page(1)])
    chronicle.store.append([validate_envelope(page(2))])  # straight to the log: no trace context
    spans.clear()
    chronicle.drain()
    projected = [s.attributes["chronicle.event.position"] for s in spans.get_finished_spans()
                 if s.name in ("chronicle.project", "chronicle.react")]
    assert projected and 2 not in projected


def test_a_coalesced_wake_up_continues_the_latest_events_trace(chronicle: Chronicle, spans) -> None:
    from pipeline.reactor import Reactor

    sent: list[tuple[str, str]] = []

    class Recording:
        def dispatch(self, jobs: list[Any]) -> None:
            sent.extend((job.task, tracing.current_carrier()["traceparent"]) for job in jobs)

    reactions = {"PageUpdated": [lambda e: [Job("wake", "q", {"position": e.position})]]}
    reactor = Reactor(chronicle.store, Recording(), reactions)
    reactor._dispatch_traced([recorded(1, {"traceparent": f"00-{TRACE_ID}-{'1' * 16}-01"}),
                              recorded(2, {"traceparent": f"00-{TRACE_ID}-{'2' * 16}-01"})])
    react = [s for s in spans.get_finished_spans() if s.name == "chronicle.react"]
    assert len(sent) == 1 and len(react) == 1
    assert hexid(react[0].parent.span_id, 16) == "2" * 16
    assert react[0].attributes["chronicle.event.position"] == 2
    assert sent[0][1].split("-")[2] == hexid(react[0].context.span_id, 16)


def test_http_emit_continues_the_callers_traceparent(chronicle: Chronicle, spans) -> None:
    from fastapi.testclient import TestClient

    from pipeline.http.app import create_app

    with TestClient(create_app(chronicle=chronicle)) as client:
        response = client.post("/events", json=page(1), headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200, response.text
        ce = {"specversion": "1.0", "id": "ce-1", "source": "/cms", "type": "PageCreated",
              "data": page(2)["data"]}
        response = client.post("/events", content=orjson.dumps(ce),
                               headers={"content-type": "application/cloudevents+json", "traceparent": TRACEPARENT})
        assert response.status_code == 200, response.text
        client.get("/metrics")
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind.name == "SERVER"]
    assert len(servers) == 2, [s.name for s in servers]  # the scrape makes no span
    appends = [s for s in finished if s.name == "chronicle.append"]
    assert len(appends) == 2
    for server, append in zip(servers, appends, strict=True):
        assert server.parent.span_id == int(CALLER_SPAN, 16) and server.context.trace_id == int(TRACE_ID, 16)
        assert append.parent.span_id == server.context.span_id
    for event, append in zip(chronicle.store.read(after=0, limit=2), appends, strict=True):
        assert event.metadata["traceparent"] == f"00-{TRACE_ID}-{hexid(append.context.span_id, 16)}-01"


# -- one trace across processes: chronicle serve → chronicle worker (Redis), into an OTLP/HTTP receiver ---------


class OtlpReceiver:
    """A small OTLP/HTTP trace receiver: ``POST /v1/traces`` with an ``ExportTraceServiceRequest``."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                found = []
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            found.append({"trace": span.trace_id.hex(), "id": span.span_id.hex(),
                                          "parent": span.parent_span_id.hex(), "name": span.name,
                                          "service": resource.get("service.name"), "pid": resource.get("process.pid"),
                                          "attributes": {a.key: _value(a.value) for a in span.attributes}})
                with receiver.lock:
                    receiver.spans.extend(found)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def trace(self, trace_id: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {s["id"]: s for s in self.spans if s["trace"] == trace_id}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def ancestry(spans: dict[str, dict[str, Any]], span: dict[str, Any]) -> list[dict[str, Any]]:
    """``span`` and its parents, as far as they were received."""
    chain = [span]
    while chain[-1]["parent"] in spans:
        chain.append(spans[chain[-1]["parent"]])
    return chain


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return 0


@pytest.mark.redis
@pytest.mark.slow
def test_one_trace_from_an_http_emit_to_the_vector_write_across_the_api_and_a_worker(
        redis_db_url, data_dir, tmp_path) -> None:
    from tests.test_metrics import free_port

    receiver = OtlpReceiver()
    env = {**os.environ, "CHRONICLE_BROKER_URL": redis_db_url, "CHRONICLE_EMBEDDER": "test",
           "CHRONICLE_SWEEP_INTERVAL": "3600", "OTEL_TRACES_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env.pop("OTEL_SERVICE_NAME", None)
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "workers", "serve", "--host", "127.0.0.1", "--port", str(port)],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "api.log").open("wb"),
                           start_new_session=True)
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz") == 200, timeout=60, what="chronicle serve")
        with worker_process("-Q", "projections,embeddings,vectors", "-c", "2", "--no-beat", env=env,
                            log=tmp_path / "worker.log"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=orjson.dumps(page("traced")),
                                             headers={"content-type": "application/json",
                                                      "traceparent": TRACEPARENT}, method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200

            def vector_write_reaching_the_caller() -> dict[str, Any] | None:
                spans = receiver.trace(TRACE_ID)
                for span in spans.values():
                    if span["name"] == "chronicle.vectors.write" and span["attributes"].get(
                            "chronicle.vectors.upserts", 0) >= 1:
                        chain = ancestry(spans, span)
                        if chain[-1]["parent"] == CALLER_SPAN:
                            return span
                return None

            write = wait_until(vector_write_reaching_the_caller, timeout=120,
                               what="a vector write whose spans lead back to the HTTP emit")
            spans = receiver.trace(TRACE_ID)
            # every span of the trace has its parent in it (the root's is the caller's), once all are exported
            wait_until(lambda: all(s["parent"] in receiver.trace(TRACE_ID) or s["parent"] == CALLER_SPAN
                                   for s in receiver.trace(TRACE_ID).values()), timeout=30,
                       what="every parent of the trace exported")
    finally:
        stop_process_group(api)
        receiver.close()
    spans = receiver.trace(TRACE_ID)
    # The vector write descends from the reaction that woke the vectors lane: the content event's, or the
    # outcome event's (whichever ran after the embedding was recorded); both are in this trace.
    chain = ancestry(spans, spans[write["id"]])
    names = [s["name"] for s in chain]
    assert names[-2:] == ["chronicle.append", "POST /events"], names
    assert {s["service"] for s in chain[-2:]} == {"chronicle-api"}, chain
    assert {"run/chronicle.vectors.catch_up", "chronicle.react"} <= set(names), names
    assert {s["service"] for s in chain[:-2]} == {"chronicle-worker"}, chain
    assert chain[-1]["pid"] != chain[0]["pid"]
    roots = [s for s in spans.values() if s["parent"] == CALLER_SPAN]
    assert [s["name"] for s in roots] == ["POST /events"]
    kinds = {(s["name"], s["service"]) for s in spans.values()}
    assert {("chronicle.project", "chronicle-worker"), ("run/chronicle.embeddings.catch_up", "chronicle-worker"),
            ("chronicle.embed", "chronicle-worker")} <= kinds, kinds
    projected = [s for s in spans.values() if s["name"] == "chronicle.project"
                 and s["attributes"]["chronicle.event.type"] == "PageCreated"]
    assert projected and spans[projected[0]["parent"]]["service"] == "chronicle-api"
    outcomes = [s for s in spans.values() if s["name"] == "chronicle.append"
                and s["attributes"].get("chronicle.event.type") == "EmbeddingsComputed"]
    assert outcomes and all(s["service"] == "chronicle-worker" for s in outcomes)
    for span in spans.values():  # bounded names, no payloads
        assert span["name"] in tracing.SPAN_NAMES or span["name"].split("/")[0] in ("run", "apply_async"), span
        assert not any("Hello" in str(v) for v in span["attributes"].values()), span


def test_the_tracing_benchmark_runs_in_its_quick_mode() -> None:
    """The figures are ``python -m benchmarks tracing``'s; here only that it runs and reports both."""
    from benchmarks import bench_tracing

    results = bench_tracing.run(quick=True)
    assert [r.name.split(",")[0] for r in results] == ["tracing: emit", "tracing: project + react"]
    assert all(r.ours > 0 and r.baseline > 0 for r in results)
    assert not tracing.enabled()
