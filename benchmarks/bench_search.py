"""Search quality on the WordPress export: recall@5, recall@10 and MRR for vector, full-text and hybrid
search, before and after chunking, in the same run.

The export (``samples/wordpress``) is imported and embedded twice through the whole pipeline (import →
project → embed → LanceDB → ``search``), with the configured local embedder behind the ``Embedder``
protocol (whichever backend ``CHRONICLE_EMBEDDER=local`` provides):

- *before*: one chunk per item (``CHRONICLE_EMBEDDING_MAX_CHUNKS=1``): the head of each text, what the
  model's window saw before chunking;
- *after*: the default chunking.

The labelled queries are in ``benchmarks/search_queries.json`` (add to it). ``recall@k`` is the share of
queries with a relevant item in the first k results (several items can be relevant: the export repeats
some content as a page and as a post); MRR is the mean of 1 / rank of the first relevant item.
Targets: vector recall@5 ≥ 0.9 after chunking; hybrid ≥ max(vector, full-text) on recall@5 and on MRR.
``--quick`` (what ``make test`` runs): the queries marked ``quick``, after chunking only.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Result, environment

ROOT = Path(__file__).resolve().parent.parent
WXR = ROOT / "samples" / "wordpress" / "themeunittestdata.wordpress.xml"
QUERIES = Path(__file__).with_name("search_queries.json")
MODES = ("vector", "fts", "hybrid")
KINDS = ["pages", "posts"]


@dataclass(frozen=True)
class Scores:
    recall5: float
    recall10: float
    mrr: float


def load_queries(quick: bool = False) -> list[dict[str, Any]]:
    queries = json.loads(QUERIES.read_text())["queries"]
    return [q for q in queries if q.get("quick")] if quick else queries


def wp_id(item_id: str) -> str:
    """``wxr:<site>:<post id>`` → the WordPress post id the labels use."""
    return item_id.rsplit(":", 1)[-1]


def score(rankings: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]]) -> Scores:
    """Pure: recall@5, recall@10 (a relevant item in the first k) and MRR over the queries."""
    ranks = []
    for ranked, wanted in zip(rankings, relevant, strict=True):
        ranks.append(next((i for i, item in enumerate(ranked, 1) if item in set(wanted)), None))
    n = len(ranks) or 1
    return Scores(sum(1 for r in ranks if r is not None and r <= 5) / n,
                  sum(1 for r in ranks if r is not None and r <= 10) / n,
                  sum(1.0 / r for r in ranks if r is not None) / n)


def build(path: Path, **env: str) -> Any:
    """The export imported and fully embedded in a fresh data directory."""
    from pipeline import Chronicle, Settings
    from pipeline.importers.wxr_import import import_wxr
    from pipeline.notify import NullNotifier

    chronicle = Chronicle(Settings(data_dir=path), notifier=NullNotifier())
    with environment(CHRONICLE_EMBEDDER="local", **env):
        import_wxr(chronicle, WXR)
        chronicle.drain()
    return chronicle


def evaluate(chronicle: Any, queries: list[dict[str, Any]], **env: str) -> dict[str, Scores]:
    from pipeline.embeddings.api import search

    relevant = [q["relevant"] for q in queries]
    out = {}
    with environment(CHRONICLE_EMBEDDER="local", **env):
        for mode in MODES:
            rankings = [[wp_id(h.id) for h in search(chronicle, q["q"], kinds=KINDS, limit=10, mode=mode)]
                        for q in queries]
            out[mode] = score(rankings, relevant)
    return out


def run(quick: bool) -> list[Result]:
    queries = load_queries(quick)
    variants = {"after": {}} if quick else {"before": {"CHRONICLE_EMBEDDING_MAX_CHUNKS": "1"}, "after": {}}
    table: dict[str, dict[str, Scores]] = {}
    with tempfile.TemporaryDirectory(prefix="chronicle-bench-search-") as tmp:
        for name, env in variants.items():
            chronicle = build(Path(tmp) / name, **env)
            try:
                table[name] = evaluate(chronicle, queries, **env)
            finally:
                chronicle.close()
    for name, by_mode in table.items():
        for mode, s in by_mode.items():
            print(f"  {name:6} {mode:6}  recall@5 {s.recall5:.3f}  recall@10 {s.recall10:.3f}  MRR {s.mrr:.3f}"
                  f"  ({len(queries)} queries)")
    after = table["after"]
    best_r5 = max(after["vector"].recall5, after["fts"].recall5)
    best_mrr = max(after["vector"].mrr, after["fts"].mrr)
    results = [  # in percent, so the table shows them to 0.1
        Result("search: vector recall@5 after chunking (vs 0.9)", "%", 100 * after["vector"].recall5, 90.0, 1.0),
        Result("search: hybrid recall@5 (vs best of vector, fts)", "%", 100 * after["hybrid"].recall5,
               100 * best_r5, 1.0),
        Result("search: hybrid MRR (vs best of vector, fts)", "%", 100 * after["hybrid"].mrr, 100 * best_mrr, 1.0),
    ]
    if "before" in table:
        before = table["before"]
        for mode in MODES:
            results.append(Result(f"search: {mode} recall@5 after vs before chunking", "%",
                                  100 * after[mode].recall5, 100 * before[mode].recall5))
            results.append(Result(f"search: {mode} MRR after vs before chunking", "%", 100 * after[mode].mrr,
                                  100 * before[mode].mrr))
    for r in results:
        print(f"  ratio {r.ratio:.2f} (target {r.target_ratio or '-'}): {r.name}, ours {r.ours:.1f} {r.unit}, "
              f"baseline {r.baseline:.1f} {r.unit}")
    return results
