"""Scenario 1 on the multi-host topology: ``kill -9`` of the *remote* media and embedding workers.

Host 1 (API + ``projections`` with the sweeper) and the worker hosts have separate data directories and
share Redis, PostgreSQL and an S3 server.

* The media worker on host 2 is killed while it encodes; its restarted successor (the supervisor's)
  finishes the image once the sweeper re-sends the job. Nothing is lost (the image completes), nothing
  is recorded twice, and the bucket holds no half-object: every object under ``variants/`` is a marker
  or a variant a manifest lists, and each variant decodes.
* Two worker hosts (2 and 3) run ``embeddings,vectors`` against the fake provider; host 2's is killed
  while a batch of pages is being embedded and restarted. Every page ends embedded, LanceDB (on S3)
  holds exactly the ledger's items, once each, the provider was paid at most once per text plus the
  batches in flight at the kill, and no multipart upload is left half-done in the bucket.
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from PIL import Image

from pipeline import Chronicle, Settings
from pipeline.media.upload import upload
from tests import s3server
from tests.chaos.common import FAST_ENV, pipeline_report, slow_original, stable
from tests.chaos.conftest import Fleet, RedisServer, figure, host_fleets
from tests.chaos.test_worker_kill import image_status
from tests.helpers import wait_until
from tests.s3server import S3Server

pytestmark = pytest.mark.slow
s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module


def test_remote_media_worker_killed_mid_image(own_redis: RedisServer, s3: S3Server, postgres_url: str,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              fleet_factory: list[Fleet]) -> None:
    bucket = s3.bucket()
    host2 = tmp_path / "host2" / "data"  # (host_fleets: tmp_path/hostN/data)
    shared = {**FAST_ENV, **s3.env, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EVENT_STORE_URL": postgres_url,
              "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_MEDIA_STUCK_AFTER": "2",
              "CHRONICLE_MEDIA_WIDTHS": "1024,1600", "CHRONICLE_MEDIA_FORMATS": "avif",
              "CHRONICLE_MEDIA_AVIF_SPEED": "0", "CHRONICLE_MEDIA_TIME_LIMIT": "120", "CHRONICLE_EMBEDDER": "off"}
    first, second = host_fleets(2, shared, tmp_path, monkeypatch, fleet_factory)
    chronicle = Chronicle(Settings())
    first.add("projections", "-Q", "projections", "--beat", "-c", "1")
    media = second.add("media", "-Q", "media", "-c", "1")
    try:
        upload(chronicle, slow_original(tmp_path, seed=5), image_id="big")
        wait_until(lambda: image_status(chronicle, "big") == "processing", timeout=90, what="image processing")
        second.env.update({"CHRONICLE_MEDIA_FORMATS": "webp", "CHRONICLE_MEDIA_WIDTHS": "32,64"})  # fast restart
        killed_at = time.monotonic()
        second.kill9(media)
        wait_until(lambda: image_status(chronicle, "big") in ("completed", "failed"), timeout=90,
                   what="the image the killed remote worker was processing to finish")
        recovered = time.monotonic() - killed_at
        state: dict = {}
        wait_until(lambda: stable(chronicle, embeddings=False, state=state), timeout=60, what="settled")
    except AssertionError:
        print(first.log_tail(), second.log_tail())
        raise
    finally:
        first.stop_all()
        second.stop_all()
    assert image_status(chronicle, "big") == "completed"
    started = [e for e in chronicle.store.read_stream("image-big") if e.type == "ImageProcessingStarted"]
    assert len(started) == 1, "the re-sent job recorded nothing twice"

    client = s3.client()
    keys = s3.keys(bucket, "media/")
    listed = {v["path"] for k in keys if k.startswith("media/manifests/")
              for v in orjson.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read())["variants"]}
    for key in (k for k in keys if k.startswith("media/variants/")):
        relative = key.removeprefix("media/")
        if key.endswith(".rejected"):
            continue
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        Image.open(io.BytesIO(data)).load()  # whole: a half-written object would not decode
        assert relative in listed or key.endswith(".avif"), f"orphan object {key}"
    assert not [p for p in host2.rglob("*") if p.is_file() and "media" in p.relative_to(host2).parts]
    chronicle.close()
    figure(f"remote media worker kill -9 mid-image (media on S3, log on PostgreSQL): recovered "
           f"{recovered:.1f}s after the kill; {len(keys)} objects, none half-written")


def test_a_media_host_that_dies_for_good_has_its_job_redone_by_another_host(
        own_redis: RedisServer, s3: S3Server, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet]) -> None:
    """Host 2's media worker is killed mid-image and never comes back; host 3's media worker redoes the
    job, re-sent by host 1's sweeper from the lease host 2 left in the log's PostgreSQL database.
    With leases in each host's own ``leases.db`` no sweeper saw it: the image waited for the stuck-image
    net (900 s by default, left at its default here) or Redis' visibility timeout (an hour)."""
    bucket = s3.bucket()
    worker_host = tmp_path / "host3" / "data"  # (host_fleets: tmp_path/hostN/data)
    shared = {**FAST_ENV, **s3.env, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EVENT_STORE_URL": postgres_url,
              "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_MEDIA_WIDTHS": "1024,1600",
              "CHRONICLE_MEDIA_FORMATS": "avif", "CHRONICLE_MEDIA_AVIF_SPEED": "0",
              "CHRONICLE_MEDIA_TIME_LIMIT": "120", "CHRONICLE_EMBEDDER": "off", "CHRONICLE_LEASE_SECONDS": "5"}
    fleets = host_fleets(3, shared, tmp_path, monkeypatch, fleet_factory)
    chronicle = Chronicle(Settings())
    fleets[0].add("projections", "-Q", "projections", "--beat", "-c", "1")
    doomed = fleets[1].add("media", "-Q", "media", "-c", "1")
    try:
        upload(chronicle, slow_original(tmp_path, seed=7), image_id="orphan")
        wait_until(lambda: image_status(chronicle, "orphan") == "processing", timeout=90, what="image processing")
        assert doomed.proc is not None
        os.killpg(doomed.proc.pid, signal.SIGKILL)  # the host is gone: no supervisor restarts it
        doomed.proc.wait(30)
        killed_at = time.monotonic()
        fleets[2].env.update({"CHRONICLE_MEDIA_FORMATS": "webp", "CHRONICLE_MEDIA_WIDTHS": "32,64"})
        fleets[2].add("media", "-Q", "media", "-c", "1")
        wait_until(lambda: image_status(chronicle, "orphan") == "completed", timeout=120,
                   what="host 3 to redo the job of the host that died",
                   explain=lambda: pipeline_report(Chronicle(Settings())))
        recovered = time.monotonic() - killed_at
    except AssertionError:
        print(*(fleet.log_tail() for fleet in fleets))
        raise
    finally:
        for fleet in fleets:
            fleet.stop_all()
    assert not [p for p in worker_host.rglob("leases.db")], "leases live in PostgreSQL, not on a host"
    chronicle.close()
    figure(f"media host killed for good mid-image: redone on another host {recovered:.1f}s after the kill "
           "(leases in the log's PostgreSQL, stuck-image net at its 900 s default)")


