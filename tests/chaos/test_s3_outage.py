"""Scenario: the S3 endpoint goes away (connection refused) while uploads and jobs run, then comes back.

moto keeps its buckets in memory, so the *server* is not restarted (its recorder could replay the
requests, but not a multipart upload, whose upload id the replay would not get back). Instead every
client reaches it through the chaos suite's ``TcpProxy``: ``cut()`` resets every connection and refuses
new ones, exactly what a stopped server's port does, and ``restore()`` listens on the same port again.

Two hosts as in production: host 1 runs the API (this process) and ``projections`` with the sweeper,
host 2 the media and embedding/vector workers; they share Redis, PostgreSQL and the (proxied) S3 with
media and LanceDB. While the endpoint is down, ``POST /images`` answers 503 (nothing recorded), media
jobs fail transiently (retried, or dead-lettered and redriven with ``chronicle failures retry`` as an
operator would), embeddings go on (their cache is in PostgreSQL) and the vector writer waits. After it
returns, every image is processed and every page embedded with its one row in LanceDB: nothing lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pipeline import Chronicle, Settings
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server
from tests import s3server
from tests.chaos.common import FAST_ENV, image_statuses, pipeline_report, small_images, stable
from tests.chaos.conftest import Fleet, RedisServer, TcpProxy, figure, host_fleets
from tests.helpers import cli, wait_until
from tests.s3server import S3Server

pytestmark = pytest.mark.slow
s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module

IMAGES = 6


def pages(first: int, count: int) -> list[dict]:
    return [{"type": "PageCreated", "data": {"id": f"p{n}", "site_id": "s1", "slug": f"p{n}",
                                             "title": f"Harbour notice {n}: tide table {n * 3}"}}
            for n in range(first, first + count)]


def test_s3_endpoint_down_and_back(own_redis: RedisServer, s3: S3Server, postgres_url: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch, fleet_factory: list[Fleet]) -> None:
    from pipeline.embeddings.api import embedding_status
    from pipeline.failures.dead_letters import list_failures

    bucket = s3.bucket()
    proxy = TcpProxy(("127.0.0.1", int(s3.endpoint.rsplit(":", 1)[1])))
    proxy.restore()
    host1 = tmp_path / "host1" / "data"  # (host_fleets: tmp_path/hostN/data)
    shared = {**FAST_ENV, **s3.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
              "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EVENT_STORE_URL": postgres_url,
              "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_LANCEDB_URL": f"s3://{bucket}/lancedb",
              "CHRONICLE_MEDIA_STORE_TIMEOUT": "3", "CHRONICLE_MEDIA_STORE_RETRIES": "1"}
    first, second = host_fleets(2, shared, tmp_path, monkeypatch, fleet_factory)
    handle = Chronicle(Settings())
    first.add("projections", "-Q", "projections", "--beat", "-c", "1")
    second.add("media", "-Q", "media", "-c", "1")
    second.add("embeddings", "-Q", "embeddings", "-c", "1")  # not behind a vector write waiting for S3
    second.add("vectors", "-Q", "vectors", "-c", "1")
    originals = small_images(tmp_path / "originals", IMAGES + 1, seed=3)
    state: dict = {}
    refused = redriven = 0
    app = create_app(HttpSettings(data_dir=host1), chronicle=handle)
    try:
        with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as client:
            def post_image(path: Path) -> httpx.Response:
                return client.post("/images", data={"id": path.stem}, files={"file": (path.name, path.read_bytes())})

            client.post("/events", json=[{"type": "SiteCreated", "data": {"id": "s1", "team_id": "t1", "name": "H"}},
                                         *pages(0, 20)]).raise_for_status()
            for path in originals[:IMAGES]:  # their jobs start as the endpoint goes away
                assert post_image(path).status_code == 202
            proxy.cut()
            down_at = time.monotonic()
            try:
                answer = post_image(originals[IMAGES])
                assert answer.status_code == 503, answer.text
                refused += 1
                assert s3.env["AWS_SECRET_ACCESS_KEY"] not in answer.text
                client.post("/events", json=pages(20, 10)).raise_for_status()  # the log is up: accepted
                # embeddings go on without the object store (their cache is in PostgreSQL); media jobs
                # meet the outage (a retry, or a dead letter)
                wait_until(lambda: embedding_status(handle, exact=False)["kinds"]["page"]["embedded"] == 30,
                           timeout=120, what="the pages embedded while S3 is down")
                wait_until(lambda: any(e.type == "ImageProcessingFailed" and not e.data["permanent"]
                                       for e in handle.store.iter_all()),
                           timeout=60, what="a media job meeting the outage (retried, then a dead letter)")
                assert image_statuses(handle).get("completed", 0) < IMAGES, "some image waits for the store"
            finally:
                proxy.restore()
            outage = time.monotonic() - down_at
            assert post_image(originals[IMAGES]).status_code == 202, "the refused upload, sent again"

            def recovered() -> object:
                nonlocal redriven
                failures = list_failures(handle.settings.projection_db_path, status="open")
                if failures:  # the operator's redrive, once the store is back
                    cli("failures", "retry", "--all", check=True)
                    redriven += len(failures)
                    return None
                snap = stable(handle, embeddings=True, state=state)
                return snap if snap and snap["images"] == {"completed": IMAGES + 1} else None

            back_at = time.monotonic()
            snapshot = wait_until(recovered, timeout=240, what="every image and page done after the outage",
                                  explain=lambda: f"{state.get('waiting_for')}; {pipeline_report(handle)}")
            settle = time.monotonic() - back_at
    except AssertionError:
        print(first.log_tail(), second.log_tail())
        raise
    finally:
        first.stop_all()
        second.stop_all()
        proxy.cut()
    assert snapshot["images"] == {"completed": IMAGES + 1}, snapshot["images"]
    ids, ledger = snapshot["vectors"]["page"]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(ledger) and len(ledger) == 30
    assert list_failures(handle.settings.projection_db_path, status="open") == []
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], "no half-written object"
    handle.close()
    figure(f"S3 endpoint down {outage:.1f}s (connection refused) under uploads and jobs: {refused} upload refused "
           f"(503), {redriven} dead letter(s) redriven, settled {settle:.1f}s after it returned; "
           f"{IMAGES + 1} images completed, 30 pages embedded, rows = ledger, proxy connections {proxy.accepted}")
