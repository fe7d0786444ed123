"""The event-log contract: one abstract test case, subclassed once per backend.

``EventStoreContract`` holds every promise an ``EventStore`` makes; ``TestSQLiteEventStore``,
``TestPostgresEventStore`` and ``TestInMemoryEventStore`` only say how to create their store (the way
eventsourcing's ``ApplicationRecorderTestCase`` is subclassed per recorder). The ``…Errors`` cases check
that each SQL backend translates "the store cannot be used now" into ``StoreUnavailable``, writes
nothing from the refused call and accepts the same call once the store is back.
"""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from pipeline.envelope import NewEvent, validate_envelope
from pipeline.errors import ConcurrencyConflict, InvalidEvent, StoreUnavailable, UnknownEventType, is_permanent
from pipeline.events import CATALOGUE
from pipeline.store import (
    EventStore,
    InMemoryEventStore,
    PostgresEventStore,
    SQLiteEventStore,
    open_store,
)
from pipeline.store.sql import schema
from pipeline.subsystems import load_catalogue
from tests.factories import envelope, page
from tests.helpers import cli

load_catalogue()  # spawned writers import this module alone: they need the CMS event types too


def new(*envelopes: dict) -> list[NewEvent]:
    return [validate_envelope(e, index=i) for i, e in enumerate(envelopes)]


def _emit_many_times(url: str, worker: int, batches: int) -> None:
    s = open_store(url)
    for b in range(batches):
        s.append(new(page(f"w{worker}-b{b}-0"), page(f"w{worker}-b{b}-1")))
    s.close()


