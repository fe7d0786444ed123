"""The rooms hold: subsystems plug in through the registry, the kernel stays free of features and Celery,
subscribers are one abstraction that status and the sweeper see, errors decide by class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.errors import (
    ChronicleError,
    ConcurrencyConflict,
    InvalidEvent,
    PermanentError,
    StoreUnavailable,
    TransientError,
    is_permanent,
)
from pipeline.jobs.runner import run_sweep_hooks
from pipeline.jobs.spec import Job, JobSpec
from pipeline.registry import RegistrationError, Registry
from pipeline.subsystems import build_registry
from tests.factories import page

REPO = Path(__file__).resolve().parent.parent


def test_a_drain_with_embeddings_off_loads_no_lancedb_pyarrow_or_celery(data_dir: Path) -> None:
    # Given a fresh process with embeddings off and no broker
    code = (
        "import sys\n"
        "from pipeline import Chronicle, Settings\n"
        "from pipeline.notify import NullNotifier\n"
        "c = Chronicle(Settings(), notifier=NullNotifier())\n"
        "c.emit('PageCreated', {'id': 'a', 'site_id': 's', 'title': 'T', 'slug': 't'})\n"
        "c.drain()\n"
        "print(sorted(m for m in ('lancedb', 'pyarrow', 'celery', 'torch', 'workers') if m in sys.modules))\n"
    )
    # When it emits and drains
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    # Then none of the heavy or Celery modules was imported
    assert out.stdout.strip() == "[]", out.stderr


def test_every_subsystem_contributes_through_one_registry(chronicle: Chronicle) -> None:
    registry = chronicle.registry
    assert set(registry.projections) == {"cms", "media", "embeddings", "failures"}
    assert set(registry.subscribers) == {"reactor", "embeddings", "vectors"}
    assert {"chronicle.media.process", "chronicle.embeddings.catch_up", "chronicle.vectors.catch_up"} <= set(
        registry.jobs)
    # media and embeddings feed the failures projection with their own outcomes
    failures = registry.projections["failures"].handlers
    assert {"JobFailed", "ImageProcessingFailed", "EmbeddingsFailed", "ImageDeleted"} <= set(failures)


def test_two_handles_never_share_registry_state(settings: Settings) -> None:
    first, second = build_registry(settings), build_registry(settings)
    assert first.subscribers["reactor"] is not second.subscribers["reactor"]
    first.add_job(JobSpec("test.only-here", "media", lambda _ctx: None))
    assert "test.only-here" not in second.jobs


def test_a_name_claimed_twice_is_refused() -> None:
    registry = Registry()
    registry.add_job(JobSpec("x", "media", lambda _ctx: None))
    with pytest.raises(RegistrationError, match="job 'x' registered twice"):
        registry.add_job(JobSpec("x", "media", lambda _ctx: None))


def test_the_failures_projection_names_no_other_subsystem() -> None:
    source = (REPO / "pipeline" / "failures" / "projection.py").read_text()
    for foreign in ("chronicle.media", "chronicle.embeddings", "Image", "Embedding", '"media"', '"embeddings"'):
        assert foreign not in source


def test_status_reports_every_subscriber_and_inactive_ones_do_not_lag(chronicle: Chronicle) -> None:
    # Given embeddings off (the test default) and some content
    chronicle.emit_many([page("a"), page("b")])
    chronicle.drain()
    subscribers = chronicle.status()["subscribers"]
    # Then every registered subscriber is listed; the embedding ones are behind on purpose, not lagging
    assert set(subscribers) == {"reactor", "embeddings", "vectors"}
    assert subscribers["reactor"] == {"checkpoint": 2, "lag": 0, "lag_seconds": 0.0, "active": True}
    assert subscribers["embeddings"] == {"checkpoint": 0, "lag": 0, "lag_seconds": 0.0, "active": False}


def test_the_sweeper_wakes_a_lagging_subscriber_without_a_special_hook(chronicle: Chronicle,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Given embeddings on, and content whose embedding wake-up was lost (the reactor passed it)
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    chronicle.settings.refresh_sections()
    chronicle.emit_many([page("a")])
    chronicle.project()
    chronicle.reactor(type("Lost", (), {"dispatch": lambda self, jobs: None})()).run_until_idle()
    # When the sweep hooks run
    woken: list[Job] = []
    run_sweep_hooks(chronicle, woken.extend)
    # Then both embedding subscribers get their catch-up, to the head
    assert {(j.task, j.kwargs.get("position")) for j in woken} >= {("chronicle.embeddings.catch_up", 1),
                                                                ("chronicle.vectors.catch_up", 1)}


def test_permanent_and_transient_are_classes() -> None:
    assert is_permanent(InvalidEvent("bad")) and is_permanent(ConcurrencyConflict("s", 0, 1))
    assert not is_permanent(StoreUnavailable("event log", "database is locked"))
    assert not is_permanent(OSError("disk hiccup")) and is_permanent(KeyError("missing"))
    for error in (PermanentError, TransientError):
        assert issubclass(error, ChronicleError)


def test_a_chronicle_handle_needs_no_celery_notifier_by_configuration(data_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_NOTIFIER", "null")
    handle = Chronicle(Settings())
    try:
        assert type(handle.notifier).__name__ == "NullNotifier"
    finally:
        handle.close()


def test_every_pipeline_module_sits_in_a_layer_of_the_import_contract() -> None:
    """A module missing from `.importlinter`'s layers would escape the one-way rule unnoticed."""
    contract = (REPO / ".importlinter").read_text()
    modules = {p.stem if p.is_file() else p.name for p in (REPO / "pipeline").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    missing = sorted(m for m in modules if f"pipeline.{m}" not in contract)
    assert not missing, f"add these to a layer in .importlinter: {missing}"
