"""The vector cache on PostgreSQL, next to the log: one cache for every host.

Why PostgreSQL rather than object storage or LanceDB: the cache is more than get/put by key, it also
holds the *claims* (time-limited leases that make "never pay twice" hold across workers), and a claim
is a compare-and-set that PostgreSQL does in one statement (``INSERT … ON CONFLICT … DO UPDATE …
WHERE``) under its row locks. An object store can only do it with one conditional put per key (slow,
and no expiry), LanceDB not at all across writers. A deployment that outgrows one host runs its log
on PostgreSQL already (docs/operations.md), so the cache needs no new server, and its vectors are
backed up with the log they make replayable.

Same interface as ``VectorCache`` (``get_many``/``has_many``/``put_many``/``claim``/``release``/
``count``/``close``), keys are (model, dimension, content hash): per-chunk keys work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pipeline.errors import StoreUnavailable
from pipeline.owners import new_owner

from .cache import VectorCache, lease_is_stale

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chronicle_vector_cache (model TEXT NOT NULL, dimension INTEGER NOT NULL,
    hash TEXT NOT NULL, vector BYTEA NOT NULL, PRIMARY KEY (model, dimension, hash));
CREATE TABLE IF NOT EXISTS chronicle_vector_claims (model TEXT NOT NULL, dimension INTEGER NOT NULL,
    hash TEXT NOT NULL, owner TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (model, dimension, hash));
"""


def libpq_url(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://`` → what libpq accepts."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


class PostgresVectorCache(VectorCache):
    """A ``VectorCache`` (same methods, so every caller's type holds) whose rows live in PostgreSQL."""

    def __init__(self, url: str) -> None:  # no SQLite file: the base class's __init__ is not called
        import psycopg

        try:
            self.pg: Any = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)
            with self.pg.transaction():
                self.pg.execute("SELECT pg_advisory_xact_lock(hashtext('chronicle_vector_cache'))")
                self.pg.execute(_SCHEMA)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable("vector cache", type(exc).__name__) from None
        self.owner = new_owner()

    def close(self) -> None:
        self.pg.close()

    def get_many(self, model: str, dimension: int, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(hashes))
        rows = self.pg.execute("SELECT hash, vector FROM chronicle_vector_cache WHERE model = %s AND dimension = %s "
                                 "AND hash = ANY(%s)", (model, dimension, wanted)).fetchall()
        return {h: np.frombuffer(bytes(blob), dtype=np.float32) for h, blob in rows}

    def has_many(self, model: str, dimension: int, hashes: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(hashes))
        rows = self.pg.execute("SELECT hash FROM chronicle_vector_cache WHERE model = %s AND dimension = %s "
                                 "AND hash = ANY(%s)", (model, dimension, wanted)).fetchall()
        return {h for (h,) in rows}

    def put_many(self, model: str, dimension: int, items: Sequence[tuple[str, Sequence[float]]], *,
                 replace: bool = False) -> None:
        """Store vectors; ``replace`` (forced reindex) overwrites, otherwise the first vector wins."""
        rows = [(model, dimension, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        conflict = "DO UPDATE SET vector = EXCLUDED.vector" if replace else "DO NOTHING"
        with self.pg.transaction(), self.pg.cursor() as cur:
            cur.executemany("INSERT INTO chronicle_vector_cache VALUES (%s, %s, %s, %s) "
                            f"ON CONFLICT (model, dimension, hash) {conflict}", rows)
            cur.execute("DELETE FROM chronicle_vector_claims WHERE model = %s AND dimension = %s AND hash = ANY(%s)",
                        (model, dimension, [h for h, _ in items]))

    def count(self) -> int:
        return int(self.pg.execute("SELECT count(*) FROM chronicle_vector_cache").fetchone()[0])

    def claim(self, model: str, dimension: int, hashes: Sequence[str], *, seconds: float, limit: int,
              skip_cached: bool = True) -> list[str]:
        """Lease up to ``limit`` hashes nobody else holds (and, unless forced, not cached yet).

        Each lease is a compare-and-set: taken when free, ours, expired, or held by the very owner we
        saw was gone (a dead process on this host); a concurrent taker's lease is never overwritten."""
        now = time.time()
        cached = self.has_many(model, dimension, hashes) if skip_cached else set()
        held = {h: (o, e) for h, o, e in self.pg.execute(
            "SELECT hash, owner, expires FROM chronicle_vector_claims WHERE model = %s AND dimension = %s "
            "AND hash = ANY(%s)", (model, dimension, list(hashes))).fetchall()}
        got: list[str] = []
        for h in dict.fromkeys(hashes):
            if len(got) >= limit:
                break
            if h in cached:
                continue
            seen = held.get(h)
            if seen is not None and seen[0] != self.owner and not lease_is_stale(seen[0], seen[1], now):
                continue
            row = self.pg.execute(
                "INSERT INTO chronicle_vector_claims AS c VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (model, dimension, hash) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires "
                "WHERE c.owner = %s OR c.owner = %s OR c.expires <= %s RETURNING hash",
                (model, dimension, h, self.owner, now + seconds, self.owner, seen[0] if seen else self.owner,
                 now)).fetchone()
            if row is not None:
                got.append(h)
        return got

    def release(self, model: str, dimension: int, hashes: Sequence[str]) -> None:
        self.pg.execute("DELETE FROM chronicle_vector_claims WHERE model = %s AND dimension = %s "
                          "AND hash = ANY(%s) AND owner = %s", (model, dimension, list(hashes), self.owner))
