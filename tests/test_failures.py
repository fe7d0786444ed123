"""Dead letters: failures recorded as events, listed, redriven; retries in drain and in real workers."""

from __future__ import annotations

import orjson
import pytest

from pipeline import Chronicle, Settings
from pipeline.failures.dead_letters import list_failures, request_retry
from pipeline.status import full_status
from tests.factories import envelope, page
from tests.helpers import cli, wait_until, worker_process

PLUGIN = "tests.jobs_for_tests"


@pytest.fixture
def with_test_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_JOB_MODULES", f'["{PLUGIN}"]')
    monkeypatch.setenv("CHRONICLE_RETRY_BACKOFF_BASE", "0.2")


def publish(chronicle: Chronicle, page_id: str) -> None:
    chronicle.emit_many([page(page_id), envelope("PagePublished", {"id": page_id})])


def test_a_permanent_failure_is_recorded_once_with_its_reason(with_test_jobs, chronicle: Chronicle) -> None:
    publish(chronicle, "broken-1")
    chronicle.drain()
    [failure] = list_failures(chronicle.settings.projection_db_path)
    assert failure["task"] == "chronicle.test.broken" and failure["permanent"] is True
    assert failure["attempts"] == 1  # permanent: not retried
    assert "NotAnImage: page broken-1 can never be processed" in failure["error"]
    assert failure["kwargs"] == {"page_id": "broken-1"} and failure["status"] == "open"
    listed = orjson.loads(cli("failures", "list", "--json", check=True).stdout)
    assert [f["id"] for f in listed] == [failure["id"]]
    status = orjson.loads(cli("status", "--json", check=True).stdout)
    assert status["failures"] == {"open": 1}


def test_transient_failures_retry_then_dead_letter_then_redrive_resolves(with_test_jobs,
                                                                         chronicle: Chronicle) -> None:
    from tests.jobs_for_tests import marker

    marker(chronicle).write_text("broken")
    publish(chronicle, "flaky-1")
    chronicle.drain()
    [failure] = list_failures(chronicle.settings.projection_db_path)
    assert (failure["permanent"], failure["attempts"], failure["status"]) == (False, 3, "open")
    marker(chronicle).unlink()  # the world is fixed
    assert request_retry(chronicle, [failure["id"]]).requested == [failure["id"]]
    assert list_failures(chronicle.settings.projection_db_path)[0]["status"] == "open"  # not yet projected
    chronicle.drain()
    [after] = list_failures(chronicle.settings.projection_db_path)
    assert (after["status"], after["retries"]) == ("resolved", 1)
    assert (chronicle.settings.resolved_data_dir / "done-flaky-1").exists()
    head = chronicle.store.head()
    again = request_retry(chronicle, [failure["id"]])  # redrive of a resolved failure: nothing happens
    assert again.requested == [] and again.skipped == {failure["id"]: "already resolved"}
    assert chronicle.store.head() == head


def test_an_unknown_failure_id_is_a_clear_error(with_test_jobs, chronicle: Chronicle) -> None:
    out = cli("failures", "retry", "job:nope")
    assert out.returncode == 1 and "no failure with id 'job:nope'" in out.stderr.decode()


def test_status_json_has_every_section(chronicle: Chronicle) -> None:
    chronicle.emit_many([page("a")])
    chronicle.project()
    status = full_status(chronicle)
    assert {"head", "projections", "subscribers", "queues", "images", "failures", "embeddings"} <= set(status)
    assert status["queues"]["broker"] == "embedded"
    assert set(status["queues"]["queues"]) == {"projections", "media", "embeddings", "vectors"}
    out = cli("status", "--check", "--max-lag", "0")
    assert out.returncode == 1 and "unhealthy: lag" in out.stderr.decode()  # the reactor has not run
    chronicle.drain()
    assert cli("status", "--check", "--max-lag", "0").returncode == 0


def test_celery_retries_then_dead_letters_then_redrive_on_real_redis_workers(with_test_jobs, redis_db_url, data_dir,
                                                                            tmp_path) -> None:
    settings = Settings(data_dir=data_dir, broker_url=redis_db_url)
    handle = Chronicle(settings)
    from tests.jobs_for_tests import marker

    marker(handle).parent.mkdir(parents=True, exist_ok=True)
    marker(handle).write_text("broken")
    env = {"CHRONICLE_BROKER_URL": redis_db_url, "CHRONICLE_SWEEP_INTERVAL": "0.5"}
    with worker_process("--concurrency", "2", env=env, log=tmp_path / "worker.log"):
        publish(handle, "flaky-2")
        publish(handle, "broken-2")
        wait_until(lambda: len(list_failures(settings.projection_db_path)) == 2 and handle.status()["projections"]
                   ["failures"]["lag"] == 0, timeout=120, what="two dead letters")
        by_task = {f["task"]: f for f in list_failures(settings.projection_db_path)}
        assert by_task["chronicle.test.flaky"]["attempts"] == 2  # max_retries=1: one retry through Celery
        assert by_task["chronicle.test.broken"]["attempts"] == 1
        marker(handle).unlink()
        out = cli("failures", "retry", "--all", env=env, check=True)
        assert len(orjson.loads(out.stdout)["requested"]) == 2
        wait_until(lambda: {f["task"]: f["status"] for f in list_failures(settings.projection_db_path)} ==
                   {"chronicle.test.flaky": "resolved", "chronicle.test.broken": "open"}, timeout=120,
                   what="flaky resolved by the redrive, broken failing again")
    assert (data_dir / "done-flaky-2").exists()
    handle.close()


def test_deleting_an_image_closes_its_dead_letters(chronicle: Chronicle) -> None:
    """A failed image that is then deleted has nothing left to redo: its row does not stay open."""
    chronicle.emit_many([
        {"type": "ImageUploaded", "data": {"id": "img", "filename": "x.jpg", "original_path": "originals/x.jpg",
                                           "mime_type": "image/jpeg", "size": 3}},
        {"type": "ImageProcessingFailed", "data": {"id": "img", "reason": "not an image", "permanent": True}},
        {"type": "EmbeddingsFailed", "data": {"model": "m", "dimension": 4, "error": "400", "items": [
            {"kind": "image", "id": "img", "content_hash": "d" * 64}]}},
    ])
    chronicle.project()
    assert {f["id"]: f["status"] for f in list_failures(chronicle.settings.projection_db_path)} == {
        "image:img": "open", "embedding:m:4:image:img": "open"}
    chronicle.emit("ImageDeleted", {"id": "img"})
    chronicle.project()
    assert {f["status"] for f in list_failures(chronicle.settings.projection_db_path)} == {"resolved"}
