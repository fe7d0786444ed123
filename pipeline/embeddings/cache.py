"""The content-addressed vector cache: (model, dimension, sha256 of the embedded text) → vector.

It lives in ``data/cache/embeddings/vectors.db``, outside the projection database, so a replay (which
rebuilds ``sqlite.db``) or a lost LanceDB directory never costs an API call: every vector the log says
exists is here. It is append-only and keyed by content, so concurrent writers cannot conflict (a second
write of the same key is the same bytes; ``INSERT OR IGNORE``).

Claims: before paying for a text, a worker takes a time-limited lease on its key. Another worker that
sees the lease leaves the item to its owner and later finds the vector here; a lease of a crashed
worker expires and the item is taken over. Together with the cache check this is "never pay twice".

A lease names its owner's host (hostname and pid namespace) and pid. A lease whose owner was a
process in our host and pid namespace that no longer exists (a ``chronicle drain`` stopped with
Ctrl-C, a worker killed with -9) is taken over at once instead of after
``CHRONICLE_EMBEDDING_CLAIM_SECONDS`` (600 s). Other owners' leases can only expire: we cannot see
their processes. A reused pid only makes us wait for the expiry, as before.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.owners import HOST, new_owner, owner_gone, pid_alive

Key = tuple[str, int, str]  # model, dimension, content hash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, dimension INTEGER NOT NULL, hash TEXT NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY (model, dimension, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (model TEXT NOT NULL, dimension INTEGER NOT NULL, hash TEXT NOT NULL,
    owner TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (model, dimension, hash)) WITHOUT ROWID;
"""
_CHUNK = 400  # SQLite parameter limit friendly


def lease_is_stale(owner: str, expires: float, now: float, *, host: str = HOST,
                   pid_alive: Callable[[int], bool] = pid_alive) -> bool:
    """An expired lease, or one whose owner process on this host is gone (owner ``host:pid:token``)."""
    return expires <= now or owner_gone(owner, host=host, alive=pid_alive)


def cache_dir(data_dir: Path) -> Path:
    return data_dir / "cache" / "embeddings"


class VectorCache:
    def __init__(self, data_dir: Path) -> None:
        path = cache_dir(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path / "vectors.db"), timeout=60, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self.owner = new_owner()

    def close(self) -> None:
        self.conn.close()

    # -- vectors ----------------------------------------------------------------------------------------

    def get_many(self, model: str, dimension: int, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT hash, vector FROM vectors WHERE model=? AND dimension=? AND hash IN ({marks})",
                [model, dimension, *chunk]).fetchall()
            for h, blob in rows:
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def has_many(self, model: str, dimension: int, hashes: Iterable[str]) -> set[str]:
        found: set[str] = set()
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            found.update(h for (h,) in self.conn.execute(
                f"SELECT hash FROM vectors WHERE model=? AND dimension=? AND hash IN ({','.join('?' * len(chunk))})",
                [model, dimension, *chunk]))
        return found

    def delete(self, keys: Iterable[Key]) -> int:
        """Remove entries (erasure: a vector computed from erased text goes with it); returns how many."""
        rows = list(keys)
        if not rows:
            return 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            before = self.conn.total_changes
            self.conn.executemany("DELETE FROM vectors WHERE model=? AND dimension=? AND hash=?", rows)
            removed = self.conn.total_changes - before
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return removed

    def put_many(self, model: str, dimension: int, items: Sequence[tuple[str, Sequence[float]]], *,
                 replace: bool = False) -> None:
        """Store vectors; ``replace`` (forced reindex) overwrites, otherwise the first vector wins."""
        rows = [(model, dimension, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(f"{verb} INTO vectors VALUES (?, ?, ?, ?)", rows)
            self.conn.executemany("DELETE FROM claims WHERE model=? AND dimension=? AND hash=?",
                                  [(model, dimension, h) for h, _ in items])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]

    # -- claims -----------------------------------------------------------------------------------------

    def claim(self, model: str, dimension: int, hashes: Sequence[str], *, seconds: float, limit: int,
              skip_cached: bool = True) -> list[str]:
        """Lease up to ``limit`` hashes nobody else holds (and, unless forced, not cached yet)."""
        now = time.time()
        got: list[str] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cached = self.has_many(model, dimension, hashes) if skip_cached else set()
            for h in dict.fromkeys(hashes):
                if len(got) >= limit:
                    break
                if h in cached:
                    continue
                row = self.conn.execute("SELECT owner, expires FROM claims WHERE model=? AND dimension=? AND hash=?",
                                        (model, dimension, h)).fetchone()
                if row is not None and row[0] != self.owner and not lease_is_stale(row[0], row[1], now):
                    continue
                self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                                  (model, dimension, h, self.owner, now + seconds))
                got.append(h)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return got

    def release(self, model: str, dimension: int, hashes: Sequence[str]) -> None:
        self.conn.executemany("DELETE FROM claims WHERE model=? AND dimension=? AND hash=? AND owner=?",
                              [(model, dimension, h, self.owner) for h in hashes])
