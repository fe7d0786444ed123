"""Leases on running jobs (pipeline.jobs.leases): what the sweeper re-sends after a worker died.

Every test runs on both places leases live: a SQLite file of the data directory (one box) and the log's
PostgreSQL database (several hosts, where a sweeper must see other hosts' leases).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.jobs.leases import LeaseBook, hold_on_receipt, lease_location
from pipeline.jobs.spec import Job
from pipeline.owners import HOST, owner_gone
from pipeline.settings import Settings
from tests.helpers import wait_until

# A process that opens the same place (argv[1]: a file path, or a postgresql URL).
WHERE = ("import sys, pathlib; "
         "where = sys.argv[1] if sys.argv[1].startswith('postgresql') else pathlib.Path(sys.argv[1]); ")


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "sqlite":
        return tmp_path / "leases.db"
    return str(request.getfixturevalue("postgres_url"))


def test_leases_live_with_the_log_when_it_is_on_postgresql(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@db.example/chronicle"
    assert lease_location(Settings(data_dir=tmp_path, event_store_url=url)) == url
    assert lease_location(Settings(data_dir=tmp_path)) == tmp_path / "leases.db"


def test_a_lease_of_a_dead_process_on_this_host_is_re_sent_at_once_and_only_once(where: Path | str) -> None:
    code = (WHERE + "from pipeline.jobs.leases import LeaseBook; from pipeline.jobs.spec import Job; "
            "LeaseBook(where, seconds=30).hold('d-1', Job('chronicle.media.process', 'media', {'image_id': 'x'}))")
    subprocess.run([sys.executable, "-c", code, str(where)], check=True)  # holds, then dies
    sweeper = LeaseBook(where, seconds=30)
    found = sweeper.orphans()
    assert [(o.delivery, o.task, o.kwargs) for o in found] == [("d-1", "chronicle.media.process", {"image_id": "x"})]
    assert sweeper.orphans() == [], "parked after the re-send: not sent again by the next sweep"


def test_a_live_owner_keeps_its_lease_and_a_silent_one_loses_it(where: Path | str) -> None:
    worker = LeaseBook(where, seconds=0.5)
    worker.hold("d-2", Job("chronicle.embeddings.reindex", "embeddings", {"id": "r"}))
    sweeper = LeaseBook(where, seconds=0.5)
    assert sweeper.orphans() == []

    def expires() -> float:
        return worker.db.execute("SELECT expires FROM leases WHERE delivery=?", ("d-2",)).fetchone()[0]

    first = expires()
    # past the first expiry, the renewer has kept it alive
    wait_until(lambda: time.time() > first and expires() > first, timeout=10, what="a renewal past the first expiry")
    assert sweeper.orphans() == []
    worker.release("d-2")
    assert worker.all() == []
    # another host's lease that nobody renews: taken over after its expiry
    worker.hold("d-3", Job("chronicle.vectors.rebuild", "vectors", {}))
    worker.db.execute("UPDATE leases SET owner='elsewhere/1:123:tok', expires=?", (time.time() - 1,))
    assert [o.delivery for o in sweeper.orphans()] == ["d-3"]
    worker.close()
    sweeper.close()


def test_a_closed_book_stops_renewing_so_its_leases_expire(where: Path | str) -> None:
    worker = LeaseBook(where, seconds=0.3)
    worker.hold("d-9", Job("chronicle.media.process", "media", {}))
    renewer = worker._renewer
    assert renewer is not None and renewer.is_alive()
    worker.close()
    assert not renewer.is_alive()
    sweeper = LeaseBook(where, seconds=0.3)
    assert [o.delivery for o in sweeper.orphans(now=time.time() + 1)] == ["d-9"]
    sweeper.close()


def test_park_keeps_a_retrying_job_until_its_retry_is_overdue(where: Path | str) -> None:
    book = LeaseBook(where, seconds=0.2)
    book.hold("d-4", Job("chronicle.media.process", "media", {}))
    book.park("d-4", 0.3)
    other = LeaseBook(where, seconds=0.2)
    assert other.orphans() == []
    assert [o.delivery for o in other.orphans(now=time.time() + 1)] == ["d-4"]
    assert owner_gone(f"{HOST}:999999999:x")


def test_a_job_received_by_a_worker_that_died_before_starting_it_is_re_sent_at_once(where: Path | str) -> None:
    """The receipt lease (the worker's main process, before the pool starts the job): the window the
    fair-lanes scenario's CI timeout fell into. It never takes a live owner's lease; the pool
    process's own lease replaces it; a parked (re-sent) one is taken over."""
    path = where
    job = Job("chronicle.media.process", "media", {"image_id": "y"})
    code = (WHERE + "from pipeline.jobs.leases import hold_on_receipt; from pipeline.jobs.spec import Job; "
            "hold_on_receipt(where, 'd-5', Job('chronicle.media.process', 'media', {'image_id': 'y'}), seconds=30)")
    subprocess.run([sys.executable, "-c", code, str(where)], check=True)  # receives, then dies
    sweeper = LeaseBook(path, seconds=30)
    assert [(o.delivery, o.kwargs) for o in sweeper.orphans()] == [("d-5", {"image_id": "y"})]
    hold_on_receipt(path, "d-5", job, seconds=30)  # the re-sent message received: parked → taken over
    (lease,) = sweeper.all()
    assert lease.owner and not owner_gone(lease.owner)
    assert sweeper.orphans() == []

    pool = LeaseBook(path, seconds=30)
    pool.hold("d-6", job)  # running in a pool process
    hold_on_receipt(path, "d-6", job, seconds=30)  # a second delivery of the same task id
    assert {lease.delivery: lease.owner for lease in sweeper.all()}["d-6"] == pool.owner, "a live owner keeps it"
    hold_on_receipt(path, "d-7", job, seconds=30)
    pool.hold("d-7", job)  # the pool process takes the receipt lease over, and releases it at the end
    pool.release("d-7")
    assert "d-7" not in {lease.delivery for lease in sweeper.all()}