class EventStoreContract(ABC):
    """What every backend promises. Not collected itself (no ``Test`` prefix); subclasses are."""

    #: The URL ``open_store`` and ``Chronicle`` open this backend by (set by ``prepare``).
    url: str
    data_dir: Path

    @abstractmethod
    def create_store(self) -> EventStore:
        """A store on an empty log (every call: the same log)."""

    def prepare(self, request: pytest.FixtureRequest) -> None:  # noqa: B027 - optional hook
        """Set ``url`` up for this test (a file, a fresh schema…)."""

    def start_writers(self, workers: int, batches: int) -> None:
        """Run ``workers`` concurrent writers of ``batches`` two-event batches each, to completion. The
        SQL backends use processes (separate connections, the real lock); in memory, threads."""
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_emit_many_times, args=(self.url, w, batches)) for w in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0

    @pytest.fixture(autouse=True)
    def _backend(self, request: pytest.FixtureRequest, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.prepare(request)

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        s = self.create_store()
        yield s
        s.close()

    # -- the contract --------------------------------------------------------------------------------

    def test_open_store_picks_this_backend_by_the_url_scheme(self, store: EventStore) -> None:
        with open_store(self.url) as opened:
            assert type(opened) is type(store)

    def test_positions_are_global_and_versions_per_stream(self, store: EventStore) -> None:
        result = store.append(new(page("a"), page("b"), envelope("PageUpdated", {"id": "a", "title": "A2"})))
        assert (result.appended, result.duplicates, result.last_position) == (3, 0, 3)
        events = store.read()
        assert [e.position for e in events] == [1, 2, 3]
        assert [(e.stream, e.version) for e in events] == [("page-a", 1), ("page-b", 1), ("page-a", 2)]
        assert store.head() == 3
        assert store.stream_version("page-a") == 2
        assert [e.type for e in store.read_stream("page-a")] == ["PageCreated", "PageUpdated"]
        assert events[0].recorded_at.endswith("Z")

    def test_first_metadata_is_each_streams_first_event_in_one_call(self, store: EventStore) -> None:
        store.append(new({**page("a"), "metadata": {"actor": "first"}}, page("b"),
                         envelope("PageUpdated", {"id": "a", "title": "A2"}, metadata={"actor": "second"})))
        first = store.first_metadata(["page-a", "page-missing", "page-b", "page-a"])
        assert set(first) == {"page-a", "page-b"}  # a stream without events is left out
        assert orjson.loads(first["page-a"])["actor"] == "first"
        many = [f"page-m{i}" for i in range(1_200)]  # more than one IN list's worth
        store.append(new(*(page(f"m{i}") for i in range(1_200))))
        assert set(store.first_metadata(many)) == set(many)

    def test_append_with_same_id_is_a_reported_duplicate(self, store: EventStore) -> None:
        first = store.append(new(page("a", id="evt-1")))
        again = store.append(new(page("a", id="evt-1"), page("b", id="evt-2")))
        assert first.positions == [1]
        assert (again.appended, again.duplicates, again.positions) == (1, 1, [1, 2])
        assert store.head() == 2

    def test_duplicate_id_wins_over_a_stale_expected_version(self, store: EventStore) -> None:
        store.append(new(page("a", id="evt-1", expected_version=0)))
        store.append(new(envelope("PageUpdated", {"id": "a", "title": "x"})))
        # Retrying the first request (its expected_version is now stale) is still just a duplicate.
        retry = store.append(new(page("a", id="evt-1", expected_version=0)))
        assert (retry.appended, retry.duplicates) == (0, 1)

    def test_duplicate_within_one_batch_is_written_once(self, store: EventStore) -> None:
        result = store.append(new(page("a", id="same"), page("a", id="same")))
        assert (result.appended, result.duplicates, result.positions) == (1, 1, [1, 1])

    def test_expected_version_conflict_rejects_the_whole_batch(self, store: EventStore) -> None:
        store.append(new(page("a")))
        batch = new(page("b"), envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=5))
        with pytest.raises(ConcurrencyConflict, match="expected version 5, stream is at 1") as info:
            store.append(batch)
        assert info.value.index == 1
        assert store.head() == 1
        assert store.stream_version("page-b") == 0

    def test_a_batch_retry_is_duplicates_whatever_its_expected_versions(self, store: EventStore) -> None:
        # The batch path (SQLite inserts optimistically first): a retried batch whose expected versions
        # are stale by now is still only duplicates, and a new event next to them is appended.
        store.append(new(page("a", id="evt-1", expected_version=0), page("b", id="evt-2", expected_version=0)))
        store.append(new(envelope("PageUpdated", {"id": "a", "title": "x"})))
        retry = store.append(new(page("a", id="evt-1", expected_version=0), page("b", id="evt-2", expected_version=0),
                                 envelope("PageUpdated", {"id": "b", "title": "y"}, id="evt-3", expected_version=1)))
        assert (retry.appended, retry.duplicates, retry.positions) == (1, 2, [1, 2, 4])
        assert [(e.stream, e.version) for e in store.read()] == [("page-a", 1), ("page-b", 1), ("page-a", 2),
                                                                 ("page-b", 2)]

    def test_duplicates_spread_over_a_large_batch(self, store: EventStore) -> None:
        store.append(new(*(page(f"p{i}", id=f"e{i}") for i in range(0, 1400, 2))))  # the even ones
        # Every chunk of the store's (500 events) mixes new events and events already in the log.
        again = store.append(new(*(page(f"p{i}", id=f"e{i}") for i in range(1400))))
        assert (again.appended, again.duplicates) == (700, 700)
        assert again.positions[:4] == [1, 701, 2, 702] and again.last_position == 1400
        updates = store.append(new(*(envelope("PageUpdated", {"id": f"p{i}", "title": "t"}) for i in range(1400))))
        assert updates.appended == 1400
        assert {store.stream_version(f"page-p{i}") for i in (0, 1, 698, 699, 1398, 1399)} == {2}

    def test_a_batch_of_any_size_keeps_its_order(self, store: EventStore) -> None:
        # SQL stores insert full hundreds with one multi-row statement and the rest row by row: a
        # duplicate must be found in either part, and positions and versions follow the batch's order.
        store.append(new(*(page(f"p{i}", id=f"e{i}") for i in range(1_234))))
        assert [(e.position, e.id, e.version) for e in store.read(limit=2_000)] == [
            (i + 1, f"e{i}", 1) for i in range(1_234)]
        for old in ("e1150", "e1210"):  # in the last chunk's full hundreds, then in its last 34 rows
            mixed = [page(f"n{old}{i}", id=f"{old}-new{i}") for i in range(1_234)]
            mixed[int(old[1:])] = page(f"p{old[1:]}", id=old)
            before = store.head()
            result = store.append(new(*mixed))
            assert (result.appended, result.duplicates) == (1_233, 1)
            assert result.positions[int(old[1:])] == int(old[1:]) + 1
            assert store.head() == before + 1_233

    def test_writers_taking_turns_see_each_others_versions(self, store: EventStore) -> None:
        # A writer remembers the stream versions it wrote; another writer's append must invalidate that.
        if isinstance(store, InMemoryEventStore):
            pytest.skip("an in-memory log has one writer: the store itself")
        other = self.create_store()
        try:
            for turn in range(4):
                writer = store if turn % 2 == 0 else other
                writer.append(new(envelope("PageUpdated", {"id": "a", "title": f"t{turn}"}),
                                  envelope("PageUpdated", {"id": "b", "title": f"t{turn}"})))
            writer = store
            with pytest.raises(ConcurrencyConflict):  # a failed batch leaves nothing behind, not even memory
                writer.append(new(envelope("PageUpdated", {"id": "a", "title": "x"}),
                                  envelope("PageUpdated", {"id": "b", "title": "x"}, expected_version=0)))
            writer.append(new(envelope("PageUpdated", {"id": "a", "title": "y"}, expected_version=4),
                              envelope("PageUpdated", {"id": "b", "title": "y"}, expected_version=4)))
        finally:
            other.close()
        assert [e.version for e in store.read_stream("page-a")] == [1, 2, 3, 4, 5]

    def test_a_single_event_append_checks_its_expected_version(self, store: EventStore) -> None:
        assert store.append(new(page("a", expected_version=0))).positions == [1]
        with pytest.raises(ConcurrencyConflict, match="expected version 0, stream is at 1"):
            store.append(new(envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=0)))
        assert store.append(new(envelope("PageUpdated", {"id": "a", "title": "t"},
                                         expected_version=1))).positions == [2]
        assert store.head() == 2 and store.stream_version("page-a") == 2

    def test_expected_version_counts_earlier_events_of_the_same_batch(self, store: EventStore) -> None:
        result = store.append(new(page("a", expected_version=0),
                                  envelope("PageUpdated", {"id": "a", "title": "t"}, expected_version=1)))
        assert result.appended == 2

    def test_invalid_event_in_a_batch_writes_nothing(self) -> None:
        from pipeline import Chronicle, Settings
        from pipeline.notify import NullNotifier

        handle = Chronicle(Settings(data_dir=self.data_dir, event_store_url=self.url), notifier=NullNotifier())
        try:
            with pytest.raises(InvalidEvent):
                handle.emit_many([page("a"), envelope("PageCreated", {"id": "b"})])
            with pytest.raises(InvalidEvent):  # the streaming path rolls back what it already inserted
                handle.emit_many(iter([page("c"), envelope("PageCreated", {"id": "d"})]))
            assert handle.store.head() == 0
        finally:
            handle.close()

    def test_subscription_checkpoint_compare_and_set(self, store: EventStore) -> None:
        assert store.subscription_position("reactor") == 0
        assert store.set_subscription_position("reactor", 5, expected=0)
        assert not store.set_subscription_position("reactor", 9, expected=0)
        assert store.set_subscription_position("reactor", 9, expected=5)
        assert store.subscription_position("reactor") == 9
        assert not store.set_subscription_position("other", 3, expected=2)  # missing counts as 0
        assert store.set_subscription_position("other", 3) and store.subscription_position("other") == 3

    def test_iter_all_streams_in_bounded_pages(self, store: EventStore) -> None:
        store.append(new(*[page(str(i)) for i in range(25)]))
        assert [e.position for e in store.iter_all(after=3, until=20, batch=4)] == list(range(4, 21))

    def test_raw_rows_and_position_at(self, store: EventStore) -> None:
        store.append(new(page("a"), page("b")))
        rows = store.read_raw()
        assert [(r[0], r[1], r[4]) for r in rows] == [(1, rows[0][1], "PageCreated"), (2, rows[1][1], "PageCreated")]
        assert store.read_raw(after=1, limit=5, until=1) == []
        assert store.position_at(rows[1][8]) == 2 and store.position_at("2000-01-01T00:00:00.000000Z") == 0

    def test_two_emitting_writers_get_gapless_positions(self, store: EventStore) -> None:
        self.start_writers(2, 40)
        events = list(store.iter_all())
        assert [e.position for e in events] == list(range(1, 161))
        assert len({e.stream for e in events}) == 160


