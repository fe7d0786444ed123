"""Scenario 4: duplicate delivery. Celery delivers at least once, so the same task message may run
twice (a worker lost after running it, a redelivery after the visibility timeout), and an operator may
redrive a failure that already succeeded. None of it may change anything: same checksum, no extra
outcome events.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.failures.dead_letters import list_failures, request_retry
from pipeline.media.jobs import PROCESS_TASK
from pipeline.media.upload import upload
from pipeline.notify import CATCH_UP_TASK, NullNotifier
from tests.chaos.common import FAST_ENV, small_images, stable
from tests.chaos.conftest import Fleet, RedisServer, figure
from tests.factories import envelope, page
from tests.helpers import wait_until


def outcome_counts(chronicle: Chronicle, image_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in chronicle.store.read_stream(f"image-{image_id}"):
        counts[event.type] = counts.get(event.type, 0) + 1
    return counts


def media_job(chronicle: Chronicle, image_id: str) -> dict:
    """The exact kwargs the reactor sent for this image's upload (same cause → same outcome ids)."""
    [uploaded] = [e for e in chronicle.store.read_stream(f"image-{image_id}") if e.type == "ImageUploaded"]
    d = uploaded.data
    return {"image_id": d["id"], "original_path": d["original_path"], "mime_type": d["mime_type"],
            "hash": d.get("hash"), "cause": uploaded.id}


def test_same_task_messages_delivered_twice_change_nothing(own_redis: RedisServer, data_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           fleet_factory: list[Fleet]) -> None:
    env = {**FAST_ENV, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EMBEDDER": "off"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    quiet = Chronicle(settings, notifier=NullNotifier())  # appends without wake-ups: we send the messages
    from workers.app import create_app

    app = create_app(settings)
    first, fresh = small_images(tmp_path / "img", 2, seed=5)
    quiet.emit_many([page("d1"), envelope("PagePublished", {"id": "d1"})])
    upload(quiet, first, image_id="done")
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("all", "-c", "2")  # two pool processes: the two deliveries can run at once
    state: dict = {}
    app.send_task(CATCH_UP_TASK, kwargs={"position": 0}, queue="projections")
    wait_until(lambda: stable(quiet, embeddings=False, state=state), timeout=90, what="first image processed")
    head, digest = quiet.store.head(), quiet.checksum()
    before = outcome_counts(quiet, "done")

    # (a) an already-processed image's job and a catch-up, each delivered twice with the same task id
    for _ in range(2):
        app.send_task(CATCH_UP_TASK, kwargs={"position": head}, task_id="dup-catch-up", queue="projections")
        app.send_task(PROCESS_TASK, kwargs=media_job(quiet, "done"), task_id="dup-media", queue="media")
    log = worker.log
    wait_until(lambda: log.read_text(errors="replace").count("dup-media] succeeded") == 2
               and log.read_text(errors="replace").count("dup-catch-up] succeeded") == 2,
               timeout=90, what="both deliveries of both messages to run")
    wait_until(lambda: stable(quiet, embeddings=False, state={}) or stable(quiet, embeddings=False, state=state),
               timeout=60, what="settled after the duplicates")
    assert quiet.store.head() == head, "a duplicate delivery recorded new events"
    assert quiet.checksum() == digest
    assert outcome_counts(quiet, "done") == before

    # (b) a fresh image whose job is delivered twice at once (plus the reactor's own dispatch)
    upload(quiet, fresh, image_id="fresh")
    job = media_job(quiet, "fresh")
    for _ in range(2):
        app.send_task(PROCESS_TASK, kwargs=job, task_id="dup-fresh", queue="media")
    app.send_task(CATCH_UP_TASK, kwargs={"position": 0}, queue="projections")
    wait_until(lambda: log.read_text(errors="replace").count("dup-fresh] succeeded") == 2, timeout=90,
               what="both deliveries of the fresh image's job")
    state = {}
    wait_until(lambda: stable(quiet, embeddings=False, state=state), timeout=60, what="fresh image settled")
    counts = outcome_counts(quiet, "fresh")
    assert counts.get("ImageProcessingStarted") == 1 and counts.get("ImageProcessed") == 1, counts
    fleet.stop_all()
    quiet.close()
    figure("duplicate delivery: catch-up and media job delivered twice (same task id), and a fresh image's "
           "job twice at once: head/checksum unchanged, each outcome event recorded once")


@pytest.fixture
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "off")


def failed_then_fixed(chronicle: Chronicle, tmp_path: Path) -> str:
    """An image whose original is missing (transient → failed after its attempts); then it appears."""
    [source] = small_images(tmp_path / "img", 1, seed=9)
    data = upload(chronicle, source, image_id="late")
    original = chronicle.settings.media_dir / data["original_path"]
    hidden = original.with_suffix(".hidden")
    original.rename(hidden)
    chronicle.drain()
    [failure] = list_failures(chronicle.settings.projection_db_path)
    assert failure["status"] == "open" and failure["kind"] == "image"
    hidden.rename(original)  # the world is fixed
    return failure["id"]


def test_redrive_of_an_already_succeeded_failure_changes_nothing(fast_media: None, data_dir: Path,
                                                                 tmp_path: Path) -> None:
    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    failure_id = failed_then_fixed(chronicle, tmp_path)
    assert request_retry(chronicle, [failure_id]).requested == [failure_id]
    chronicle.drain()
    [failure] = list_failures(chronicle.settings.projection_db_path)
    assert failure["status"] == "resolved"
    head, digest, counts = chronicle.store.head(), chronicle.checksum(), outcome_counts(chronicle, "late")
    again = request_retry(chronicle, [failure_id])
    assert again.requested == [] and again.skipped == {failure_id: "already resolved"}
    # the redrive's job message delivered a second time (same kwargs, same cause): no new outcome
    [retry] = [e for e in chronicle.store.iter_all() if e.type == "FailureRetryRequested"]
    from pipeline.jobs.spec import Job

    chronicle.run_job(Job(retry.data["task"], retry.data["queue"], retry.data["kwargs"]))
    chronicle.drain()
    assert chronicle.store.head() == head
    assert chronicle.checksum() == digest
    assert outcome_counts(chronicle, "late") == counts
    chronicle.close()


def test_a_double_redrive_runs_the_job_once(fast_media: None, data_dir: Path, tmp_path: Path) -> None:
    """Two redrives requested before either ran (a double click, two operators): once the first has
    succeeded the second is a redrive of an already-succeeded failure and must change nothing.

    Found by this suite: each redrive used to get a fresh cause (``<failure>:retry:<uuid4>``), so the
    second re-processed the image and re-recorded ImageProcessingStarted + ImageProcessed. Fixed in
    pipeline/failures.py (the request id names the failure event being redriven)."""
    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    failure_id = failed_then_fixed(chronicle, tmp_path)
    assert request_retry(chronicle, [failure_id]).requested == [failure_id]
    assert request_retry(chronicle, [failure_id]).requested == [failure_id]  # still open: not projected yet
    chronicle.drain()
    counts = outcome_counts(chronicle, "late")
    chronicle.close()
    assert counts.get("ImageProcessed") == 1, f"the image was processed again by the second redrive: {counts}"
