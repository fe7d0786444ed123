"""``chronicle status`` counts embeddings from the ledger (quick) and agrees with the per-document
comparison (``--exact``) wherever the two can agree; where they cannot, the lag says so."""

from __future__ import annotations

import orjson
import pytest

from pipeline import Chronicle
from pipeline.embeddings.api import embedding_status
from pipeline.status import full_status
from tests.helpers import cli


def sections(n: int) -> list[dict]:
    out = [{"type": "SiteCreated", "data": {"id": "s", "team_id": "t", "name": "Site"}, "id": "site"},
           {"type": "SectionDefinitionCreated", "data": {"id": "def", "site_id": "s", "name": "text"}, "id": "def"}]
    out += [{"type": "SectionEntryCreated", "id": f"sec-{i}",
             "data": {"id": f"sec-{i}", "definition_id": "def", "content": {"body": f"Section number {i}"}}}
            for i in range(n)]
    return out


@pytest.fixture
def embedding(monkeypatch: pytest.MonkeyPatch, chronicle: Chronicle) -> Chronicle:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    chronicle.settings.refresh_sections()
    return chronicle


def counts(status: dict, kind: str = "section") -> dict:
    return {k: status["kinds"][kind][k] for k in ("items", "embedded", "pending", "failed")}


def test_quick_counts_equal_exact_counts_once_everything_is_embedded(embedding: Chronicle) -> None:
    embedding.emit_many([*sections(12), {"type": "SectionEntryDeleted", "data": {"id": "sec-3"}}])
    embedding.drain()
    quick, exact = embedding_status(embedding, exact=False), embedding_status(embedding)
    assert counts(quick) == counts(exact) == {"items": 11, "embedded": 11, "pending": 0, "failed": 0}
    assert (quick["exact"], exact["exact"]) == (False, True)
    assert {k: v for k, v in quick.items() if k not in ("kinds", "exact")} == \
        {k: v for k, v in exact.items() if k not in ("kinds", "exact")}
    assert {k: counts(quick, k) for k in quick["kinds"]} == {k: counts(exact, k) for k in exact["kinds"]}


def test_before_embedding_quick_says_pending_and_an_unembedded_edit_shows_as_lag(embedding: Chronicle) -> None:
    embedding.emit_many(sections(5))
    embedding.project()  # the read model has them; nothing embedded yet
    assert counts(embedding_status(embedding, exact=False)) == {"items": 5, "embedded": 0, "pending": 5, "failed": 0}
    embedding.drain()
    embedding.emit("SectionEntryUpdated", {"id": "sec-0", "content": {"body": "New words"}})
    embedding.project()
    quick, exact = embedding_status(embedding, exact=False), embedding_status(embedding)
    assert counts(exact)["pending"] == 1 and counts(quick)["pending"] == 0  # the older text is embedded
    assert quick["lag"]["embeddings"] > 0  # … and the lag says an edit waits


def test_the_cli_is_quick_by_default_and_exact_on_request(embedding: Chronicle) -> None:
    embedding.emit_many(sections(4))
    embedding.drain()
    quick = orjson.loads(cli("status", "--json", check=True).stdout)
    exact = orjson.loads(cli("status", "--json", "--exact", check=True).stdout)
    assert (quick["embeddings"]["exact"], exact["embeddings"]["exact"]) == (False, True)
    assert counts(quick["embeddings"]) == counts(exact["embeddings"])
    assert full_status(embedding)["embeddings"]["exact"] is True  # the Python API, the demo
    assert full_status(embedding, exact=False)["embeddings"]["exact"] is False
