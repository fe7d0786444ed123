"""The event-log contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from pipeline.envelope import validate_envelope
from pipeline.errors import ConcurrencyConflict, InvalidEvent, UnknownEventType
from pipeline.store_sql import SQLEventStore
from tests.factories import envelope, page


@pytest.fixture
def store(store_url: str) -> Iterator[SQLEventStore]:
    s = SQLEventStore(store_url)
    yield s
    s.close()


def new(*envelopes: dict) -> list:
    return [validate_envelope(e, index=i) for i, e in enumerate(envelopes)]


def test_positions_are_global_and_versions_per_stream(store: SQLEventStore) -> None:
    result = store.append(new(page("a"), page("b"), envelope("PageUpdated", {"id": "a", "title": "A2"})))
    assert (result.appended, result.duplicates, result.last_position) == (3, 0, 3)
    events = store.read()
    assert [e.position for e in events] == [1, 2, 3]
    assert [(e.stream, e.version) for e in events] == [("page-a", 1), ("page-b", 1), ("page-a", 2)]
    assert store.head() == 3
    assert store.stream_version("page-a") == 2
    assert [e.type for e in store.read_stream("page-a")] == ["PageCreated", "PageUpdated"]
    assert events[0].recorded_at.endswith("Z")


def test_append_with_same_id_is_a_reported_duplicate(store: SQLEventStore) -> None:
    first = store.append(new(page("a", id="evt-1")))
    again = store.append(new(page("a", id="evt-1"), page("b", id="evt-2")))
    assert first.positions == [1]
    assert (again.appended, again.duplicates, again.positions) == (1, 1, [1, 2])
    assert store.head() == 2


def test_duplicate_id_wins_over_a_stale_expected_version(store: SQLEventStore) -> None:
    store.append(new(page("a", id="evt-1", expected_version=0)))
    store.append(new(envelope("PageUpdated", {"id": "a", "title": "x"})))
    # Retrying the first request (its expected_version is now stale) is still just a duplicate.
    retry = store.append(new(page("a", id="evt-1", expected_version=0)))
    assert (retry.appended, retry.duplicates) == (0, 1)


def test_duplicate_within_one_batch_is_written_once(store: SQLEventStore) -> None:
    result = store.append(new(page("a", id="same"), page("a", id="same")))
    assert (result.appended, result.duplicates, result.positions) == (1, 1, [1, 1])


def test_expected_version_conflict_rejects_the_whole_batch(store: SQLEventStore) -> None:
    store.append(new(page("a")))
    batch = new(page("b"), envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=5))
    with pytest.raises(ConcurrencyConflict, match="expected version 5, stream is at 1") as info:
        store.append(batch)
    assert info.value.index == 1
    assert store.head() == 1
    assert store.stream_version("page-b") == 0


def test_a_single_event_append_checks_its_expected_version(store: SQLEventStore) -> None:
    assert store.append(new(page("a", expected_version=0))).positions == [1]
    with pytest.raises(ConcurrencyConflict, match="expected version 0, stream is at 1"):
        store.append(new(envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=0)))
    assert store.append(new(envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=1))).positions == [2]
    assert store.head() == 2 and store.stream_version("page-a") == 2


def test_expected_version_counts_earlier_events_of_the_same_batch(store: SQLEventStore) -> None:
    result = store.append(new(page("a", expected_version=0),
                              envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=1)))
    assert result.appended == 2


def test_validation_rejects_unknown_types_and_bad_payloads_with_the_field() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'PageExploded'"):
        validate_envelope(envelope("PageExploded", {}))
    with pytest.raises(InvalidEvent) as info:
        validate_envelope(envelope("PageCreated", {"id": "p", "site_id": "s", "slug": "x"}), index=3)
    assert info.value.field == "data.title" and info.value.index == 3
    with pytest.raises(InvalidEvent, match="above the 2048-byte limit"):
        validate_envelope(envelope("PageCreated", {"id": "p", "site_id": "s", "title": "t" * 2000, "slug": "s" * 200}),
                          max_bytes=2048)


def test_invalid_event_in_a_batch_writes_nothing(chronicle, store_url: str) -> None:
    from pipeline import Chronicle, Settings
    from pipeline.notify import NullNotifier

    handle = Chronicle(Settings(data_dir=chronicle.settings.data_dir, event_store_url=store_url),
                       notifier=NullNotifier())
    try:
        with pytest.raises(InvalidEvent):
            handle.emit_many([page("a"), envelope("PageCreated", {"id": "b"})])
        with pytest.raises(InvalidEvent):  # the streaming path rolls back what it already inserted
            handle.emit_many(iter([page("c"), envelope("PageCreated", {"id": "d"})]))
        assert handle.store.head() == 0
    finally:
        handle.close()


def test_subscription_checkpoint_compare_and_set(store: SQLEventStore) -> None:
    assert store.subscription_position("reactor") == 0
    assert store.set_subscription_position("reactor", 5, expected=0)
    assert not store.set_subscription_position("reactor", 9, expected=0)
    assert store.set_subscription_position("reactor", 9, expected=5)
    assert store.subscription_position("reactor") == 9


def test_iter_all_streams_in_bounded_pages(store: SQLEventStore) -> None:
    store.append(new(*[page(str(i)) for i in range(25)]))
    assert [e.position for e in store.iter_all(after=3, until=20, batch=4)] == list(range(4, 21))


def _emit_many_times(url: str, worker: int, batches: int) -> None:
    s = SQLEventStore(url)
    for b in range(batches):
        s.append(new(page(f"w{worker}-b{b}-0"), page(f"w{worker}-b{b}-1")))
    s.close()


def test_two_emitting_processes_get_gapless_positions(store: SQLEventStore, store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_emit_many_times, args=(store_url, w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    events = list(store.iter_all())
    assert [e.position for e in events] == list(range(1, 161))
    assert len({e.stream for e in events}) == 160
