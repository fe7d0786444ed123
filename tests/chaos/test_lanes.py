"""Issue 20: fair lanes in the default worker, crash recovery in about a minute with defaults, no fork
hazard, RabbitMQ as a first-class broker.

Every worker here is the *default* ``chronicle worker`` (no ``-Q``: the lanes of ``workers/lanes.py``)
with default recovery settings (sweep interval 5 s, lease 30 s, visibility timeout 3 600 s,
``CHRONICLE_MEDIA_STUCK_AFTER`` 900 s): the stuck-image net cannot be what recovers the job.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.jobs.leases import Lease, LeaseBook, lease_location
from pipeline.media.upload import upload
from tests.chaos.common import FAST_ENV, pipeline_report, slow_original, small_images
from tests.chaos.conftest import Fleet, RedisServer, child_pids, figure
from tests.chaos.test_worker_kill import image_status
from tests.factories import page
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

FORK_WARNINGS = ("fork support is experimental", "fork hazard")
# what FAST_ENV speeds up that is about recovery: left at the defaults here
RECOVERY_DEFAULTS = ("CHRONICLE_SWEEP_INTERVAL", "CHRONICLE_MEDIA_STUCK_AFTER", "CHRONICLE_LEASE_SECONDS")


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, data_dir: Path) -> str:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("own_redis")
        return server.url
    return request.getfixturevalue("rabbitmq_url")


def test_a_media_job_killed_with_the_whole_default_worker_is_redone_within_a_minute(
        broker: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet]) -> None:

    env = {k: v for k, v in FAST_ENV.items() if k not in RECOVERY_DEFAULTS}
    env.update({"CHRONICLE_BROKER_URL": broker, "CHRONICLE_MEDIA_WIDTHS": "1024,1600",
                "CHRONICLE_MEDIA_FORMATS": "avif", "CHRONICLE_MEDIA_AVIF_SPEED": "0",
                "CHRONICLE_MEDIA_TIME_LIMIT": "120"})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    path = slow_original(tmp_path, seed=5)
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("default")  # no -Q: every lane, the sweeper included
    try:
        upload(chronicle, path, image_id="big")
        chronicle.emit_many([page(f"k{i}") for i in range(20)])  # embedding + vector work too (LanceDB)
        wait_until(lambda: image_status(chronicle, "big") == "processing", timeout=90, what="image processing")
        fleet.env.update({"CHRONICLE_MEDIA_FORMATS": "webp", "CHRONICLE_MEDIA_WIDTHS": "32,64"})  # fast restart
        killed_at = time.monotonic()
        fleet.kill9(worker)  # the whole group: supervisor, every lane, pools, beat, sandbox
        wait_until(lambda: image_status(chronicle, "big") in ("completed", "failed"), timeout=75,
                   what="the killed media job to be redone with default settings")
        recovered = time.monotonic() - killed_at
    except AssertionError:
        print(fleet.log_tail())
        raise
    finally:
        fleet.stop_all()
    assert image_status(chronicle, "big") == "completed"
    assert recovered < 60, f"redone {recovered:.1f}s after the kill"
    log = worker.log.read_text(errors="replace")
    assert "lanes projections" in log
    for warning in FORK_WARNINGS:
        assert warning not in log, f"the worker log contains {warning!r}"
    started = [e for e in chronicle.store.read_stream("image-big") if e.type == "ImageProcessingStarted"]
    assert len(started) == 1, "the re-run recorded its start once"
    chronicle.close()
    figure(f"default worker kill -9 mid-image on {broker.split(':')[0]}: redone {recovered:.1f}s after the kill "
           f"(defaults: sweep 5 s, lease 30 s; no LanceDB fork warning in the log)")


def _leases(chronicle: Chronicle) -> list[Lease]:
    where = lease_location(chronicle.settings)
    if isinstance(where, Path) and not where.exists():
        return []
    book = LeaseBook(where)
    try:
        return book.all()
    finally:
        book.close()


def _lane_pool_child(worker_pid: int, queues: str) -> int | None:
    """The pool process of the lane serving ``queues`` under a default worker (supervisor → lane →
    pool child), or None while it is not started yet."""
    for lane in child_pids(worker_pid):
        try:
            argv = Path(f"/proc/{lane}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if queues.encode() in argv:
            children = child_pids(lane)
            return children[0] if children else None
    return None


def test_a_media_job_received_but_not_started_when_the_worker_dies_is_redone_within_a_minute(
        own_redis: RedisServer, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet]) -> None:
    """The window the fair-lanes scenario's CI timeout fell into: Redis has handed the media message to
    the worker (it sits in the ``unacked`` hash) but the job has not started, so the pool process has
    written no lease, when the whole worker is ``kill -9``-ed. Here the media lane's pool process is
    stopped (SIGSTOP) so the message is received and can never start. With defaults, the restarted
    worker must redo it within a minute: the main process leases it on receipt
    (``pipeline.jobs.leases.hold_on_receipt``). Without that, only the 900 s stuck-image net (or the
    3 600 s visibility timeout) would send it again."""
    env = {k: v for k, v in FAST_ENV.items() if k not in RECOVERY_DEFAULTS}
    env.update({"CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EMBEDDER": "off"})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("default")
    try:
        assert worker.proc is not None
        proc = worker.proc
        wait_until(lambda: "media@" in worker.log.read_text(errors="replace") and " ready." in
                   worker.log.read_text(errors="replace").split("media@", 1)[1], timeout=90, what="the media lane")
        pool = wait_until(lambda: _lane_pool_child(proc.pid, "media"), timeout=30, what="the media pool process")
        os.kill(pool, signal.SIGSTOP)  # it can receive nothing from its lane any more
        upload(chronicle, small_images(tmp_path / "photos", 1, seed=7)[0], image_id="held")
        wait_until(lambda: "chronicle.media.process[" in worker.log.read_text(errors="replace"), timeout=60,
                   what="the media lane to receive the job", explain=lambda: pipeline_report(chronicle))
        # the log line comes just before the hand-off to the pool (and the receipt lease): wait for both
        wait_until(lambda: any(lease.task == "chronicle.media.process" for lease in _leases(chronicle)),
                   timeout=10, what="the media lane's main process to lease the job it received",
                   explain=lambda: pipeline_report(chronicle))
        assert image_status(chronicle, "held") == "pending"
        killed_at = time.monotonic()
        fleet.kill9(worker)
        wait_until(lambda: image_status(chronicle, "held") == "completed", timeout=75,
                   what="the job received but not started by the killed worker to be redone",
                   explain=lambda: pipeline_report(chronicle))
        recovered = time.monotonic() - killed_at
    except AssertionError:
        print(fleet.log_tail())
        raise
    finally:
        fleet.stop_all()
    assert recovered < 60, f"redone {recovered:.1f}s after the kill"
    chronicle.close()
    figure(f"media job received but not started, whole default worker kill -9 on Redis: redone {recovered:.1f}s "
           f"after the kill (defaults: sweep 5 s, lease 30 s, stuck-image net 900 s)")
