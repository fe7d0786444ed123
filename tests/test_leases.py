"""Leases on running jobs (pipeline.jobs.leases): what the sweeper re-sends after a worker died."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pipeline.jobs.leases import LeaseBook, hold_on_receipt
from pipeline.jobs.spec import Job
from pipeline.owners import HOST, owner_gone


def test_a_lease_of_a_dead_process_on_this_host_is_re_sent_at_once_and_only_once(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    code = ("import sys; from pipeline.jobs.leases import LeaseBook; from pipeline.jobs.spec import Job; "
            "LeaseBook(__import__('pathlib').Path(sys.argv[1]), seconds=30).hold("
            "'d-1', Job('chronicle.media.process', 'media', {'image_id': 'x'}))")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)  # holds, then dies
    sweeper = LeaseBook(path, seconds=30)
    found = sweeper.orphans()
    assert [(o.delivery, o.task, o.kwargs) for o in found] == [("d-1", "chronicle.media.process", {"image_id": "x"})]
    assert sweeper.orphans() == [], "parked after the re-send: not sent again by the next sweep"


def test_a_live_owner_keeps_its_lease_and_a_silent_one_loses_it(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    worker = LeaseBook(path, seconds=0.5)
    worker.hold("d-2", Job("chronicle.embeddings.reindex", "embeddings", {"id": "r"}))
    sweeper = LeaseBook(path, seconds=0.5)
    assert sweeper.orphans() == []
    time.sleep(1.0)  # the renewer keeps it alive
    assert sweeper.orphans() == []
    worker.release("d-2")
    assert worker.all() == []
    # another host's lease that nobody renews: taken over after its expiry
    worker.hold("d-3", Job("chronicle.vectors.rebuild", "vectors", {}))
    worker.conn.execute("UPDATE leases SET owner='elsewhere/1:123:tok', expires=?", (time.time() - 1,))
    assert [o.delivery for o in sweeper.orphans()] == ["d-3"]


def test_park_keeps_a_retrying_job_until_its_retry_is_overdue(tmp_path: Path) -> None:
    book = LeaseBook(tmp_path / "leases.db", seconds=0.2)
    book.hold("d-4", Job("chronicle.media.process", "media", {}))
    book.park("d-4", 0.3)
    other = LeaseBook(tmp_path / "leases.db", seconds=0.2)
    assert other.orphans() == []
    assert [o.delivery for o in other.orphans(now=time.time() + 1)] == ["d-4"]
    assert owner_gone(f"{HOST}:999999999:x")


def test_a_job_received_by_a_worker_that_died_before_starting_it_is_re_sent_at_once(tmp_path: Path) -> None:
    """The receipt lease (the worker's main process, before the pool starts the job): the window the
    fair-lanes scenario's CI timeout fell into. It never takes a live owner's lease; the pool
    process's own lease replaces it; a parked (re-sent) one is taken over."""
    path = tmp_path / "leases.db"
    job = Job("chronicle.media.process", "media", {"image_id": "y"})
    code = ("import sys, pathlib; from pipeline.jobs.leases import hold_on_receipt; "
            "from pipeline.jobs.spec import Job; "
            "hold_on_receipt(pathlib.Path(sys.argv[1]), 'd-5', "
            "Job('chronicle.media.process', 'media', {'image_id': 'y'}), seconds=30)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)  # receives, then dies
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
