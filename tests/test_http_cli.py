"""``chronicle serve`` as a user starts it: a real process, its start-up message and the bind rule."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.http.config import HttpSettings, is_loopback, safe_bind_host
from tests.helpers import terminate

CHRONICLE = str(Path(sys.executable).parent / "chronicle")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_without_a_token_only_localhost_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHRONICLE_API_TOKEN", raising=False)
    open_settings = HttpSettings()
    assert safe_bind_host("127.0.0.1", open_settings) == ("127.0.0.1", None)
    assert safe_bind_host("localhost", open_settings) == ("localhost", None)
    host, warning = safe_bind_host("0.0.0.0", open_settings)
    assert host == "127.0.0.1" and warning and "CHRONICLE_API_TOKEN" in warning
    assert safe_bind_host("0.0.0.0", HttpSettings(api_token="t")) == ("0.0.0.0", None)
    assert is_loopback("::1") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


@pytest.fixture
def serve(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    port = free_port()
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir)}
    env.pop("CHRONICLE_API_TOKEN", None)
    proc = subprocess.Popen([CHRONICLE, "serve", "--host", "0.0.0.0", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        yield proc, port, lines
    finally:
        terminate(proc)


def test_serve_says_it_binds_localhost_without_a_token(serve: tuple[subprocess.Popen[str], int, list[str]]) -> None:
    proc, port, lines = serve
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while not any("serving on" in line for line in lines):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("chronicle serve exited:\n" + "".join(lines))
        lines.append(line)
        assert time.monotonic() < deadline, "".join(lines)
    output = "".join(lines)
    assert "binding to 127.0.0.1 instead of 0.0.0.0" in output
    assert f"http://127.0.0.1:{port}/" in output
    while True:  # uvicorn starts listening right after the banner
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "server never answered"
            time.sleep(0.05)
    assert response.json() == {"status": "ok"}
    posted = httpx.post(f"http://127.0.0.1:{port}/events", headers={"content-type": "application/cloudevents+json"},
                        content=b'{"specversion":"1.0","id":"c1","source":"/t","type":"TeamCreated",'
                                b'"data":{"id":"t1","name":"T"}}', timeout=10)
    assert posted.status_code == 200 and posted.json()["positions"] == [1]
