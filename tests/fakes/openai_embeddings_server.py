"""A local OpenAI-compatible ``/v1/embeddings`` server for embedding tests and benchmarks.

Real sockets and the real ``openai`` client; no key. It counts requests and inputs, answers with
deterministic bag-of-words vectors (shared words → similar vectors, so search behaves sensibly), and
injects faults:

- ``fail_next(status, times=1, retry_after=None)``: the next requests get ``status`` (429 with a
  ``Retry-After`` header, 500, 400 …);
- ``timeout_next(times=1)``: the next requests stall longer than any sane client timeout;
- ``reject_inputs_containing = "BAD"``: any request with such an input is a permanent 400;
- ``storm = 0.3``: that fraction of requests (seeded, deterministic) answers 429 with ``Retry-After: 0``;
- ``latency``: seconds added to every answer (benchmarks use a fixed 50 ms).

(Media's ``tests/fakes/openai_server.py`` serves chat completions; this one is separate on purpose so
neither change can break the other's tests.)
"""

from __future__ import annotations

import base64
import json
import random
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.embeddings.embedders import hashed_bag_of_words
from pipeline.embeddings.text import estimate_tokens


@dataclass
class Fault:
    status: int
    retry_after: float | None = None
    stall: float = 0.0


@dataclass
class Stats:
    requests: int = 0
    inputs: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


class FakeEmbeddingsServer:
    def __init__(self, *, latency: float = 0.0, storm: float = 0.0, seed: int = 7, keep_texts: bool = True) -> None:
        self.latency, self.storm, self.keep_texts = latency, storm, keep_texts
        self.reject_inputs_containing: str | None = None
        self.stats = Stats()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeEmbeddingsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault(status, retry_after) for _ in range(times))

    def timeout_next(self, *, times: int = 1, stall: float = 5.0) -> None:
        with self._lock:
            self._faults.extend(Fault(0, stall=stall) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self.stats = Stats()
            self._faults.clear()

    # -- request handling ---------------------------------------------------------------------------------

    def _decide(self, inputs: list[str]) -> Fault | None:
        with self._lock:
            self.stats.requests += 1
            self.stats.times.append(time.monotonic())
            if self._faults:
                return self._faults.pop(0)
            if self.reject_inputs_containing and any(self.reject_inputs_containing in t for t in inputs):
                return Fault(400)
            if self.storm and self._random.random() < self.storm:
                return Fault(429, retry_after=0)
            self.stats.ok += 1
            self.stats.inputs += len(inputs)
            self.stats.batch_sizes.append(len(inputs))
            if self.keep_texts:
                self.stats.texts.extend(inputs)
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/embeddings"):
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                inputs = body.get("input")
                inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
                if len(inputs) > 2048:
                    self._send(400, {"error": {"message": "too many inputs", "type": "invalid_request_error"}})
                    return
                fault = fake._decide(inputs)
                if fake.latency:
                    time.sleep(fake.latency)
                if fault is not None:
                    if fault.stall:
                        time.sleep(fault.stall)
                        self.close_connection = True
                        return
                    headers = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
                    self._send(fault.status, {"error": {"message": f"injected {fault.status}",
                                                        "type": "invalid_request_error" if fault.status == 400
                                                        else "server_error"}}, headers)
                    return
                dim = int(body.get("dimensions") or 1536)
                vectors = [hashed_bag_of_words(t, dim) for t in inputs]
                if body.get("encoding_format") == "base64":
                    data = [{"object": "embedding", "index": i,
                             "embedding": base64.b64encode(struct.pack(f"<{dim}f", *v)).decode()}
                            for i, v in enumerate(vectors)]
                else:
                    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
                tokens = sum(estimate_tokens(t) for t in inputs)
                self._send(200, {"object": "list", "data": data, "model": body.get("model"),
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

        return Handler


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeEmbeddingsServer]:
    server = FakeEmbeddingsServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def embeddings_api(data_dir: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmbeddingsServer]:
    """The fake server, with Chronicle configured to use it through the real ``openai`` client."""
    with running() as server:
        for name, value in {
            "CHRONICLE_EMBEDDER": "openai", "OPENAI_API_KEY": "test-key-not-real", "OPENAI_BASE_URL": server.base_url,
            "CHRONICLE_EMBEDDING_DIMENSION": "64", "CHRONICLE_EMBEDDING_BACKOFF_INITIAL": "0.01",
            "CHRONICLE_EMBEDDING_BACKOFF_MAX": "0.05", "CHRONICLE_EMBEDDING_TIMEOUT": "2",
        }.items():
            monkeypatch.setenv(name, value)
        yield server
