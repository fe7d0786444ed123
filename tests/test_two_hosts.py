"""Two hosts simulated on one machine: a CMS/API host and a worker host with separate, unrelated
data directories, sharing only Redis (broker), PostgreSQL (log, vector cache) and the S3 server (media,
LanceDB).

Host 1 runs the API (in this process) and the ``projections`` role (read model, reactor); host 2 runs
the workers: ``chronicle worker -Q media`` in the first test, and also ``-Q embeddings,vectors`` against
the fake OpenAI-compatible server in the second. Uploads and pages go in through the API on host 1,
variants and embeddings are made on host 2 (whose data directory ends up holding no media file, only
its private working copy of the projections), search answers on host 1, and a replay on host 1 encodes
nothing and costs no embedding request.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from pipeline import Chronicle, Settings
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server
from tests import s3server
from tests.conftest import SHARED
from tests.helpers import cli, wait_until, worker_process
from tests.s3server import S3Server

s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module
PILLOW = SHARED / "testdata" / "images" / "pillow"


def statuses(db_path: Path) -> dict[str, str]:
    try:
        db = sqlite3.connect(db_path)
        try:
            return dict(db.execute("SELECT id, status FROM images").fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError:
        return {}


@pytest.mark.slow
def test_upload_on_one_host_variants_on_another(s3: S3Server, redis_db_url: str, postgres_url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.bucket()
    shared = {"CHRONICLE_EVENT_STORE_URL": postgres_url, "CHRONICLE_BROKER_URL": redis_db_url,
              "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_MEDIA_WIDTHS": "160,320",
              "CHRONICLE_MEDIA_AVIF_SPEED": "10", "CHRONICLE_SWEEP_INTERVAL": "1", **s3.env}
    host1, host2 = tmp_path / "host1" / "data", tmp_path / "host2" / "data"
    for name, value in shared.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHRONICLE_DATA_DIR", str(host1))
    settings = Settings(data_dir=host1)
    handle = Chronicle(settings)  # publishes wake-ups to Redis
    try:
        with worker_process("-Q", "projections", "--concurrency", "1", env={"CHRONICLE_DATA_DIR": str(host1)},
                            log=tmp_path / "host1-projections.log"), \
             worker_process("-Q", "media", "--concurrency", "1", env={"CHRONICLE_DATA_DIR": str(host2)},
                            log=tmp_path / "host2-media.log"):
            app = create_app(HttpSettings(data_dir=host1), chronicle=handle)
            with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as client:
                for name in ("hopper.jpg", "iss634.gif"):
                    answer = client.post("/images", data={"id": name.split(".")[0]},
                                         files={"file": (name, (PILLOW / name).read_bytes())})
                    assert answer.status_code == 202, answer.text
                done = {"hopper": "completed", "iss634": "completed"}
                wait_until(lambda: statuses(settings.projection_db_path) == done, timeout=180,
                           what="variants made on host 2, projected on host 1")
                image = client.get("/images/hopper").json()
                served = client.get(image["variants"][0]["url"])
                assert served.status_code == 200 and served.content
                keys = s3.keys(bucket, "media/")
                assert any(k.startswith("media/variants/") for k in keys)

                # replay on host 1 while both hosts run: the read model is rebuilt from the log, and no
                # job is sent again. A new upload afterwards goes through the same FIFO media queue, so
                # once it is done any job the replay had caused would have run too.
                cli("replay", "--yes", env={**os.environ, "CHRONICLE_DATA_DIR": str(host1)}, check=True)
                assert statuses(settings.projection_db_path) == done
                answer = client.post("/images", data={"id": "after"},
                                     files={"file": ("hopper.png", (PILLOW / "hopper.png").read_bytes())})
                assert answer.status_code == 202, answer.text
                wait_until(lambda: statuses(settings.projection_db_path).get("after") == "completed", timeout=180,
                           what="the upload after the replay")
        processed = [e.data["id"] for e in handle.store.iter_all() if e.type == "ImageProcessed"]
        assert sorted(processed) == ["after", "hopper", "iss634"], "the replay made no media job run again"
        on_host2 = [p for p in host2.rglob("*") if p.is_file() and "media" in p.relative_to(host2).parts]
        assert on_host2 == [], "the worker host keeps no media files"
    finally:
        handle.close()


def lance_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and any(part.endswith(".lance") for part in p.parts)]


@pytest.mark.slow
def test_embeddings_and_vectors_on_the_worker_host(s3: S3Server, redis_db_url: str, postgres_url: str,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host 2 runs media *and* the embedding and vector workers, with nothing of host 1's files: it reads
    documents from its private working copy of the projections (built from the shared log), pays the
    fake provider, writes vectors to LanceDB on S3 and the vector cache to PostgreSQL. Host 1 searches
    them; its replay costs no request and no encode."""
    from pipeline.embeddings.api import embedding_status
    from tests.chaos.common import vector_rows
    from tests.fakes.openai_embeddings_server import running

    bucket = s3.bucket()
    host1, host2 = tmp_path / "host1" / "data", tmp_path / "host2" / "data"
    with running() as fake:
        shared = {"CHRONICLE_EVENT_STORE_URL": postgres_url, "CHRONICLE_BROKER_URL": redis_db_url,
                  "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_LANCEDB_URL": f"s3://{bucket}/lancedb",
                  "CHRONICLE_VECTOR_CACHE": "auto", "CHRONICLE_MEDIA_WIDTHS": "32,64",
                  "CHRONICLE_MEDIA_FORMATS": "webp", "CHRONICLE_EMBEDDER": "openai",
                  "OPENAI_API_KEY": "test-key-not-real", "OPENAI_BASE_URL": fake.base_url,
                  "CHRONICLE_EMBEDDING_DIMENSION": "64", "CHRONICLE_EMBEDDING_BACKOFF_INITIAL": "0.01",
                  "CHRONICLE_EMBEDDING_BACKOFF_MAX": "0.05", "CHRONICLE_EMBEDDING_TIMEOUT": "5", **s3.env}
        for name, value in {**shared, "CHRONICLE_DATA_DIR": str(host1)}.items():
            monkeypatch.setenv(name, value)
        settings = Settings(data_dir=host1)
        handle = Chronicle(settings)
        logs = tmp_path / "logs"
        logs.mkdir()
        try:
            with worker_process("-Q", "projections", "--concurrency", "1", env={"CHRONICLE_DATA_DIR": str(host1)},
                                log=logs / "host1-projections.log"), \
                 worker_process("-Q", "media", "--concurrency", "1", env={"CHRONICLE_DATA_DIR": str(host2)},
                                log=logs / "host2-media.log"), \
                 worker_process("-Q", "embeddings,vectors", "--concurrency", "1",
                                env={"CHRONICLE_DATA_DIR": str(host2)}, log=logs / "host2-embeddings.log"):
                app = create_app(HttpSettings(data_dir=host1), chronicle=handle)
                with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as client:
                    answer = client.post("/images", data={"id": "hopper"},
                                         files={"file": ("hopper.jpg", (PILLOW / "hopper.jpg").read_bytes())})
                    assert answer.status_code == 202, answer.text
                    pages = [{"type": "SiteCreated", "data": {"id": "s1", "team_id": "t1", "name": "Harbour"}}] + [
                        {"type": "PageCreated", "data": {"id": f"p{n}", "site_id": "s1", "slug": f"p{n}",
                                                         "title": f"{topic} page {n}"}}
                        for n, topic in enumerate(["Harbour ferry timetable", "Lighthouse opening hours",
                                                   "Fish market on Sundays", "Sailing school courses"])]
                    client.post("/events", json=pages).raise_for_status()

                    def settled() -> bool:
                        emb = embedding_status(handle)
                        page = emb["kinds"]["page"]
                        rows = vector_rows(handle, emb)["page"]
                        return (statuses(settings.projection_db_path).get("hopper") == "completed"
                                and page["embedded"] == 4 and not page["pending"]
                                and sorted(set(rows[0])) == sorted(rows[1]))

                    wait_until(settled, timeout=180, what="variants and embeddings made on host 2, seen on host 1",
                               explain=lambda: str(embedding_status(handle)["kinds"]["page"]))
                    assert fake.stats.inputs >= 4, "host 2 paid the provider for the pages"
                    ids, ledger = vector_rows(handle, embedding_status(handle))["page"]
                    assert sorted(ids) == sorted(ledger) == ["p0", "p1", "p2", "p3"], "one row per item, no duplicate"
                    hits = client.get("/search", params={"q": "lighthouse opening hours"}).json()["results"]
                    assert hits and hits[0]["id"] == "p1", hits

                    # replay on host 1: the read model is rebuilt from the log; no job runs again. A page
                    # appended afterwards goes through the same FIFO queues, so once it is embedded any
                    # job the replay had caused would have run too.
                    requests = fake.stats.requests
                    cli("replay", "--yes", env={**os.environ, "CHRONICLE_DATA_DIR": str(host1)}, check=True)
                    assert embedding_status(handle)["kinds"]["page"]["embedded"] == 4
                    client.post("/events", json={"type": "PageCreated", "data": {
                        "id": "p4", "site_id": "s1", "slug": "p4", "title": "Kayak rental"}}).raise_for_status()
                    wait_until(lambda: sorted(vector_rows(handle, embedding_status(handle))["page"][0])
                               == ["p0", "p1", "p2", "p3", "p4"], timeout=120, what="the page after the replay")
                    assert fake.stats.requests == requests + 1, "the replay cost no request (only the new page's)"
                    hits = client.get("/search", params={"q": "kayak rental"}).json()["results"]
                    assert hits and hits[0]["id"] == "p4", hits
            processed = [e.data["id"] for e in handle.store.iter_all() if e.type == "ImageProcessed"]
            computed = [e for e in handle.store.iter_all() if e.type == "EmbeddingsComputed"]
        finally:
            handle.close()
    assert processed == ["hopper"], "the replay made no media job run again"
    assert computed, "embeddings were recorded (by host 2: nothing else embeds)"
    assert not [p for p in host2.rglob("*") if p.is_file() and "media" in p.relative_to(host2).parts]
    with sqlite3.connect(host2 / "sqlite.db") as copy:  # host 2's private working copy, from the log alone
        assert copy.execute("SELECT count(*) FROM pages").fetchone()[0] == 5
    assert not (host1 / "cache" / "embeddings").exists(), "host 1 keeps no vector cache"
    assert lance_files(host1) == [] and lance_files(host2) == [], "the vector tables are on S3 only"
    assert any(k.startswith("lancedb/pages__") for k in s3.keys(bucket, "lancedb/"))
