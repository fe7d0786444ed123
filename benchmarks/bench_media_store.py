"""``python -m benchmarks media --store s3``: the media job on object storage vs local disk, same run.

Both sides run the real job (upload → reactor → job → helper process → events → projection) on the
same inputs; the S3 side stores originals, variants and manifests in a local S3-compatible server
(moto's, started here), so the ratio is the cost of the object-store round trips (download of the
original, HEADs of the survey, conditional PUTs of the variants), not of a network. Runs alternate and
each side keeps its best, so other load on the machine hits both alike. Target ≥ 0.8×: encoding should
dominate. A real S3 adds latency per request (≈ 10-50 ms, ~12 requests per image) on top.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .bench_media import _ours, inputs
from .common import Result


def _moto() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("moto.server did not start (pip install 'moto[server]')") from None
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    return proc, env


def run(quick: bool = False, store: str = "s3") -> list[Result]:
    import boto3

    files = [str(f) for f in inputs(quick)]
    proc, env = _moto()
    saved = {k: os.environ.get(k) for k in (*env, "CHRONICLE_MEDIA_URL")}
    os.environ.update(env)
    work = Path(tempfile.mkdtemp(prefix="bench-media-store-"))
    try:
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        local_runs, s3_runs = [], []
        for n in range(1 if quick else 3):
            os.environ.pop("CHRONICLE_MEDIA_URL", None)
            local_runs.append(_ours(files, str(work / f"local{n}")))
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            s3.create_bucket(Bucket=bucket)
            os.environ["CHRONICLE_MEDIA_URL"] = f"s3://{bucket}/media"
            s3_runs.append(_ours(files, str(work / f"s3{n}")))
        local = min(r["wall"] for r in local_runs)
        remote = min(r["wall"] for r in s3_runs)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        proc.wait(timeout=15)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    n = len(files)
    return [Result(f"media job on {store} vs local disk", "img/s", n / remote, n / local, target_ratio=0.8,
                   notes={"images": n, "local img/s": f"{n / local:.2f}", "s3 (moto) img/s": f"{n / remote:.2f}",
                          "cost of the store per image": f"{(remote - local) / n * 1000:.0f} ms"})]
