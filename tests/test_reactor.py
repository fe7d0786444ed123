"""The side-effect subscriber: wake-ups that differ only by position are coalesced."""

from __future__ import annotations

from pipeline.jobs.spec import Job
from pipeline.reactor import coalesce


def test_wakeups_differing_only_by_position_collapse_to_the_latest() -> None:
    jobs = [Job("embed", "embeddings", {"position": p}) for p in (3, 9, 5)]
    jobs += [Job("media", "media", {"image_id": "a", "position": 4}), Job("media", "media", {"image_id": "b"})]
    assert coalesce(jobs) == [Job("embed", "embeddings", {"position": 9}),
                              Job("media", "media", {"image_id": "a", "position": 4}),
                              Job("media", "media", {"image_id": "b"})]


def test_the_notifier_coalesces_a_burst_into_a_trailing_wakeup_with_the_latest_position(settings) -> None:
    from workers.notifier import CeleryNotifier

    sent: list[int] = []

    class Recording(CeleryNotifier):
        def _publish(self, position: int) -> None:
            sent.append(position)

    notifier = Recording(settings)
    notifier.COALESCE_SECONDS = 60.0  # a window no test run outlasts: only flush() may send the trailer
    for position in range(1, 101):
        notifier.events_appended(position)
    assert sent == [1]  # the first wake-up goes out at once …
    notifier.flush()
    assert sent == [1, 100]  # … the rest of the burst is one message carrying the latest position


def test_content_events_wake_the_embedding_lanes_only_when_embeddings_are_on(chronicle, monkeypatch) -> None:
    """With CHRONICLE_EMBEDDER=off the two wake-ups per batch would be pure waste: each is a Celery message
    and a pool slot taken from the projections (the latency benchmark at 500 events/s went from p50 58 ms
    to 5 ms without them). Their checkpoints stay behind; the sweeper wakes them once switched on."""
    from pipeline.reactor import InlineDispatcher
    from tests.factories import page

    def dispatched() -> set[str]:
        jobs: list = []
        chronicle.project()
        chronicle.reactor(InlineDispatcher(jobs.append)).run_until_idle()
        return {job.task for job in jobs}

    monkeypatch.setenv("CHRONICLE_EMBEDDER", "off")
    chronicle.settings.refresh_sections()
    chronicle.emit_many([page("p1")])
    assert dispatched() == set()
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    chronicle.settings.refresh_sections()
    chronicle.emit_many([page("p2")])
    assert dispatched() == {"chronicle.embeddings.catch_up", "chronicle.vectors.catch_up"}
