"""Scenario 2: the broker is down while the CMS appends; it comes back with a worker running.

Our own ``redis-server`` on a spare port is killed, 1 000 events are emitted through
``Chronicle.emit_many`` with the default Celery notifier (appends succeed, wake-ups fail and are only
logged), then Redis starts again on the same port with an empty dataset (``--save ''``: every queued
message is gone, as after a real crash). Only the sweeper can find the lag: all events must be
appended, all projected, none twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from tests.chaos.common import (
    FAST_ENV,
    clean_replay_checksum,
    differing_tables,
    live_checksum_cli,
    pipeline_report,
)
from tests.chaos.conftest import FULL, Fleet, RedisServer, TcpProxy, figure
from tests.factories import envelope, page
from tests.helpers import wait_until

EVENTS = 1_000
BATCH = 10 if FULL else 250  # one append (and one failed wake-up, ~2 s: see the figures) per batch


def caught_up(chronicle: Chronicle, head: int) -> bool:
    status = chronicle.status()
    return status["head"] == head and all(p["checkpoint"] == head for p in status["projections"].values()) \
        and status["subscribers"]["reactor"]["lag"] == 0


def test_events_emitted_during_a_broker_outage_are_all_projected_once(
        own_redis: RedisServer, data_dir: Path, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet], caplog: pytest.LogCaptureFixture) -> None:
    """Runs with the log on SQLite and on PostgreSQL (``store_url``)."""
    env = {**FAST_ENV, "CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EMBEDDER": "off",
           "CHRONICLE_BROKER_CONNECT_TIMEOUT": "0.5", "CHRONICLE_EVENT_STORE_URL": store_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())  # default notifier: publishes to our Redis
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("all", "-c", "1")  # every queue + the embedded sweeper

    # before the outage: the pipeline works (and the worker is connected)
    first = chronicle.emit_many([page("before"), envelope("PagePublished", {"id": "before"})])
    wait_until(lambda: caught_up(chronicle, first.last_position or 0), timeout=60, what="pre-outage catch-up")

    own_redis.stop()
    caplog.set_level(logging.WARNING, logger="chronicle.notify")
    started = time.monotonic()
    envelopes = []
    for i in range(EVENTS // 2):
        envelopes += [page(f"o{i}", id=f"outage-create-{i}"), envelope("PagePublished", {"id": f"o{i}"},
                                                                       id=f"outage-publish-{i}")]
    appended = 0
    for i in range(0, EVENTS, BATCH):
        result = chronicle.emit_many(envelopes[i:i + BATCH])  # must not raise: the broker is best effort
        appended += result.appended
    emit_seconds = time.monotonic() - started
    assert appended == EVENTS
    # The first failed wake-up is logged; then the notifier's circuit breaker stays quiet for a few
    # seconds instead of paying a connect timeout on every append.
    assert 1 <= caplog.text.count("could not wake the workers") < EVENTS // BATCH
    head = chronicle.store.head()
    assert head == (first.last_position or 0) + EVENTS
    assert chronicle.status()["projections"]["cms"]["lag"] == EVENTS

    own_redis.start()  # same port, empty: every wake-up and queued message is lost
    back = time.monotonic()
    try:
        wait_until(lambda: caught_up(chronicle, head), timeout=120,
                   what="the sweeper to project the events emitted during the outage")
    except AssertionError:
        print(fleet.log_tail())
        raise
    recovery = time.monotonic() - back
    assert worker.proc is not None and worker.proc.poll() is None, "the worker survived the outage"
    fleet.stop_all()

    live = live_checksum_cli()
    assert live["tables"]["pages"]["rows"] == EVENTS // 2 + 1
    published = chronicle_rows(chronicle, "SELECT count(*) FROM pages WHERE status='published'")
    assert published == EVENTS // 2 + 1
    clean = clean_replay_checksum(chronicle, tmp_path / "clean.db")
    assert live["sha256"] == clean["sha256"], differing_tables(live, clean)
    chronicle.close()
    figure(f"broker outage, log on {store_url.split(':')[0]}: {EVENTS} events appended in {emit_seconds:.2f}s "
           f"with Redis down "
           f"({EVENTS // BATCH} failed wake-ups, none raised); projected {recovery:.1f}s after Redis came back; "
           f"rows {EVENTS // 2 + 1} pages, checksum live == clean replay")


def chronicle_rows(chronicle: Chronicle, sql: str) -> int:
    from db.engine import connect

    conn = connect(chronicle.settings.projection_db_path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# FINDING, fixed: embedding wake-ups lost with the broker were never re-sent (the sweeper
# only checked projection and reactor lag). The sweeper now wakes every registered subscriber that lags
# the log (``pipeline.jobs.runner.run_sweep_hooks``), the embedding ones included.
def test_embedding_wake_ups_lost_with_the_broker_are_recovered(
        own_redis: RedisServer, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet]) -> None:
    env = {**FAST_ENV, "CHRONICLE_BROKER_URL": own_redis.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    fleet.add("projections", "-Q", "projections", "--beat", "-c", "1")  # no embeddings worker yet
    result = chronicle.emit_many([page(f"e{i}") for i in range(20)])
    wait_until(lambda: caught_up(chronicle, result.last_position or 0), timeout=60,
               what="projected and the embedding jobs dispatched into Redis")
    own_redis.stop()  # the queued embeddings/vectors messages die with it (--save '')
    own_redis.start()
    fleet.add("embeddings", "-Q", "embeddings,vectors", "-c", "1")
    from pipeline.embeddings.api import embedding_status

    def embedded() -> bool:
        fleet.supervise()
        return embedding_status(chronicle)["kinds"]["page"]["pending"] == 0

    try:
        wait_until(embedded, timeout=10, what="the 20 pages to be embedded after the lost wake-ups")
    finally:
        fleet.stop_all()
        chronicle.close()


def test_rabbitmq_outage_appends_succeed_and_the_sweeper_projects_them(
        rabbitmq_url: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet], caplog: pytest.LogCaptureFixture) -> None:
    """The same outage on RabbitMQ: the CMS and the default worker reach the broker through a proxy we
    cut (the shared server stays up); appends succeed, and once the broker is reachable again the
    worker reconnects and the sweeper projects everything, once."""
    proxy = TcpProxy(("127.0.0.1", 5672))
    proxy.restore()
    url = rabbitmq_url.replace(":5672/", f":{proxy.port}/")
    env = {**FAST_ENV, "CHRONICLE_BROKER_URL": url, "CHRONICLE_EMBEDDER": "off",
           "CHRONICLE_BROKER_CONNECT_TIMEOUT": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("all")  # the default worker: every lane + the sweeper
    try:
        first = chronicle.emit_many([page("before"), envelope("PagePublished", {"id": "before"})])
        wait_until(lambda: caught_up(chronicle, first.last_position or 0), timeout=90, what="pre-outage catch-up",
                   explain=lambda: pipeline_report(chronicle))
        proxy.cut()
        caplog.set_level(logging.WARNING, logger="chronicle.notify")
        appended = 0
        for i in range(0, 200, 50):
            appended += chronicle.emit_many([page(f"r{j}", id=f"rabbit-{j}") for j in range(i, i + 50)]).appended
        assert appended == 200
        head = chronicle.store.head()
        proxy.restore()
        back = time.monotonic()
        wait_until(lambda: caught_up(chronicle, head), timeout=90, what="the sweeper after the RabbitMQ outage",
                   explain=lambda: f"{pipeline_report(chronicle)}; proxy connections {proxy.accepted}")
        recovery = time.monotonic() - back
    except AssertionError:
        print(fleet.log_tail())
        raise
    finally:
        fleet.stop_all()
        proxy.cut()
    assert worker.proc is not None
    live = live_checksum_cli()
    assert live["tables"]["pages"]["rows"] == 201
    clean = clean_replay_checksum(chronicle, tmp_path / "clean.db")
    assert live["sha256"] == clean["sha256"], differing_tables(live, clean)
    chronicle.close()
    figure(f"RabbitMQ outage (proxy cut): 200 events appended with the broker unreachable, projected "
           f"{recovery:.1f}s after it came back; checksum live == clean replay")


def test_a_cut_proxy_refuses_every_connection_and_listens_again() -> None:
    """The outage proxy's own regression test (the RabbitMQ scenario's rare failure): ``close()`` of a
    listener while a thread is blocked in ``accept()`` left it listening, so a client still got through
    during the "outage" and ``restore()`` failed with EADDRINUSE when none came."""
    import socket
    import threading

    target = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = target.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    proxy = TcpProxy(target.getsockname())
    try:
        for _round in range(3):
            proxy.restore()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
                client.sendall(b"ping")
                assert client.recv(4) == b"ping"
                proxy.cut()  # the accept thread is blocked in accept() at this moment
                assert client.recv(4) == b"", "an open connection survives the cut"
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
        assert proxy.accepted == 3
    finally:
        proxy.cut()
        target.close()
