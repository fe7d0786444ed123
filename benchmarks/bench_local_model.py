"""The local model (all-MiniLM-L6-v2): ONNX Runtime against sentence-transformers/torch, in the same run.

* throughput: texts/s of the ONNX backend vs the torch backend on the same mixed page/section/post
  texts from the sample generator (each warmed first; rounds interleaved so background load hits both
  alike; all texts over all rounds' time) — target ≥ 1.0×;
* cold start: a fresh process that imports the embedder, opens the model and returns the first vector,
  whole-process wall time (median of several runs) — target < 1.5 s; torch's cold start in the notes.

``python -m benchmarks local-model`` (``--quick``: fewer texts and runs). Needs the local and torch extras.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from .common import Result

REPO = Path(__file__).resolve().parent.parent
COLD_BUDGET_MS = 1500.0
_COLD = """
import time
started = time.perf_counter()
from pipeline.embeddings.embedders import LocalEmbedder
embedder = LocalEmbedder(backend="{backend}")
assert len(embedder.embed(["how pictures are positioned next to the words around them"]).vectors[0]) == 384
assert embedder.backend == "{backend}"
print((time.perf_counter() - started) * 1000)
"""


def mixed_texts(count: int) -> list[str]:
    """Page, section and post texts as the embedder sees them, from generated CMS events (a page is its
    title, slug and sections' text, so pages are the long ones that fill the 256-token window)."""
    from pipeline.embeddings import text as T
    from pipeline.sample import generate

    pages: dict[str, tuple[str, str]] = {}
    page_sections: dict[str, list[dict]] = defaultdict(list)
    sections: list[str] = []
    posts: list[str] = []
    for envelope in generate(count * 12, seed=19):
        data = envelope["data"]
        if envelope["type"] == "PageCreated":
            pages[data["id"]] = (data["title"], data["slug"])
        elif envelope["type"] == "SectionEntryCreated" and data.get("content"):
            sections.append(T.section_text(data["content"]))
            if data.get("page_id"):
                page_sections[data["page_id"]].append(data["content"])
        elif envelope["type"] == "PostCreated":
            posts.append(T.post_text(data["title"], data.get("excerpt") or "", data.get("body") or "",
                                     data.get("categories") or [], data.get("tags") or []))
    page_texts = [T.page_text(title, slug, page_sections[pid]) for pid, (title, slug) in pages.items()]
    texts: list[str] = []
    for group in zip(page_texts, sections[::2], sections[1::2], posts, strict=False):
        texts.extend(t for t in group if t.strip())
    return texts[:count]


def _seconds(encode, texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return time.perf_counter() - started


def cold_start_ms(backend: str) -> tuple[float, float]:
    """(whole process, import-to-first-vector inside it) in ms, for a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _COLD.format(backend=backend)], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"cold start of the {backend} backend failed: {done.stderr[-800:]}")
    return elapsed, float(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Result]:
    from pipeline.embeddings import onnx_embedder, torch_embedder

    n, rounds, cold_runs = (32, 1, 1) if quick else (640, 3, 5)
    texts = mixed_texts(n)
    onnx, torch = onnx_embedder.load(), torch_embedder.load()
    onnx.encode(texts[:8])  # warm: sessions, thread pools, first-call allocations
    torch.encode(texts[:8])
    ours: list[float] = []  # seconds per round
    theirs: list[float] = []
    for _ in range(rounds):
        ours.append(_seconds(onnx.encode, texts))
        theirs.append(_seconds(torch.encode, texts))
    lengths = sorted(len(onnx.tokenizer.encode(t).ids) for t in texts)
    mix = f"{len(texts)} texts, tokens median {statistics.median(lengths):.0f}, max {lengths[-1]} (window 256)"

    cold_onnx, cold_torch = [], []
    for _ in range(cold_runs):
        cold_onnx.append(cold_start_ms("onnx"))
        cold_torch.append(cold_start_ms("torch"))
    onnx_ms = statistics.median(c[0] for c in cold_onnx)
    torch_ms = statistics.median(c[0] for c in cold_torch)
    return [
        Result(f"local model throughput, ONNX Runtime vs torch ({rounds} rounds)", "texts/s",
               len(texts) * rounds / sum(ours), len(texts) * rounds / sum(theirs), target_ratio=1.0, notes={
                   "texts": mix, "rounds (onnx / torch texts/s)": " ".join(
                       f"{len(texts) / a:.1f}/{len(texts) / b:.1f}" for a, b in zip(ours, theirs, strict=True))}),
        Result(f"local model cold start, ONNX (median of {cold_runs} processes, vs budget)", "ms", onnx_ms,
               COLD_BUDGET_MS, target_ratio=1.0, higher_is_better=False, notes={
                   "in-process import → first vector": f"{statistics.median(c[1] for c in cold_onnx):.0f} ms",
                   "torch backend, same measure": f"{torch_ms:.0f} ms whole process, "
                                                  f"{statistics.median(c[1] for c in cold_torch):.0f} ms in-process",
                   "budget": f"< {COLD_BUDGET_MS:.0f} ms"}),
        Result(f"local model cold start, ONNX vs torch (median of {cold_runs} processes)", "ms", onnx_ms, torch_ms,
               higher_is_better=False),
    ]
