"""End to end through real Celery workers: the embedded broker and Redis, and a broker outage."""

from __future__ import annotations

import pytest

from pipeline import Chronicle, Settings
from tests.factories import envelope, page
from tests.helpers import wait_until, worker_process


def caught_up(handle: Chronicle, head: int) -> bool:
    status = handle.status()
    return status["head"] == head and all(p["checkpoint"] == head for p in status["projections"].values())


def story(n: int, prefix: str = "p") -> list[dict]:
    events = []
    for i in range(n):
        events.append(page(f"{prefix}{i}"))
        events.append(envelope("PagePublished", {"id": f"{prefix}{i}"}))
    return events


@pytest.fixture(params=["embedded", "redis", "rabbitmq"])
def broker_env(request: pytest.FixtureRequest, data_dir) -> dict[str, str]:
    if request.param == "embedded":
        return {}
    fixture = "redis_db_url" if request.param == "redis" else "rabbitmq_url"
    return {"CHRONICLE_BROKER_URL": request.getfixturevalue(fixture)}


def test_appends_wake_a_real_worker_which_projects_them(broker_env, data_dir, tmp_path) -> None:
    settings = Settings(data_dir=data_dir, broker_url=broker_env.get("CHRONICLE_BROKER_URL"))
    handle = Chronicle(settings)  # the default notifier publishes to the broker
    # sweeper far in the future: only the wake-up message can make this pass
    env = {**broker_env, "CHRONICLE_SWEEP_INTERVAL": "3600"}
    with worker_process("--concurrency", "2", env=env, log=tmp_path / "worker.log"):
        result = handle.emit_many(story(50))
        wait_until(lambda: caught_up(handle, result.last_position), timeout=90, what="projection of 100 events")
        more = handle.emit_many(story(10, prefix="q"))
        wait_until(lambda: caught_up(handle, more.last_position), timeout=60, what="second wake-up")
    digest = handle.checksum()
    handle.close()
    assert digest["tables"]["pages"]["rows"] == 60
    # what the worker built incrementally equals an in-process build of the same log
    clean = Chronicle.open(Settings(data_dir=tmp_path / "clean", event_store_url=settings.resolved_event_store_url),
                           notify=False)
    clean.drain()
    assert clean.checksum() == digest
    clean.close()


def test_same_task_delivered_twice_applies_once(redis_db_url, data_dir, tmp_path) -> None:
    settings = Settings(data_dir=data_dir, broker_url=redis_db_url)
    handle = Chronicle.open(settings, notify=False)
    result = handle.emit_many(story(20))
    from workers.app import create_app

    app = create_app(settings)
    for _ in range(2):  # the same message id twice: Celery's at-least-once made concrete
        app.send_task("chronicle.catch_up", kwargs={"position": 40}, task_id="same-id", queue="projections")
    with worker_process("--concurrency", "2", env={"CHRONICLE_BROKER_URL": redis_db_url,
                                                   "CHRONICLE_SWEEP_INTERVAL": "3600"}, log=tmp_path / "w.log"):
        wait_until(lambda: caught_up(handle, result.last_position), timeout=90, what="projection")
        wait_until(lambda: app.connection().default_channel.client.llen("projections") == 0, timeout=30,
                   what="both deliveries consumed")
    assert handle.checksum()["tables"]["pages"]["rows"] == 20
    handle.close()


def test_emit_while_the_broker_is_down_keeps_the_event_and_the_sweeper_projects_it(redis_db_url, data_dir,
                                                                                   tmp_path, caplog) -> None:
    down = Settings(data_dir=data_dir, broker_url="redis://127.0.0.1:9/0")  # nothing listens on port 9
    handle = Chronicle(down)
    result = handle.emit_many(story(5))
    assert result.appended == 10
    assert "could not wake the workers" in caplog.text
    assert handle.status()["projections"]["cms"]["lag"] == 10
    # The broker is back (a working one); no wake-up message exists, only the periodic sweeper can help.
    env = {"CHRONICLE_BROKER_URL": redis_db_url, "CHRONICLE_SWEEP_INTERVAL": "0.5"}
    with worker_process("--concurrency", "1", env=env, log=tmp_path / "w.log"):
        wait_until(lambda: caught_up(handle, result.last_position), timeout=90, what="sweeper catch-up")
    handle.close()


def test_status_reports_rabbitmq_queue_depths(rabbitmq_url, data_dir) -> None:
    from pipeline.status import queue_depths
    from workers.app import create_app

    settings = Settings(data_dir=data_dir, broker_url=rabbitmq_url)
    handle = Chronicle.open(settings, notify=False)
    app = create_app(settings)
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    for i in range(3):
        app.send_task("chronicle.media.process", kwargs={"image_id": str(i)}, queue="media")
    app.send_task("chronicle.catch_up", kwargs={}, queue="projections")
    depths = queue_depths(handle)
    assert depths == {"broker": "rabbitmq", "queues": {"projections": 1, "media": 3, "embeddings": 0, "vectors": 0}}
    handle.close()
