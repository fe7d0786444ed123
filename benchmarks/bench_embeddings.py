"""Embeddings: batched vs one-request-per-item, zero-cost replay/reindex, and a 429 storm.

Everything runs against the local fake OpenAI server (tests/fakes/openai_embeddings_server.py) with a
fixed per-request latency, through the real ``openai`` client and the whole pipeline (emit → project →
embed → ledger events → LanceDB writer).
"""

from __future__ import annotations

import math
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .common import Result, environment

LATENCY = 0.05
DIMENSION = 1536
BATCH = 2048
WORDS = ["bakery", "harbour", "violin", "glacier", "orchard", "lantern", "compass", "meadow", "falcon", "quartz",
         "pepper", "saddle", "river", "copper", "thistle", "beacon"]


def _envelopes(n: int) -> list[dict]:
    out = [{"type": "SiteCreated", "data": {"id": "site", "team_id": "t", "name": "Bench"}},
           {"type": "SectionDefinitionCreated", "data": {"id": "def", "site_id": "site", "name": "text"}}]
    for i in range(n):
        text = (f"Section {i}: the {WORDS[i % 16]} by the {WORDS[(i * 7) % 16]} and the {WORDS[(i * 11) % 16]}, "
                f"item number {i} of the benchmark set.")
        out.append({"type": "SectionEntryCreated", "data": {"id": f"s{i}", "definition_id": "def",
                                                            "content": {"body": text}}})
    return out


@contextmanager
def _environment(base_url: str, **extra: str):
    values = {"CHRONICLE_EMBEDDER": "openai", "OPENAI_API_KEY": "bench-not-a-real-key", "OPENAI_BASE_URL": base_url,
              "CHRONICLE_EMBEDDING_DIMENSION": str(DIMENSION), "CHRONICLE_EMBEDDING_BACKOFF_INITIAL": "0.01",
              "CHRONICLE_EMBEDDING_BACKOFF_MAX": "0.1", **extra}
    with environment(**values):
        yield


def _chronicle(path: Path):
    from pipeline import Chronicle, Settings
    from pipeline.notify import NullNotifier

    return Chronicle(Settings(data_dir=path), notifier=NullNotifier())


def _naive_items_per_second(base_url: str, texts: list[str]) -> float:
    """One request per item with the same client settings: what an unbatched worker would do."""
    import openai

    client = openai.OpenAI(api_key="bench-not-a-real-key", base_url=base_url, max_retries=0)
    started = time.perf_counter()
    for text in texts:
        client.embeddings.create(model="text-embedding-3-small", input=[text], dimensions=DIMENSION)
    return len(texts) / (time.perf_counter() - started)


def run(quick: bool) -> list[Result]:
    from pipeline.embeddings import sync as embed_sync
    from pipeline.embeddings import vector_sync
    from pipeline.embeddings.api import embedding_status, request_reindex
    from tests.fakes.openai_embeddings_server import running

    n = 2_000 if quick else 10_000
    naive_sample = 40 if quick else 100
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, running(latency=LATENCY, keep_texts=False) as server, \
            _environment(server.base_url, CHRONICLE_EMBEDDING_BATCH_SIZE=str(BATCH)):
        chronicle = _chronicle(Path(tmp) / "data")
        envelopes = _envelopes(n)
        chronicle.emit_many(envelopes)
        started = time.perf_counter()
        chronicle.drain()
        elapsed = time.perf_counter() - started
        requests = server.stats.requests
        embedded = embedding_status(chronicle)["kinds"]["section"]["embedded"]
        texts = [e["data"]["content"]["body"] for e in envelopes[2:2 + naive_sample]]
        naive = _naive_items_per_second(server.base_url, texts)
        results.append(Result(
            "embed N sections (batched pipeline vs 1 request/item)", "items/s", n / elapsed, naive,
            target_ratio=10.0, notes={
                "N": n, "requests": requests, "bound ceil(N/batch)": math.ceil(n / BATCH), "embedded": embedded,
                "latency per request": f"{LATENCY * 1000:.0f} ms", "dimension": DIMENSION,
                "ours": f"whole pipeline (project + embed + ledger events + LanceDB), {elapsed:.2f}s",
                "baseline": f"naive loop timed on {naive_sample} items and extrapolated "
                            f"(≈{n / naive:.0f}s for N)",
                "within bound": requests <= math.ceil(n / BATCH)}))

        # Replay (read model rebuilt, subscribers from zero) and an unchanged reindex: zero requests.
        before = server.stats.requests
        chronicle.close()
        chronicle.settings.projection_db_path.unlink()
        chronicle = _chronicle(Path(tmp) / "data")
        for name in (embed_sync.SUBSCRIPTION, vector_sync.SUBSCRIPTION):
            chronicle.store.set_subscription_position(name, 0)
        started = time.perf_counter()
        chronicle.drain()
        embed_sync.catch_up(chronicle)
        vector_sync.catch_up(chronicle)
        request_reindex(chronicle, kinds=["sections"])
        chronicle.drain()
        replay_seconds = time.perf_counter() - started
        extra = server.stats.requests - before
        results.append(Result(
            "replay + unchanged reindex: API requests", "requests", float(extra), float(requests),
            higher_is_better=False, target_ratio=1.0, notes={
                "baseline": "requests the first embedding needed (what an uncached rebuild would pay)",
                "seconds": round(replay_seconds, 2), "zero": extra == 0}))
        chronicle.close()

    storm_n = 500 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp, running(latency=LATENCY, storm=0.3) as server, \
            _environment(server.base_url, CHRONICLE_EMBEDDING_BATCH_SIZE="100",
                         CHRONICLE_EMBEDDING_MAX_ATTEMPTS="30"):
        chronicle = _chronicle(Path(tmp) / "data")
        chronicle.emit_many(_envelopes(storm_n))
        started = time.perf_counter()
        chronicle.drain()
        elapsed = time.perf_counter() - started
        texts = server.stats.texts
        status = embedding_status(chronicle)
        exactly_once = len(texts) == storm_n and len(set(texts)) == storm_n
        results.append(Result(
            "429 storm (30% of requests): items embedded exactly once", "items", float(len(set(texts))),
            float(storm_n), target_ratio=1.0, notes={
                "requests": server.stats.requests, "429s": server.stats.requests - server.stats.ok,
                "billed inputs": len(texts), "exactly once": exactly_once,
                "embedded in ledger": status["kinds"]["section"]["embedded"], "failures": status["usage"]["failures"],
                "seconds": round(elapsed, 2)}))
        chronicle.close()
    return results