class TestSQLiteEventStore(EventStoreContract):
    def prepare(self, request: pytest.FixtureRequest) -> None:
        self.url = f"sqlite:///{self.data_dir / 'events.db'}"

    def create_store(self) -> EventStore:
        return SQLiteEventStore(self.url)


class TestSQLiteEventStoreOlderLayout(EventStoreContract):
    """A log created before ``position`` became ``INTEGER PRIMARY KEY`` (the rowid): ``BIGINT`` beside
    the rowid. Such logs are kept as they are, so every promise must hold on them too (a single append
    takes another statement there: the position is not the rowid)."""

    def prepare(self, request: pytest.FixtureRequest) -> None:
        path = self.data_dir / "events.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            for statement in schema("BIGINT"):
                conn.execute(statement)
        conn.close()
        self.url = f"sqlite:///{path}"

    def create_store(self) -> EventStore:
        return SQLiteEventStore(self.url)

    def test_the_log_keeps_its_older_layout(self) -> None:
        store = self.create_store()
        store.append(new(page("a"), page("b")))
        assert store.append(new(page("c"))).last_position == 3
        with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("SELECT type, pk FROM pragma_table_info('events') WHERE name = 'position'"
                                ).fetchone() == ("BIGINT", 1)
        conn.close()
        store.close()


