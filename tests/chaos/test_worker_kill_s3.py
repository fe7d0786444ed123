"""Scenario 1 on the multi-host topology: ``kill -9`` of the *remote* media worker mid-image.

Host 1 (API + ``projections`` with the sweeper) and host 2 (``media`` only) have separate data
directories and share Redis, PostgreSQL and an S3 server. The media worker on host 2 is killed while it
encodes; its restarted successor (the supervisor's) finishes the image once the sweeper re-sends the job.
Nothing is lost (the image completes), nothing is recorded twice, and the bucket holds no half-object:
every object under ``variants/`` is a marker or a variant a manifest lists, and each variant decodes.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import orjson
import pytest
from PIL import Image

from pipeline import Chronicle, Settings
from pipeline.media.upload import upload
from tests import s3server
from tests.chaos.common import FAST_ENV, slow_original, stable
from tests.chaos.conftest import Fleet, RedisServer, figure
from tests.chaos.test_worker_kill import image_status
from tests.helpers import wait_until
from tests.s3server import S3Server

pytestmark = pytest.mark.slow
s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module


def test_remote_media_worker_killed_mid_image(own_redis: RedisServer, s3: S3Server, postgres_url: str,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              fleet_factory: list[Fleet]) -> None:
    bucket = s3.bucket()
    host1, host2 = tmp_path / "host1" / "data", tmp_path / "host2" / "data"
    shared = {**FAST_ENV, **s3.env, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EVENT_STORE_URL": postgres_url,
              "CHRONICLE_MEDIA_URL": f"s3://{bucket}/media", "CHRONICLE_MEDIA_STUCK_AFTER": "2",
              "CHRONICLE_MEDIA_WIDTHS": "1024,1600", "CHRONICLE_MEDIA_FORMATS": "avif",
              "CHRONICLE_MEDIA_AVIF_SPEED": "0", "CHRONICLE_MEDIA_TIME_LIMIT": "120", "CHRONICLE_EMBEDDER": "off"}
    for key, value in {**shared, "CHRONICLE_DATA_DIR": str(host1)}.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    first = Fleet({**shared, "CHRONICLE_DATA_DIR": str(host1)}, tmp_path / "logs1")
    second = Fleet({**shared, "CHRONICLE_DATA_DIR": str(host2)}, tmp_path / "logs2")
    fleet_factory.extend([first, second])
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
