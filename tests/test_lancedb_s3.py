"""LanceDB tables on S3-compatible object storage (``CHRONICLE_LANCEDB_URL=s3://…``), moto's server.

Concurrent writers are separate processes started with ``spawn`` (LanceDB's runtime does not survive
``fork``); Lance commits each version with a conditional put, so none of their rows is lost or doubled.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from db.vectors import VectorWriter, connect, open_table
from pipeline import Settings
from tests import s3server
from tests.s3server import S3Server

s3_server, s3 = s3server.s3_server, s3server.s3  # the fixtures, for this module

DIM = 4


def rows(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "kind": "page", "site": "s", "environment": "production", "status": "published",
             "model": "m", "dimension": DIM, "content_hash": f"h{i}", "text": f"text {prefix} {i}",
             "vector": [float(i), 1.0, 0.0, 0.5], "position": i} for i in range(n)]


def _write(env: dict[str, str], local: str, uri: str, prefix: str) -> int:
    os.environ.update(env)
    writer = VectorWriter(Path(local), uri)
    total = 0
    for batch in range(3):
        total += writer.upsert("pages__m__4", DIM, rows(f"{prefix}{batch}", 20))
    return total


def test_settings_pick_the_url(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CHRONICLE_LANCEDB_URL", "s3://vectors-bucket/prod")
    assert Settings(data_dir=tmp_path).lancedb_uri == "s3://vectors-bucket/prod"
    monkeypatch.delenv("CHRONICLE_LANCEDB_URL")
    assert Settings(data_dir=tmp_path).lancedb_uri == str(tmp_path.resolve() / "lancedb")


def test_lancedb_on_s3_with_concurrent_writers(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    uri = f"s3://{bucket}/lancedb"
    writer = VectorWriter(tmp_path / "lock", uri)
    assert writer.upsert("pages__m__4", DIM, rows("seed", 5)) == 5
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_write, [(s3.env, str(tmp_path / f"w{n}"), uri, f"w{n}-") for n in range(3)])
    assert results == [60, 60, 60]
    table = open_table(connect(uri), "pages__m__4")
    assert table is not None
    ids = table.to_arrow().column("id").to_pylist()
    assert len(ids) == 5 + 180 == len(set(ids)), "no row lost, none doubled"
    hits = table.search([1.0, 1.0, 0.0, 0.5]).limit(3).to_list()
    assert len(hits) == 3
    assert any(key.startswith("lancedb/pages__m__4.lance/") for key in s3.keys(bucket, "lancedb/"))
    assert not any((tmp_path / "lock").glob("*.lance")), "no table on local disk"
