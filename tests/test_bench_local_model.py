"""``python -m benchmarks local-model`` runs, in its quickest mode, so it cannot rot. Only that it
measures what it says is checked here: the figures themselves belong to the benchmark (the CPU is
shared, timings are noisy)."""

from __future__ import annotations

from benchmarks import bench_local_model
from tests.test_local_model import require_backend


def test_mixed_texts_mix_long_pages_with_short_sections_and_posts() -> None:
    texts = bench_local_model.mixed_texts(40)
    assert len(texts) == 40
    lengths = sorted(len(t) for t in texts)
    assert lengths[0] < 400 < 1500 < lengths[-1]


def test_local_model_benchmark_runs_quick() -> None:
    require_backend("onnx")
    require_backend("torch")
    throughput, cold, versus_torch = bench_local_model.run(quick=True)
    assert throughput.unit == "texts/s" and throughput.ours > 0 and throughput.baseline > 0
    assert throughput.target_ratio == 1.0 and "texts" in throughput.notes
    assert cold.unit == "ms" and cold.baseline == 1500.0 and not cold.higher_is_better and cold.ours > 0
    assert "torch backend, same measure" in cold.notes
    assert versus_torch.baseline > 0 and versus_torch.target_ratio is None
