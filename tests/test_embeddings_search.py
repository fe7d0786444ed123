"""Search with the real local model (all-MiniLM-L6-v2, offline) over the WordPress theme unit test pages:
a paraphrase that shares no keyword with the page still finds it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.embeddings.api import embedding_status, search
from tests.conftest import SHARED

WXR = SHARED / "testdata" / "cms" / "themeunittestdata.wordpress.xml"
NS = {"wp": "https://wordpress.org/export/1.2/", "content": "http://purl.org/rss/1.0/modules/content/"}


def wxr_pages(path: Path) -> list[dict]:
    """The pages of a WXR export as Chronicle envelopes: page, one text section with its body, publish."""
    envelopes: list[dict] = [
        {"type": "SiteCreated", "data": {"id": "wp", "team_id": "t", "name": "Theme Unit Test"}},
        {"type": "SectionDefinitionCreated", "data": {"id": "wp-text", "site_id": "wp", "name": "text"}},
    ]
    for item in ET.parse(path).getroot().iter("item"):
        if item.findtext("wp:post_type", namespaces=NS) != "page":
            continue
        pid = item.findtext("wp:post_id", namespaces=NS)
        title = item.findtext("title") or ""
        slug = item.findtext("wp:post_name", namespaces=NS) or pid
        body = item.findtext("content:encoded", namespaces=NS) or ""
        envelopes.append({"type": "PageCreated", "data": {"id": pid, "site_id": "wp", "title": title, "slug": slug}})
        envelopes.append({"type": "SectionEntryCreated", "data": {"id": f"{pid}-body", "definition_id": "wp-text",
                                                                  "page_id": pid, "content": {"body": body}}})
        if item.findtext("wp:status", namespaces=NS) == "publish":
            envelopes.append({"type": "PagePublished", "data": {"id": pid}})
    return envelopes


@pytest.fixture
def local_model(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.embeddings.local_model import LocalModelUnavailable, resolve_backend

    try:
        resolve_backend("auto")  # ONNX Runtime (the local extra), else torch
    except LocalModelUnavailable as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "local")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_search_finds_a_wordpress_page_by_paraphrase(chronicle, local_model) -> None:
    envelopes = wxr_pages(WXR)
    assert sum(e["type"] == "PageCreated" for e in envelopes) == 21
    chronicle.emit_many(envelopes)
    chronicle.drain()
    status = embedding_status(chronicle)
    assert status["kinds"]["page"]["model"] == "all-MiniLM-L6-v2" and status["kinds"]["page"]["dimension"] == 384
    assert status["kinds"]["page"]["pending"] == 0 and status["kinds"]["page"]["embedded"] == 21
    # "Page Image Alignment": no query word appears in its title.
    hits = search(chronicle, "how pictures are positioned next to the words around them", kinds=["pages"],
                  status="published", limit=3)
    assert "1133" in [h.id for h in hits], [(h.id, h.text[:40]) for h in hits]
    # "Page with comments disabled", by meaning.
    hits = search(chronicle, "a static page where visitors cannot leave any remarks", kinds=["pages"], limit=3)
    assert "156" in [h.id for h in hits], [(h.id, h.text[:40]) for h in hits]
    # Vector-only also works, and filters hold.
    hits = search(chronicle, "pictures positioned beside paragraphs", kinds=["pages"], mode="vector", limit=5)
    assert "1133" in [h.id for h in hits]
    assert search(chronicle, "pictures", kinds=["pages"], site="elsewhere") == []
