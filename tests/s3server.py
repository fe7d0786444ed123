"""A local S3-compatible server (moto's) for tests, started and stopped by the tests themselves.

moto keeps everything in memory: a restart loses the buckets, so an *outage* is simulated by pausing
the process (SIGSTOP: requests hang and time out, as for a slow or unreachable endpoint) and resuming
it (SIGCONT), which keeps its state. The AWS_* variables it sets are what production uses too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import IN_CI, reachable
from tests.helpers import terminate, wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    proc: subprocess.Popen[bytes]
    endpoint: str
    env: dict[str, str]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def bucket(self) -> str:
        name = f"chronicle-{uuid.uuid4().hex[:12]}"  # S3 names: 3-63 characters
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


def start_s3() -> S3Server:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        message = "moto[server] is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: reachable("127.0.0.1", port) or proc.poll() is not None, timeout=60, what="moto to listen")
    assert proc.poll() is None, "moto.server exited at start-up"
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing-key-id",
           "AWS_SECRET_ACCESS_KEY": "testing-secret-" + uuid.uuid4().hex, "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    return S3Server(proc, endpoint, env)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = start_s3()
    try:
        yield server
    finally:
        server.resume()
        terminate(server.proc)


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The module's server with its AWS_* variables exported (subprocesses inherit them)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server