class TestPostgresEventStore(EventStoreContract):
    """Skips when no server is reachable on a laptop; fails under ``CI=true`` (conftest's policy)."""

    def prepare(self, request: pytest.FixtureRequest) -> None:
        self.url = request.getfixturevalue("postgres_url")

    def create_store(self) -> EventStore:
        return PostgresEventStore(self.url)


class TestInMemoryEventStore(EventStoreContract):
    url = "memory://"

    def create_store(self) -> EventStore:
        self.shared = InMemoryEventStore()
        return self.shared

    def start_writers(self, workers: int, batches: int) -> None:
        """One log lives in one process: the writers are threads on the same store."""
        def write(worker: int) -> None:
            for b in range(batches):
                self.shared.append(new(page(f"w{worker}-b{b}-0"), page(f"w{worker}-b{b}-1")))

        threads = [threading.Thread(target=write, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive()


def test_validation_rejects_unknown_types_and_bad_payloads_with_the_field() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'PageExploded'"):
        validate_envelope(envelope("PageExploded", {}))
    with pytest.raises(InvalidEvent) as info:
        validate_envelope(envelope("PageCreated", {"id": "p", "site_id": "s", "slug": "x"}), index=3)
    assert info.value.field == "data.title" and info.value.index == 3
    with pytest.raises(InvalidEvent, match="above the 2048-byte limit"):
        validate_envelope(envelope("PageCreated", {"id": "p", "site_id": "s", "title": "t" * 2000, "slug": "s" * 200}),
                          max_bytes=2048)



@pytest.mark.parametrize("raw", [
    {"type": "PageCreated", "data": {}, "extra": 1},
    {"type": "", "data": {}},
    {"data": {}},
    {"type": "PageCreated", "id": "", "data": {}},
    {"type": "PageCreated", "id": "a\nb", "data": {}},
    {"type": "PageCreated", "stream": "x" * 301, "data": {}},
    {"type": "PageCreated", "expected_version": -1, "data": {}},
    {"type": "PageCreated", "expected_version": "one", "data": {}},
    {"type": "PageCreated", "data": []},
    {"type": "PageCreated", "data": None},
    {"type": "PageCreated", "metadata": {"actor": 5}, "data": {}},
    {"type": "PageCreated", "metadata": None, "data": {}},
])
def test_the_fast_envelope_check_agrees_with_the_envelope_model(raw: dict[str, Any]) -> None:
    """``validate_envelope`` checks dicts against a TypedDict copy of ``Envelope`` (no model per event):
    same fields, same verdicts, same error locations."""
    from pydantic import ValidationError

    from pipeline.envelope import Envelope, _EnvelopeFields

    assert set(_EnvelopeFields.__annotations__) == set(Envelope.model_fields)
    with pytest.raises(ValidationError) as model_error:
        Envelope.model_validate(raw)
    with pytest.raises(InvalidEvent) as info:
        validate_envelope(raw)
    assert info.value.field == ".".join(map(str, model_error.value.errors()[0]["loc"]))


def test_payload_json_is_what_orjson_writes_and_reads_back() -> None:
    """Payloads are serialised by pydantic-core in one step; the log must still hold what orjson (its
    reader) reads back as the same values, and refuse what it cannot (integers beyond 64 bits)."""
    import orjson

    story = [envelope("SectionEntryCreated", {"id": "e", "definition_id": "d", "content": {
        "n": [1, -2, 1.5, 1e20, 2**63, 0.1, None, True], "s": "é \u2028 \x01 \"q\" 12345678901234567890"}}),
        envelope("PageCreated", {"id": 42, "site_id": "s", "title": "T", "slug": "t",
                                 "created_at": "2026-01-02T03:04:05.5+02:00"}),
        envelope("PageUpdated", {"id": "p", "metadata": None})]
    for raw in story:
        event = validate_envelope(raw)
        model = CATALOGUE[raw["type"]].model_validate(raw["data"])
        assert event.data_json == orjson.dumps(model.to_stored()).decode()
    nan = validate_envelope(envelope("SectionEntryCreated", {"id": "e", "definition_id": "d",
                                                             "content": {"x": float("nan")}}))
    assert nan.data["content"] == {"x": None}
    with pytest.raises(InvalidEvent, match="cannot be stored"):
        validate_envelope(envelope("SectionEntryCreated", {"id": "e", "definition_id": "d",
                                                           "content": {"big": 2**64}}))

def test_open_store_refuses_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported event store URL scheme 'mysql'"):
        open_store("mysql://localhost/chronicle")


# -- error translation --------------------------------------------------------------------------------


def bulky(count: int, prefix: str = "big") -> list[NewEvent]:
    """Events with ~4 KB of metadata each: they need fresh pages, a full log has none."""
    return new(*[page(f"{prefix}{i}", metadata={"blob": "x" * 4000}) for i in range(count)])


def assert_unavailable(info: pytest.ExceptionInfo[StoreUnavailable], reason: str) -> None:
    assert info.value.store == "event log"
    assert reason in info.value.reason
    assert not is_permanent(info.value)


def rows_in(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


class TestSQLiteEventStoreErrors:
    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        data_dir.mkdir(parents=True, exist_ok=True)
        return data_dir / "events.db"

    def test_a_full_log_refuses_the_batch_whole_and_takes_it_once_there_is_room(self, path: Path) -> None:
        with SQLiteEventStore(f"sqlite:///{path}") as first:
            first.append(new(page("a")))
        store = SQLiteEventStore(f"sqlite:///{path}", create=False)  # (so it has no connection yet)
        limit = {"pages": 1}  # PRAGMA max_page_count never goes below the current size: "no more pages"
        connect = store._connect

        def _capped() -> Any:  # every connection the store makes (it makes a new one after an error)
            conn = connect()
            conn.execute(f"PRAGMA max_page_count={limit['pages']}")
            return conn

        store._connect = _capped  # type: ignore[method-assign]

        try:
            with pytest.raises(StoreUnavailable, match="database or disk is full") as info:
                store.append(bulky(200))
            assert_unavailable(info, "database or disk is full")
            with pytest.raises(StoreUnavailable, match="database or disk is full"):  # the one-event path
                store.append(bulky(1, prefix="single"))
            assert rows_in(path) == 1  # (read from outside: the store's next checkout must see the new limit)

            limit["pages"] = 1_000_000  # space is back: the very same calls succeed
            assert store.append(bulky(200)).appended == 200
            assert store.append(bulky(1, prefix="single")).positions == [202]
            assert store.head() == 202
        finally:
            store.close()

    def test_a_lock_held_past_the_busy_timeout_is_unavailable(self, path: Path) -> None:
        store = SQLiteEventStore(f"sqlite:///{path}", busy_timeout=0.2)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="database is locked") as info:
                store.append(new(page("a")))
            assert_unavailable(info, "0.2 s busy timeout")
            with pytest.raises(StoreUnavailable, match="database is locked"):
                store.append(new(page("a"), page("b")))
            with pytest.raises(StoreUnavailable, match="database is locked"):
                store.set_subscription_position("reactor", 1)
            assert store.head() == 0  # readers pass a writer in WAL mode
            blocker.execute("ROLLBACK")
            assert store.append(new(page("a"))).positions == [1]
            assert store.append(new(page("a"), page("b"))).positions == [2, 3]
            assert store.set_subscription_position("reactor", 1)
        finally:
            blocker.close()
            store.close()

    def test_emit_on_a_full_log_prints_one_line_and_exits_4(self, path: Path, tmp_path: Path) -> None:
        cli("emit", input=b'{"type": "PageCreated", "data": {"id": "a", "site_id": "s", "title": "A", "slug": "a"}}\n',
            check=True)
        # The CLI runs in its own process: a sitecustomize caps the log's pages there.
        inject = tmp_path / "inject"
        inject.mkdir()
        (inject / "sitecustomize.py").write_text(CAP_LOG_PAGES)
        line = b'{"type": "PageCreated", "data": {"id": "p%d", "site_id": "s", "title": "%s", "slug": "p%d"}}\n'
        batch = b"".join(line % (i, b"t" * 200, i) for i in range(2000))
        env = {"PYTHONPATH": f"{inject}:{Path(__file__).resolve().parent.parent}"}
        full = cli("emit", input=batch, env=env)
        assert full.returncode == 4, full.stderr.decode()
        stderr = full.stderr.decode()
        assert stderr.startswith("error: event log unavailable: database or disk is full")
        assert stderr.count("error:") == 1 and "Traceback" not in stderr and full.stdout == b""
        assert rows_in(path) == 1  # nothing from the refused batch
        again = cli("emit", input=batch, check=True)  # room again: the same command completes
        assert b'"appended":2000' in again.stdout
        assert rows_in(path) == 2001


CAP_LOG_PAGES = '''
import sqlite3

_connect = sqlite3.connect


def _cap_the_log(*args, **kwargs):
    conn = _connect(*args, **kwargs)
    files = [row[2] for row in conn.execute("PRAGMA database_list")]
    if any(f.endswith("events.db") for f in files):
        conn.execute("PRAGMA max_page_count=1")
    return conn


sqlite3.connect = _cap_the_log
'''


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestPostgresEventStoreErrors:
    def test_an_unreachable_server_is_unavailable(self) -> None:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
        with pytest.raises(StoreUnavailable, match="cannot reach the server") as info:
            PostgresEventStore(url)
        assert_unavailable(info, "127.0.0.1")
        store = PostgresEventStore(url, create=False)
        try:
            for call in (store.head, lambda: store.append(new(page("a"))), lambda: store.subscription_position("r")):
                with pytest.raises(StoreUnavailable, match="cannot reach the server"):
                    call()
        finally:
            store.close()

    def test_emit_with_the_server_down_prints_one_line_and_exits_4(self, data_dir: Path) -> None:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
        down = cli("emit", input=b'{"type": "PageCreated", "data": {"id": "a", "site_id": "s", "title": "A", '
                                 b'"slug": "a"}}\n', env={"CHRONICLE_EVENT_STORE_URL": url})
        assert down.returncode == 4, down.stderr.decode()
        assert down.stderr.decode().startswith("error: event log unavailable: cannot reach the server")
        assert "Traceback" not in down.stderr.decode()
        assert len(down.stderr.decode().strip().splitlines()) == 1

    def test_a_terminated_connection_is_unavailable_then_reconnects(self, postgres_url: str) -> None:
        name = f"chronicle-test-{uuid.uuid4().hex[:8]}"
        store = PostgresEventStore(f"{postgres_url}&application_name={name}")
        try:
            store.append(new(page("a")))
            with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"),
                                 autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                              (name,))
            with pytest.raises(StoreUnavailable) as info:
                store.append(new(page("b"), page("c")))
            assert not is_permanent(info.value)
            assert store.append(new(page("b"), page("c"))).positions == [2, 3]  # the same call, reconnected
            assert store.head() == 3
        finally:
            store.close()