PAGES = 240
BATCH = 12  # inputs per request: 20 requests, each slowed to 0.25 s, so the kill lands mid-run


def test_remote_embedding_worker_killed_mid_batch(own_redis: RedisServer, s3: S3Server, postgres_url: str,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  fleet_factory: list[Fleet]) -> None:
    from pipeline.embeddings.api import embedding_status
    from tests.fakes.openai_embeddings_server import running

    bucket = s3.bucket()
    # one fake provider per worker host: the kill must land while *host 2* is paying for a batch
    with running(latency=0.25) as fake2, running(latency=0.25) as fake3:
        shared = {**FAST_ENV, **s3.env, "CHRONICLE_BROKER_URL": own_redis.url,
                  "CHRONICLE_EVENT_STORE_URL": postgres_url, "CHRONICLE_LANCEDB_URL": f"s3://{bucket}/lancedb",
                  "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_EMBEDDER": "openai",
                  "OPENAI_API_KEY": "test-key-not-real",
                  "CHRONICLE_EMBEDDING_DIMENSION": "32", "CHRONICLE_EMBEDDING_BATCH_SIZE": str(BATCH),
                  "CHRONICLE_EMBEDDING_BACKOFF_INITIAL": "0.01", "CHRONICLE_EMBEDDING_BACKOFF_MAX": "0.1",
                  "CHRONICLE_EMBEDDING_TIMEOUT": "5",
                  # claims outlive a slow batch on a loaded machine (an expired one is paid again by design);
                  # the dead worker's are taken over at once anyway (its pid is gone)
                  "CHRONICLE_EMBEDDING_CLAIM_SECONDS": "30"}
        fleets = host_fleets(3, shared, tmp_path, monkeypatch, fleet_factory,
                             per_host=[{"OPENAI_BASE_URL": url} for url in ("", fake2.base_url, fake3.base_url)])
        chronicle = Chronicle(Settings())
        fleets[0].add("projections", "-Q", "projections", "--beat", "-c", "1")
        remote = fleets[1].add("embeddings", "-Q", "embeddings,vectors", "-c", "1")
        fleets[2].add("embeddings", "-Q", "embeddings,vectors", "-c", "1")
        state: dict = {}
        try:
            chronicle.emit("SiteCreated", {"id": "s1", "team_id": "t1", "name": "Harbour"})
            chronicle.emit_many([{"type": "PageCreated", "data": {
                "id": f"p{n}", "site_id": "s1", "slug": f"p{n}", "title": f"Page {n} of the harbour guide, {n * 7}"}}
                for n in range(PAGES)])
            wait_until(lambda: fake2.stats.requests >= 2, timeout=120, what="host 2 embedding, mid-run")
            in_flight = fake2.stats.requests
            killed_at = time.monotonic()
            fleets[1].kill9(remote)
            snapshot = wait_until(lambda: not any(f.supervise() for f in fleets)
                                  and stable(chronicle, embeddings=True, state=state), timeout=180,
                                  what="every page embedded and written after the kill",
                                  explain=lambda: f"{state.get('waiting_for')}; {pipeline_report(chronicle)}")
            recovered = time.monotonic() - killed_at
        except AssertionError:
            print(*(f.log_tail() for f in fleets))
            raise
        finally:
            for fleet in fleets:
                fleet.stop_all()
        inputs = fake2.stats.inputs + fake3.stats.inputs
        by_host = (fake2.stats.inputs, fake3.stats.inputs)
    page = embedding_status(chronicle)["kinds"]["page"]
    assert page["embedded"] == PAGES and not page["pending"] and not page["failed"], page
    ids, ledger = snapshot["vectors"]["page"]
    assert len(ids) == len(set(ids)), "no page has two rows"
    assert sorted(ids) == sorted(ledger) and len(ledger) == PAGES, "every embedded page has its row, none else"
    # Never paid twice, except the requests in flight when the worker died (their answers were lost).
    assert inputs <= PAGES + 2 * BATCH, f"{inputs} inputs paid for {PAGES} pages"
    client = s3.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], "no half-written object"
    assert any(k.startswith("lancedb/pages__") for k in s3.keys(bucket, "lancedb/"))
    chronicle.close()
    figure(f"remote embedding worker kill -9 mid-run (2 worker hosts, LanceDB on S3, cache on PostgreSQL): "
           f"host 2 killed during its request {in_flight}, settled {recovered:.1f}s later; {PAGES} pages, "
           f"{inputs} inputs paid (host 2, host 3: {by_host}), rows = ledger, no duplicate")
