"""A local OpenAI-compatible HTTP server for tests: real sockets, real ``openai`` client, no real key.

Usage (as a context manager or through the ``fake_openai`` fixture)::

    from tests.fakes.openai_server import FakeOpenAI, fake_openai  # noqa: F401  (fixture import)

    def test_x(fake_openai, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)   # ends in /v1
        fake_openai.fail_next(429, times=1, retry_after=0.05)          # then succeed
        ...
        assert fake_openai.count("/v1/chat/completions") == 2

Endpoints:
    POST /v1/chat/completions  reply text = ``chat_reply`` (a string, or a callable(request_json) → str)
    POST /v1/embeddings        deterministic unit vectors from a hash of each input; ``dimensions`` from
                               the request, else ``embedding_dim`` (default 1536)
    GET  /v1/models            a list with ``model``
Every request is recorded in ``requests`` as (method, path, json body, headers), in arrival order, and
its arrival time (``time.monotonic()``) at the same index in ``times``, and the time its reply was
sent in ``replied`` (so a test can check a client waited, e.g. for ``Retry-After``).
``fail_next(status, times, retry_after, body, path)`` queues failures answered before normal replies
(optionally only for one path). ``delay`` (seconds) slows every reply, for timeout tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None
    path: str | None = None


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text → same vector across runs)."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dim]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class FakeOpenAI:
    def __init__(self, *, model: str = "fake-model", embedding_dim: int = 1536) -> None:
        self.model = model
        self.embedding_dim = embedding_dim
        self.chat_reply: str | Callable[[dict[str, Any]], str] = "ok"
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []
        self.times: list[float] = []
        self.replied: list[float] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- control -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fail_next(self, status: int = 429, *, times: int = 1, retry_after: float | None = None,
                  body: dict[str, Any] | None = None, path: str | None = None) -> None:
        with self._lock:
            self._failures.extend(Failure(status, retry_after, body, path) for _ in range(times))

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, p, _, _ in self.requests if path is None or p == path)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------------------------

    def _take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.path in (None, path):
                    return self._failures.pop(i)
        return None

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.chat_reply(body) if callable(self.chat_reply) else self.chat_reply
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        dim = int(body.get("dimensions") or self.embedding_dim)
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(str(text), dim)}
                for i, text in enumerate(inputs)]
        tokens = sum(len(str(t).split()) for t in inputs)
        return {"object": "list", "data": data, "model": body.get("model", self.model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                with fake._lock:
                    fake.replied.append(time.monotonic())

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with fake._lock:
                    fake.requests.append((method, self.path, body, dict(self.headers)))
                    fake.times.append(time.monotonic())
                if fake.delay:
                    time.sleep(fake.delay)
                failure = fake._take_failure(self.path)
                if failure is not None:
                    headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
                    error = failure.body or {"error": {"message": f"injected {failure.status}",
                                                       "type": "fake_error", "code": str(failure.status)}}
                    self._reply(failure.status, error, headers)
                    return
                if method == "POST" and self.path == "/v1/chat/completions":
                    self._reply(200, fake._chat(body))
                elif method == "POST" and self.path == "/v1/embeddings":
                    self._reply(200, fake._embeddings(body))
                elif method == "GET" and self.path == "/v1/models":
                    self._reply(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
                else:
                    self._reply(404, {"error": {"message": f"no route {method} {self.path}"}})

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

        return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running fake server for one test."""
    with FakeOpenAI() as server:
        yield server
