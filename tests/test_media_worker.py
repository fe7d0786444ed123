"""The media job through a real Celery worker (embedded broker): the task is on queue ``media``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.media.upload import upload
from tests.conftest import SHARED
from tests.helpers import wait_until, worker_process

PILLOW = SHARED / "testdata" / "images" / "pillow"


def test_media_task_is_registered_on_the_media_queue() -> None:
    from workers.tasks import app

    task = app.tasks["chronicle.media.process"]
    assert task.queue == "media" and task.acks_late
    assert app.tasks["chronicle.media.describe"].queue == "media"


def statuses(settings: Settings) -> dict[str, str]:
    try:
        db = sqlite3.connect(settings.projection_db_path)
        try:
            return dict(db.execute("SELECT filename, status FROM images").fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError:
        return {}


@pytest.mark.slow
def test_a_real_worker_processes_uploads(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "160")
    monkeypatch.setenv("CHRONICLE_MEDIA_AVIF_SPEED", "10")
    settings = Settings(data_dir=data_dir)
    handle = Chronicle(settings)  # publishes wake-ups to the embedded broker
    try:
        with worker_process("--concurrency", "2", env={"CHRONICLE_SWEEP_INTERVAL": "1"},
                            log=tmp_path / "worker.log"):
            for name in ("hopper.jpg", "broken.png", "iss634.gif"):
                upload(handle, PILLOW / name)
            done = {"hopper.jpg": "completed", "broken.png": "failed", "iss634.gif": "completed"}
            wait_until(lambda: statuses(settings) == done, timeout=120, what="media processed by the worker")
    finally:
        handle.close()
