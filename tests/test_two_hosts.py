"""Two hosts simulated on one machine: a CMS/API host and a media-worker host with separate, unrelated
data directories, sharing only Redis (broker), PostgreSQL (log) and the S3 server (media).

Host 1 runs the API (in this process) and the ``projections`` role (read model, reactor); host 2 runs
only ``chronicle worker -Q media``. An upload through the API on host 1 is processed on host 2, whose
data directory ends up holding no media file; a replay on host 1 encodes nothing.
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
