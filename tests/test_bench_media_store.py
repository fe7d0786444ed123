"""``python -m benchmarks media --store s3`` runs and reports both sides (figures: docs/operations.md)."""

from __future__ import annotations

import pytest

from tests.helpers import terminate
from tests.s3server import start_s3


@pytest.mark.slow
def test_the_store_benchmark_runs_in_quick_mode() -> None:
    terminate(start_s3().proc)  # skips (or fails under CI=true) without moto[server], like the other S3 tests
    from benchmarks import bench_media_store

    [result] = bench_media_store.run(quick=True)
    assert result.ours > 0 and result.baseline > 0
    assert "s3 (moto) img/s" in result.notes and "local img/s" in result.notes
