"""The media pipeline on S3-compatible object storage (moto's server, started by the tests).

``CHRONICLE_MEDIA_URL=s3://bucket/prefix`` moves originals, variants, manifests and markers into the
bucket with the same keys as on disk; nothing is written under the local media root.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from pipeline import Chronicle
from pipeline.errors import StoreUnavailable
from pipeline.failures.dead_letters import list_failures, request_retry
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server
from pipeline.media.blobs import ObjectBlobs
from pipeline.media.gc import collect
from pipeline.media.jobs import STATS
from pipeline.media.upload import upload
from tests import s3server
from tests.helpers import wait_until
from tests.s3server import S3Server

s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module


@pytest.fixture(autouse=True)
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "160,320")
    monkeypatch.setenv("CHRONICLE_MEDIA_AVIF_SPEED", "10")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_BASE", "0.05")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_MAX", "0.2")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("CHRONICLE_MEDIA_STORE_TIMEOUT", "2")
    monkeypatch.setenv("CHRONICLE_MEDIA_STORE_RETRIES", "0")
    STATS.clear()


@pytest.fixture
def bucket(s3: S3Server, chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> str:
    name = s3.bucket()
    monkeypatch.setenv("CHRONICLE_MEDIA_URL", f"s3://{name}/site-a")
    chronicle.settings.refresh_sections()
    return name


def photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.linspace(0, 255, 400)[None, :, None] + rng.normal(0, 20, (300, 400, 3)), 0, 255)
    Image.fromarray(pixels.astype("uint8")).save(path, "JPEG", quality=90)
    return path


def image_row(chronicle: Chronicle, image_id: str) -> dict[str, Any]:
    db = sqlite3.connect(chronicle.settings.projection_db_path)
    db.row_factory = sqlite3.Row
    try:
        return dict(db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone())
    finally:
        db.close()


def variant_paths(chronicle: Chronicle, image_id: str) -> list[str]:
    db = sqlite3.connect(chronicle.settings.projection_db_path)
    try:
        return [r[0] for r in db.execute("SELECT path FROM image_variants WHERE image_id = ?", (image_id,))]
    finally:
        db.close()


def test_round_trip_on_s3(chronicle: Chronicle, s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """Upload → variants in the bucket → served by /media → duplicate costs 0 encodes → gc empties it."""
    data = upload(chronicle, photo(tmp_path / "a.jpg"), image_id="img-a")
    chronicle.drain()
    row = image_row(chronicle, "img-a")
    assert row["status"] == "completed", row["error"]
    keys = s3.keys(bucket, "site-a/")
    assert f"site-a/{data['original_path']}" in keys
    paths = variant_paths(chronicle, "img-a")
    assert paths and all(f"site-a/{p}" in keys for p in paths)
    assert any(k.startswith("site-a/manifests/") for k in keys)
    media_root = chronicle.settings.media_dir
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*")), "nothing on local disk"
    encoded = STATS["encoded"]
    assert encoded > 0

    # the same bytes again under another id: one conditional put refused, the manifest reused
    upload(chronicle, tmp_path / "a.jpg", image_id="img-b")
    chronicle.drain()
    assert image_row(chronicle, "img-b")["status"] == "completed"
    assert STATS["encoded"] == encoded and STATS["reused"] == 1

    app = create_app(HttpSettings(data_dir=chronicle.settings.data_dir), chronicle=chronicle)
    with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        served = client.get(f"/media/{paths[0]}")
        assert served.status_code == 200
        assert served.content == s3.client().get_object(Bucket=bucket, Key=f"site-a/{paths[0]}")["Body"].read()
        assert "immutable" in served.headers["cache-control"]
        assert client.get("/media/variants/ab/nothing.webp").status_code == 404
        assert client.get(f"/media/manifests/{paths[0]}").status_code == 404  # bookkeeping is not public
        uploaded = client.post("/images", files={"file": ("b.jpg", photo(tmp_path / "b.jpg", 1).read_bytes())})
        assert uploaded.status_code == 202, uploaded.text
        assert f"site-a/{uploaded.json()['original_path']}" in s3.keys(bucket, "site-a/originals/")
    chronicle.settings.refresh_sections()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHRONICLE_MEDIA_PRESIGN_SECONDS", "60")
        chronicle.settings.refresh_sections()
        app = create_app(HttpSettings(data_dir=chronicle.settings.data_dir), chronicle=chronicle)
        with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            redirect = client.get(f"/media/{paths[0]}")
            assert redirect.status_code == 307
            location = redirect.headers["location"]
            assert "X-Amz-Signature=" in location and s3.env["AWS_SECRET_ACCESS_KEY"] not in location
            assert httpx.get(location).content == served.content
    chronicle.settings.refresh_sections()

    for image_id in ("img-a", "img-b"):
        chronicle.emit("ImageDeleted", {"id": image_id})
    chronicle.drain()
    report = collect(chronicle, grace_seconds=0)
    assert report.contents == 1
    left = s3.keys(bucket, "site-a/")
    assert not [k for k in left if data["hash"] in k] and not [k for k in left if any(p in k for p in paths)]


def _put_new(url: str, env: dict[str, str], key: str, payload: bytes, start: Any) -> bool:
    import os

    os.environ.update(env)
    blobs = ObjectBlobs(url)
    start.wait()
    return blobs.put_new(key, payload)


def test_conditional_put_race(s3: S3Server) -> None:
    """Four processes store the same key at once: exactly one writes it, and the object is whole."""
    url = f"s3://{s3.bucket()}/race"
    payload = b"x" * 300_000
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            pending = [pool.apply_async(_put_new, (url, s3.env, "originals/ab/same.jpg", payload, start))
                       for _ in range(4)]
            start.set()
            results = [r.get(timeout=120) for r in pending]
    assert results.count(True) == 1
    assert ObjectBlobs(url).read("originals/ab/same.jpg") == payload


def test_s3_outage_is_transient(chronicle: Chronicle, s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """The store down: an upload fails with StoreUnavailable (nothing recorded), a job fails transiently
    into a dead letter; once the store is back, the upload works and the redrive completes the image."""
    source = photo(tmp_path / "c.jpg", 2)
    s3.pause()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            upload(chronicle, source, image_id="img-c")
        assert s3.env["AWS_SECRET_ACCESS_KEY"] not in str(caught.value)
        assert s3.env["AWS_ACCESS_KEY_ID"] not in str(caught.value)
        app = create_app(HttpSettings(data_dir=chronicle.settings.data_dir), chronicle=chronicle)
        with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            refused = client.post("/images", data={"id": "img-c"}, files={"file": ("c.jpg", source.read_bytes())})
        assert refused.status_code == 503, refused.text
        assert s3.env["AWS_SECRET_ACCESS_KEY"] not in refused.text
    finally:
        s3.resume()
    assert chronicle.store.read_stream("image-img-c") == []  # nothing recorded for a failed upload

    upload(chronicle, source, image_id="img-c")
    s3.pause()
    try:
        chronicle.drain()
    finally:
        s3.resume()
    row = image_row(chronicle, "img-c")
    assert row["status"] == "failed", row
    failures = list_failures(chronicle.settings.projection_db_path)
    assert len(failures) == 1 and not failures[0]["permanent"] and failures[0]["kind"] == "image"
    assert all(s3.env["AWS_SECRET_ACCESS_KEY"] not in str(f) for f in failures)

    request_retry(chronicle)
    chronicle.drain()
    assert image_row(chronicle, "img-c")["status"] == "completed"


def test_job_retries_through_a_short_outage(chronicle: Chronicle, s3: S3Server, bucket: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The store comes back while the job is still retrying: the image completes without a dead letter."""
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "20")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_BASE", "0.2")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_MAX", "1")
    chronicle.settings.refresh_sections()
    upload(chronicle, photo(tmp_path / "d.jpg", 3), image_id="img-d")
    s3.pause()
    done = threading.Event()
    drainer = threading.Thread(target=lambda: (chronicle.drain(), done.set()))
    drainer.start()
    try:
        wait_until(lambda: chronicle.store.read_stream("image-img-d")[-1].type == "ImageProcessingStarted",
                   timeout=60, what="the media job to start")
    finally:
        s3.resume()
    drainer.join(timeout=240)
    assert done.is_set()
    assert image_row(chronicle, "img-d")["status"] == "completed"
    assert list_failures(chronicle.settings.projection_db_path) == []


def test_object_keys_never_leave_the_store_and_secrets_are_masked() -> None:
    from pipeline.media.blobs import check_key
    from pipeline.media.errors import MediaRejected
    from pipeline.redact import redact

    assert check_key("originals/ab//abc.jpg") == "originals/ab/abc.jpg"
    for bad in ("", "/etc/passwd", "a/../../b", "originals/./x", "x\x00y"):
        with pytest.raises(MediaRejected):
            check_key(bad)
    signed = "http://s3/b/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026&X-Amz-Signature=abcdef0123"
    assert "AKIAIOSFODNN7EXAMPLE" not in redact(signed) and "abcdef0123" not in redact(signed)
