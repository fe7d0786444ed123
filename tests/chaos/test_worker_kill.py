"""Scenario 1: ``kill -9`` of projector / media / embedding workers at random points while events flow.

Afterwards the live read model (``chronicle checksum``) equals a clean replay of the same log, every
image is ``completed`` or ``failed`` (none left ``pending``/``processing``), and every embeddable item
has exactly one vector row. Bounded: ~2 000 events and 3 kills; full (``CHAOS_FULL=1``): 10 000 events
and 20 kills.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.media.upload import upload
from pipeline.sample import generate
from tests.chaos.common import (
    FAST_ENV,
    clean_replay_checksum,
    differing_tables,
    live_checksum_cli,
    slow_original,
    small_images,
    stable,
)
from tests.chaos.conftest import FULL, Fleet, RedisServer, figure
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

EVENTS = 10_000 if FULL else 2_000
KILLS = 20 if FULL else 2
IMAGES = 200 if FULL else 24
RATE = 200.0 if FULL else 250.0  # events/s offered while the kills happen
BATCH = 25
SETTLE_TIMEOUT = 600 if FULL else 90


def test_kill_9_workers_while_events_flow(own_redis: RedisServer, data_dir: Path, tmp_path: Path, store_url: str,
                                          monkeypatch: pytest.MonkeyPatch, fleet_factory: list[Fleet]) -> None:
    """Runs with the log on SQLite and on PostgreSQL (``store_url``): same workers, same assertions."""
    seed = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))
    rng = random.Random(seed)
    env = {**FAST_ENV, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_MEDIA_STUCK_AFTER": "4",
           "CHRONICLE_EVENT_STORE_URL": store_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    chronicle = Chronicle(settings)  # the default notifier: wake-ups go through Redis
    images = small_images(tmp_path / "originals", IMAGES, seed=seed)

    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    fleet.add("projections", "-Q", "projections", "--beat", "-c", "1")
    fleet.add("media", "-Q", "media", "-c", "1")
    fleet.add("embeddings", "-Q", "embeddings,vectors", "-c", "1")

    events = list(generate(EVENTS, seed=seed % 1000))
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    kill_at = sorted(rng.sample(range(2, len(batches)), KILLS))
    image_at = sorted(rng.choices(range(len(batches)), k=IMAGES))
    started = time.monotonic()
    killed: Counter[str] = Counter()
    state: dict = {}
    try:
        image_iter = iter(images)
        for i, batch in enumerate(batches):
            # pace the load (this is the traffic shape, not synchronisation)
            due = started + i * BATCH / RATE
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            fleet.supervise()
            chronicle.emit_many(batch)
            for _ in range(image_at.count(i)):
                path = next(image_iter)
                upload(chronicle, path, image_id=f"img-{path.stem}", site_id="site-1")
            for _ in range(kill_at.count(i)):
                worker = fleet.workers[rng.choice(sorted(fleet.workers))]
                what = fleet.kill9(worker, child_only=rng.random() < 0.3)
                killed[f"{worker.name}:{what}"] += 1
        flow_seconds = time.monotonic() - started
        snapshot = wait_until(lambda: not fleet.supervise() and stable(chronicle, embeddings=True, state=state),
                              timeout=SETTLE_TIMEOUT,
                              what="every projection, image and embedding to settle after the kills")
        settle_seconds = time.monotonic() - started - flow_seconds
    except AssertionError as exc:
        print(fleet.log_tail())
        raise AssertionError(f"{exc} (seed {seed}); still waiting for: {state.get('waiting_for')}") from exc
    finally:
        fleet.stop_all()

    live = live_checksum_cli()
    clean = clean_replay_checksum(chronicle, tmp_path / "clean.db")
    assert live["sha256"] == clean["sha256"], f"live != clean replay (seed {seed}): {differing_tables(live, clean)}"

    images_by_status = snapshot["images"]
    assert set(images_by_status) <= {"completed", "failed"}
    assert sum(images_by_status.values()) == IMAGES
    assert images_by_status.get("completed", 0) == IMAGES, f"generated images must all complete: {images_by_status}"

    # every embedding exactly once: one LanceDB row per embedded item, no duplicated id, none missing
    for kind, (ids, ledger) in snapshot["vectors"].items():
        assert len(ids) == len(set(ids)), f"{kind}: duplicated vector rows"
        assert sorted(ids) == sorted(ledger), f"{kind}: {len(ids)} vector rows for {len(ledger)} embedded items"
    assert sum(len(ledger) for _, ledger in snapshot["vectors"].values()) > 0
    chronicle.close()
    figure(f"worker kill, log on {store_url.split(':')[0]}: {EVENTS} events + {IMAGES} images at {RATE:.0f} ev/s, "
           f"kills {dict(killed)} "
           f"(seed {seed}), workers that exited by themselves and were restarted: {fleet.self_exits}; "
           f"flow {flow_seconds:.1f}s, settled {settle_seconds:.1f}s later; head "
           f"{snapshot['head']}; images {images_by_status}; checksum live == clean replay")


def test_media_worker_killed_mid_image_is_recovered(own_redis: RedisServer, data_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    fleet_factory: list[Fleet]) -> None:
    """Deterministic version of the stuck-``processing`` finding: the media worker is ``kill -9``-ed
    while it is encoding an image (slow AVIF, so the kill lands mid-job every time). The message sits
    in Redis' ``unacked`` hash until the 3 600 s visibility timeout; only the sweeper's stuck-image
    recovery (``pipeline/media/recovery.py``) can finish the image."""

    slow = {**FAST_ENV, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_MEDIA_STUCK_AFTER": "2",
            "CHRONICLE_MEDIA_WIDTHS": "1024,1600", "CHRONICLE_MEDIA_FORMATS": "avif",
            "CHRONICLE_MEDIA_AVIF_SPEED": "0", "CHRONICLE_MEDIA_TIME_LIMIT": "120"}
    for key, value in slow.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    path = slow_original(tmp_path, seed=3)
    fleet = Fleet(slow, tmp_path / "logs")
    fleet_factory.append(fleet)
    fleet.add("projections", "-Q", "projections", "--beat", "-c", "1")
    media = fleet.add("media", "-Q", "media", "-c", "1")
    try:
        upload(chronicle, path, image_id="big")
        wait_until(lambda: image_status(chronicle, "big") == "processing", timeout=90, what="image processing")
        fleet.env.update({"CHRONICLE_MEDIA_FORMATS": "webp", "CHRONICLE_MEDIA_WIDTHS": "32,64"})  # fast restart
        killed_at = time.monotonic()
        fleet.kill9(media)  # whole group: main process, pool child and sandbox helper
        wait_until(lambda: image_status(chronicle, "big") in ("completed", "failed"), timeout=90,
                   what="the image a killed media worker was processing to finish (stuck in processing?)")
        recovered = time.monotonic() - killed_at
        state: dict = {}
        wait_until(lambda: stable(chronicle, embeddings=False, state=state), timeout=60, what="settled")
    except AssertionError:
        print(fleet.log_tail())
        raise
    finally:
        fleet.stop_all()
    assert image_status(chronicle, "big") == "completed"
    started = [e for e in chronicle.store.read_stream("image-big") if e.type == "ImageProcessingStarted"]
    assert len(started) == 1, "the re-sent job recorded nothing twice"
    chronicle.close()
    figure(f"media worker kill -9 mid-image: recovered by the sweeper {recovered:.1f}s after the kill "
           f"(CHRONICLE_MEDIA_STUCK_AFTER=2; Redis would redeliver only after the 3600 s visibility timeout)")


def image_status(chronicle: Chronicle, image_id: str) -> str | None:
    from db.engine import connect

    conn = connect(chronicle.settings.projection_db_path)
    try:
        row = conn.execute("SELECT status FROM images WHERE id=?", (image_id,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()
