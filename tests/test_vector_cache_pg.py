"""The shared vector cache in PostgreSQL behaves as the local SQLite one: same keys, same claims."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline import Chronicle, Settings
from pipeline.embeddings.cache import HOST, VectorCache
from pipeline.embeddings.cache_pg import PostgresVectorCache
from pipeline.embeddings.runtime import vector_cache
from pipeline.notify import NullNotifier


@pytest.fixture(params=["local", "postgres"])
def caches(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[VectorCache, VectorCache]]:
    if request.param == "local":
        pair = VectorCache(tmp_path), VectorCache(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        pair = PostgresVectorCache(url), PostgresVectorCache(url)
    yield pair
    for cache in pair:
        cache.close()


def test_get_put_first_wins_and_replace(caches: tuple[VectorCache, VectorCache]) -> None:
    one, two = caches
    one.put_many("m", 3, [("h1", [1.0, 2.0, 3.0]), ("chunk:h1:0", [0.5, 0.5, 0.5])])
    two.put_many("m", 3, [("h1", [9.0, 9.0, 9.0])])  # the first vector wins
    got = two.get_many("m", 3, ["h1", "chunk:h1:0", "missing"])
    assert set(got) == {"h1", "chunk:h1:0"}
    np.testing.assert_array_equal(got["h1"], np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert two.has_many("m", 3, ["h1", "x"]) == {"h1"} and two.has_many("m", 4, ["h1"]) == set()
    two.put_many("m", 3, [("h1", [9.0, 9.0, 9.0])], replace=True)
    np.testing.assert_array_equal(one.get_many("m", 3, ["h1"])["h1"], np.array([9.0] * 3, dtype=np.float32))
    assert one.count() == 2


def test_claims_are_exclusive_and_expire(caches: tuple[VectorCache, VectorCache]) -> None:
    mine, theirs = caches
    assert theirs.claim("m", 4, ["h1", "h2", "h3"], seconds=600, limit=2) == ["h1", "h2"]
    assert mine.claim("m", 4, ["h1", "h2", "h3"], seconds=600, limit=10) == ["h3"], "a live owner's lease holds"
    assert theirs.claim("m", 4, ["h1"], seconds=600, limit=10) == ["h1"], "renewing our own lease"
    theirs.release("m", 4, ["h2"])
    assert mine.claim("m", 4, ["h2"], seconds=600, limit=10) == ["h2"]
    mine.put_many("m", 4, [("h2", [1.0, 0.0, 0.0, 0.0])])
    assert theirs.claim("m", 4, ["h2"], seconds=600, limit=10) == [], "cached: nothing to pay for"
    assert mine.claim("m", 4, ["h5"], seconds=-1, limit=1) == ["h5"]  # an already expired lease …
    assert theirs.claim("m", 4, ["h5"], seconds=600, limit=1) == ["h5"]  # … is taken over


def test_a_dead_owners_lease_is_taken_over(postgres_url: str) -> None:
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    mine, theirs = PostgresVectorCache(postgres_url), PostgresVectorCache(postgres_url)
    try:
        assert theirs.claim("m", 4, ["h1"], seconds=600, limit=10) == ["h1"]
        theirs.pg.execute("UPDATE chronicle_vector_claims SET owner = %s", (f"{HOST}:{dead}:gone",))
        assert mine.claim("m", 4, ["h1"], seconds=600, limit=10) == ["h1"]
    finally:
        mine.close()
        theirs.close()


def test_the_cache_follows_the_log(postgres_url: str, data_dir: Path) -> None:
    """Log on PostgreSQL → the cache there too (every host shares it); override with CHRONICLE_VECTOR_CACHE."""
    for settings, shared in ((Settings(data_dir=data_dir, event_store_url=postgres_url), True),
                             (Settings(data_dir=data_dir, event_store_url=postgres_url, vector_cache="local"), False),
                             (Settings(data_dir=data_dir), False)):
        with Chronicle(settings, notifier=NullNotifier()) as handle, vector_cache(handle) as cache:
            assert isinstance(cache, PostgresVectorCache) is shared
