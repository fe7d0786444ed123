"""A worker host's private working copy of the projections, and the vector writer's lock across hosts.

Host 2 here is a second ``Chronicle`` with its own data directory that shares only the log (and the
subject keystore, which follows the log) with host 1: what an embedding worker on another machine has.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.embeddings import sync
from pipeline.embeddings.vector_lock import spans_hosts, vectors_lock
from pipeline.embeddings.working_copy import erasures_applied, forget_erased
from pipeline.erase import erase_subject
from pipeline.notify import NullNotifier
from pipeline.shredding import PLACEHOLDER
from tests.helpers import wait_until

SECRET = "zanzibar"


def dump(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return "\n".join(conn.iterdump())


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Chronicle, Chronicle]]:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    for var in ("CHRONICLE_DATA_DIR", "CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "CHRONICLE_LANCEDB_URL",
                "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    host1 = tmp_path / "host1"
    cms = Chronicle(Settings(data_dir=host1), notifier=NullNotifier())
    worker = Chronicle(Settings(data_dir=tmp_path / "host2", event_store_url=cms.settings.resolved_event_store_url,
                                subject_keys=str(host1 / "subject-keys")), notifier=NullNotifier())
    yield cms, worker
    worker.close()
    cms.close()


def test_the_working_copy_comes_from_the_log_and_forgets_an_erased_subject(hosts: tuple[Chronicle, Chronicle]) -> None:
    cms, worker = hosts
    cms.emit_many([
        {"type": "SiteCreated", "data": {"id": "s1", "team_id": "t1", "name": "Site"}},
        {"type": "PostCreated", "metadata": {"subject": "user-7"},
         "data": {"id": "p7", "site_id": "s1", "title": f"My trip to {SECRET}", "slug": "trip", "status": "published",
                  "author": "Jane Doe", "body": f"Spice markets of {SECRET}."}},
        {"type": "PostCreated", "data": {"id": "p8", "site_id": "s1", "title": "Climbing", "slug": "climb",
                                         "status": "published", "author": "Bob Roe", "body": "The summit at dawn."}},
    ])
    cms.project()  # the CMS's read model (host 1's projections role); no job runs there
    report = sync.catch_up(worker, worker.store.head())
    assert report.embedded == 2, "host 2 embedded from its own copy"
    assert SECRET in dump(worker.settings.projection_db_path), "the copy was projected from the log"

    erase_subject(cms, "user-7")  # host 1: key destroyed, its read model rebuilt, SubjectErased appended
    erased_at = cms.store.head()
    assert erasures_applied(cms.settings) == erased_at, "host 1's read model is marked as already rebuilt"
    report = sync.catch_up(worker, erased_at)
    copy = dump(worker.settings.projection_db_path)
    assert SECRET not in copy and "Jane Doe" not in copy, "the working copy forgot the erased subject"
    assert "Bob Roe" in copy
    with sqlite3.connect(worker.settings.projection_db_path) as conn:
        assert conn.execute("SELECT title FROM posts WHERE id = 'p7'").fetchone() == (PLACEHOLDER,)
    assert report.embedded == 0, "nothing of the erased text is embedded again"
    assert erasures_applied(worker.settings) == erased_at
    assert not forget_erased(worker, worker.store.iter_all()), "once per erasure"


def test_the_vector_writer_lock_spans_hosts(postgres_url: str, tmp_path: Path) -> None:
    """Two hosts (two data directories, so two file locks) writing one bucket's tables take turns."""
    import psycopg

    from pipeline.embeddings.cache_pg import libpq_url

    url = f"s3://chronicle-{uuid.uuid4().hex[:12]}/lancedb"
    one, two = (Settings(data_dir=tmp_path / f"host{n}", event_store_url=postgres_url, lancedb_url=url)
                for n in (1, 2))
    assert spans_hosts(one) and not spans_hosts(Settings(data_dir=tmp_path / "h3", lancedb_url=url))
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with vectors_lock(one):
            order.append("first in")
            inside.set()
            release.wait(30)
            order.append("first out")

    def second() -> None:
        with vectors_lock(two):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(30)
    threads[1].start()

    def waiting() -> bool:
        with psycopg.connect(libpq_url(postgres_url)) as conn:
            return bool(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                        .fetchone()[0])

    wait_until(waiting, timeout=20, what="host 2 waiting for host 1's lock")
    assert order == ["first in"]
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["first in", "first out", "second in"]


def test_reindex_progress_written_on_one_host_is_read_on_another(postgres_url: str, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pipeline.embeddings.progress import read_progress, write_progress

    worker, cms = (SimpleNamespace(settings=Settings(data_dir=tmp_path / f"host{n}", event_store_url=postgres_url))
                   for n in (1, 2))
    assert read_progress(cms, "r1") == {}
    write_progress(worker, "r1", {"page": {"total": 10, "done": 4}})
    write_progress(worker, "r1", {"page": {"total": 10, "done": 10}})
    assert read_progress(cms, "r1") == {"page": {"total": 10, "done": 10}}
    assert not list(tmp_path.rglob("*.json")), "no file on either host"
