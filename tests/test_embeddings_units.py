"""Pure pieces of the embedding pipeline: text, hashing, batching, decisions, retry headers, filters."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.embeddings import text as T
from pipeline.embeddings.batching import batches
from pipeline.embeddings.documents import Document
from pipeline.embeddings.embedders import DeterministicEmbedder, hashed_bag_of_words
from pipeline.embeddings.ledger import StateRow, Target, needs_embedding
from pipeline.embeddings.search import where_clause
from pipeline.embeddings.vector_sync import plan_rows
from pipeline.retry_after import retry_after_seconds


def doc(id: str = "1", text: str = "hello world") -> Document:
    return Document("page", id, "s", None, "draft", text, text, T.content_hash(text))


def test_plain_strips_html_shortcodes_and_entities() -> None:
    assert T.plain("<p>Caf&eacute; [gallery ids=\"1,2\"] <b>menu</b></p>\n\n") == "Café menu"


def test_page_text_covers_title_slug_and_sections_in_order() -> None:
    text = T.page_text("About", "our-story", [{"body": "<p>First</p>"}, {"items": [{"q": "Second"}]}])
    assert text == "About\nour story\nFirst\nSecond"


def test_image_text_uses_editor_and_ai_descriptions() -> None:
    meta = {"alt": "A red boat", "tags": ["harbour", "boat"], "ai": {"alt_text": "A red boat", "caption": "At dawn",
                                                                     "tags": ["sea"], "model": "m"}}
    assert T.image_text("boat.jpg", meta) == "A red boat\nharbour boat\nAt dawn\nsea\nboat.jpg"


def test_hash_covers_only_embedded_text() -> None:
    assert T.content_hash("a") == T.content_hash("a") != T.content_hash("b")


@given(st.text(max_size=3000), st.integers(min_value=16, max_value=400))
def test_truncate_respects_the_token_budget(value: str, budget: int) -> None:
    cut = T.truncate(value, budget)
    assert value.startswith(cut)
    assert T.estimate_tokens(cut) <= budget or cut == ""


def test_batches_respect_input_count() -> None:
    items = list(range(10_000))
    groups = list(batches(items, ["x"] * len(items), max_inputs=2048, max_tokens=300_000))
    assert len(groups) == 5 and sum(map(len, groups)) == 10_000 and max(map(len, groups)) == 2048


def test_batches_respect_token_budget() -> None:
    texts = ["y" * 3000] * 10  # 1000 estimated tokens each
    groups = list(batches(list(range(10)), texts, max_inputs=2048, max_tokens=2500))
    assert [len(g) for g in groups] == [2, 2, 2, 2, 2]


def test_needs_embedding_only_when_the_key_changed() -> None:
    d = doc()
    same = StateRow(d.content_hash, "embedded", None, None)
    assert not needs_embedding(d, same)
    assert needs_embedding(d, None)
    assert needs_embedding(d, StateRow("0" * 64, "embedded", None, None))
    assert not needs_embedding(d, StateRow(d.content_hash, "failed", None, None)), "failures are not retried"
    assert needs_embedding(d, StateRow(d.content_hash, "deleted", None, None))
    assert needs_embedding(d, same, force_for="r1")
    assert not needs_embedding(d, StateRow(d.content_hash, "embedded", "r1", None), force_for="r1")


def test_plan_rows_keeps_stale_rows_until_the_new_vector_exists() -> None:
    a, b, c = doc("a"), doc("b", "new text"), doc("c")
    states = {"a": StateRow(a.content_hash, "embedded", None, None),
              "b": StateRow(T.content_hash("old text"), "embedded", None, None),
              "c": StateRow(c.content_hash, "failed", None, None)}
    upserts, deletes = plan_rows(Target("page", "m", 8), ["a", "b", "c", "gone"], {"a": a, "b": b, "c": c}, states)
    assert [d.id for d in upserts] == ["a"]
    assert deletes == ["c", "gone"]


def _error_with(headers: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(response=SimpleNamespace(headers=headers))


def test_retry_after_headers() -> None:
    assert retry_after_seconds(_error_with({"retry-after": "2"})) == 2.0
    assert retry_after_seconds(_error_with({"retry-after-ms": "150"})) == pytest.approx(0.15)
    assert retry_after_seconds(_error_with({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}),
                               now=1445412480.0) == pytest.approx(10.0)
    assert retry_after_seconds(_error_with({})) is None
    assert retry_after_seconds(None) is None


def test_where_clause_is_quoted() -> None:
    assert where_clause(site="o'neil", status="published") == "site = 'o''neil' AND status = 'published'"
    assert where_clause() is None


def test_test_embedder_is_deterministic_and_lexical() -> None:
    e = DeterministicEmbedder(dimension=128)
    v1, v2, v3 = e.embed(["red apples", "red apples", "blue ocean waves"]).vectors
    assert v1 == v2
    near = sum(x * y for x, y in zip(hashed_bag_of_words("fresh red apples", 128), v1, strict=True))
    far = sum(x * y for x, y in zip(hashed_bag_of_words("fresh red apples", 128), v3, strict=True))
    assert near > far


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path) -> None:
    """A drain stopped with Ctrl-C (or a worker killed with -9) leaves leases that would otherwise block
    its items for CHRONICLE_EMBEDDING_CLAIM_SECONDS; a live owner, or one on another host, still holds."""
    import subprocess
    import sys

    from pipeline.embeddings.cache import HOST, VectorCache, lease_is_stale

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    assert lease_is_stale(f"{HOST}:{dead_pid}:x", expires=1e12, now=0)
    assert not lease_is_stale(f"{HOST}:{os.getpid()}:x", expires=1e12, now=0)
    assert not lease_is_stale(f"elsewhere:{dead_pid}:x", expires=1e12, now=0)
    assert lease_is_stale(f"elsewhere:{dead_pid}:x", expires=5, now=10)
    assert not lease_is_stale("legacy-owner-token", expires=1e12, now=0)

    mine, theirs = VectorCache(tmp_path), VectorCache(tmp_path)
    assert theirs.claim("m", 4, ["h1", "h2"], seconds=600, limit=10) == ["h1", "h2"]
    assert mine.claim("m", 4, ["h1", "h2"], seconds=600, limit=10) == [], "a live owner's lease holds"
    theirs.conn.execute("UPDATE claims SET owner = ?", (f"{HOST}:{dead_pid}:gone",))
    assert mine.claim("m", 4, ["h1", "h2"], seconds=600, limit=10) == ["h1", "h2"]
    mine.close()
    theirs.close()
