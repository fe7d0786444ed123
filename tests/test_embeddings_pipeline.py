"""End to end through the real ``openai`` client against a local fake server: what each operation costs
in requests (never paying twice), retries, failures, shadow tables and concurrent workers."""

from __future__ import annotations

import math
import shutil

from db.vectors import connect, open_table, table_name
from pipeline import Chronicle
from pipeline.embeddings import sync, vector_sync
from pipeline.embeddings.api import embedding_status, request_reindex, search
from tests.fakes import openai_embeddings_server as fake
from tests.fakes.openai_embeddings_server import FakeEmbeddingsServer

embeddings_api = fake.embeddings_api  # the fixture

WORDS = ["bakery", "harbour", "violin", "glacier", "orchard", "lantern", "compass", "meadow", "falcon", "quartz"]
MODEL, DIM = "text-embedding-3-small", 64


def section_envelopes(n: int, *, page_id: str | None = None, start: int = 0) -> list[dict]:
    out = [{"type": "SiteCreated", "data": {"id": "site1", "team_id": "t", "name": "Site"}, "id": "site1"},
           {"type": "SectionDefinitionCreated", "data": {"id": "def", "site_id": "site1", "name": "text"},
            "id": "def"}]
    for i in range(start, start + n):
        text = f"Section {i} about the {WORDS[i % 10]} near the {WORDS[(i * 7 + 3) % 10]} number {i}"
        out.append({"type": "SectionEntryCreated", "id": f"sec-{i}",
                    "data": {"id": f"sec-{i}", "definition_id": "def", "page_id": page_id, "content": {"body": text}}})
    return out


def rows(kind: str, chronicle: Chronicle, model: str = MODEL, dim: int = DIM) -> list[dict]:
    table = open_table(connect(chronicle.settings.lancedb_dir), table_name(kind, model, dim))
    return [] if table is None else table.to_arrow().to_pylist()


def test_batch_embeds_n_items_in_ceil_n_over_batch_requests(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "100")
    chronicle.settings.refresh_sections()
    chronicle.emit_many(section_envelopes(250))
    chronicle.drain()
    assert embeddings_api.stats.requests == math.ceil(250 / 100)
    assert embeddings_api.stats.inputs == 250
    status = embedding_status(chronicle)
    assert status["kinds"]["section"]["embedded"] == 250 and status["kinds"]["section"]["pending"] == 0
    assert status["usage"]["requests"] == 3 and status["usage"]["tokens"] > 0
    found = rows("section", chronicle)
    assert len(found) == 250 and len({r["id"] for r in found}) == 250
    assert {r["model"] for r in found} == {MODEL} and {r["dimension"] for r in found} == {DIM}


def test_replay_and_lost_vector_tables_cost_zero_requests(chronicle, embeddings_api, settings) -> None:
    chronicle.emit_many(section_envelopes(40))
    chronicle.drain()
    before = embeddings_api.stats.requests
    assert before == 1
    # A replay: the read model is rebuilt from the log. Worst case, the subscribers start over too,
    # and the LanceDB directory is gone.
    chronicle.close()
    settings.projection_db_path.unlink()
    shutil.rmtree(settings.lancedb_dir)
    handle = Chronicle(settings, notifier=chronicle.notifier)
    try:
        for name in (sync.SUBSCRIPTION, vector_sync.SUBSCRIPTION):
            handle.store.set_subscription_position(name, 0)
        handle.drain()
        assert embeddings_api.stats.requests == before, "replay must not call the API"
        sync.catch_up(handle)
        vector_sync.catch_up(handle)
        assert embeddings_api.stats.requests == before, "re-running every subscriber must not either"
        assert len(rows("section", handle)) == 40, "vector rows restored from the cache"
        request_reindex(handle, kinds=["sections"])
        handle.drain()
        assert embeddings_api.stats.requests == before, "reindex of unchanged content must not call the API"
        assert embedding_status(handle)["kinds"]["section"]["embedded"] == 40
    finally:
        handle.close()


def test_only_embedded_text_changes_cost_a_request(chronicle, embeddings_api) -> None:
    chronicle.emit_many([
        {"type": "SiteCreated", "data": {"id": "site1", "team_id": "t", "name": "Site"}},
        {"type": "PageCreated", "data": {"id": "p1", "site_id": "site1", "title": "Opening hours", "slug": "hours"}},
    ])
    chronicle.drain()
    assert embeddings_api.stats.requests == 1
    chronicle.emit("PageUpdated", {"id": "p1", "metadata": {"seo": "x"}, "parent_id": "p0"})
    chronicle.emit("PagePublished", {"id": "p1"})
    chronicle.drain()
    assert embeddings_api.stats.requests == 1, "metadata and status are not embedded: no request"
    assert [r["status"] for r in rows("page", chronicle)] == ["published"], "but the row's status follows"
    request_reindex(chronicle, kinds=["pages"])
    chronicle.drain()
    assert embeddings_api.stats.requests == 1
    chronicle.emit("PageUpdated", {"id": "p1", "title": "Opening hours and holidays"})
    chronicle.drain()
    assert embeddings_api.stats.requests == 2
    assert "holidays" in rows("page", chronicle)[0]["text"]
    chronicle.emit("PageDeleted", {"id": "p1"})
    chronicle.drain()
    assert rows("page", chronicle) == [], "deleting content removes its vectors"
    assert embeddings_api.stats.requests == 2


def test_forced_reindex_pays_once_per_distinct_text_and_resumes_for_free(chronicle, embeddings_api,
                                                                         monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "25")
    chronicle.settings.refresh_sections()
    chronicle.emit_many(section_envelopes(60))
    chronicle.drain()
    assert embeddings_api.stats.requests == 3
    reindex_id = request_reindex(chronicle, kinds=["sections"], force=True)
    chronicle.drain()
    assert embeddings_api.stats.requests == 6, "forced: every text again, still batched"
    # The same request carried out again (a redelivered job, a crash after the work): nothing left to pay.
    sync.reindex(chronicle, id=reindex_id, kinds=["section"], force=True)
    assert embeddings_api.stats.requests == 6


def seed_rows(kind: str, chronicle: Chronicle) -> list[dict]:
    """The CMS's own table of a kind (``section_embeddings``…): what its VectorIndexService reads."""
    table = open_table(connect(chronicle.settings.lancedb_dir), f"{kind}_embeddings")
    return [] if table is None else table.to_arrow().to_pylist()


def test_model_change_builds_a_shadow_table_and_search_answers_throughout(chronicle, embeddings_api) -> None:
    chronicle.emit_many(section_envelopes(30))
    chronicle.drain()
    assert embeddings_api.stats.requests == 1
    assert {h.model for h in search(chronicle, "bakery harbour", kinds=["sections"])} == {MODEL}
    assert embeddings_api.stats.requests == 2, "the query itself is embedded once (then cached)"
    cms_rows = seed_rows("section", chronicle)
    assert len(cms_rows) == 30 and {r["model"] for r in cms_rows} == {MODEL}
    assert {len(r["vector"]) for r in cms_rows} == {DIM} and all(r["content"] for r in cms_rows)

    new_model, new_dim = "text-embedding-3-large", 32
    reindex_id = request_reindex(chronicle, kinds=["sections"], model=new_model, dimension=new_dim)
    chronicle.project()
    sync.reindex(chronicle, id=reindex_id, kinds=["section"], model=new_model, dimension=new_dim)
    assert embeddings_api.stats.requests == 3, "new model: one more batch"
    # Embedded but not swapped: search still answers from the old table.
    hits = search(chronicle, "bakery harbour", kinds=["sections"])
    assert hits and {h.model for h in hits} == {MODEL}
    chronicle.project()
    vector_sync.rebuild(chronicle, id=reindex_id, kind="section", model=new_model, dimension=new_dim)
    assert len(rows("section", chronicle, new_model, new_dim)) == 30, "shadow table complete"
    hits = search(chronicle, "bakery harbour", kinds=["sections"])
    assert hits and {h.model for h in hits} == {MODEL}, "swap happens when the activation is projected"
    assert {r["model"] for r in seed_rows("section", chronicle)} == {MODEL}, "the CMS's table too"
    assert embeddings_api.stats.requests == 3
    chronicle.drain()
    hits = search(chronicle, "bakery harbour", kinds=["sections"])
    assert hits and {h.model for h in hits} == {new_model}
    cms_rows = seed_rows("section", chronicle)
    assert len(cms_rows) == 30 and {r["model"] for r in cms_rows} == {new_model}
    assert {len(r["vector"]) for r in cms_rows} == {new_dim}, "the CMS's table holds the active model's rows"
    assert embedding_status(chronicle)["kinds"]["section"]["model"] == new_model
    assert embeddings_api.stats.requests == 4, "the query, embedded with the new model"
    assert len(rows("section", chronicle)) == 30, "the old table stays (rollback is a free reindex)"
    # New content now goes to the new model; going back to the old model pays only for what is new to it.
    chronicle.emit_many(section_envelopes(1, start=100)[2:])
    chronicle.drain()
    assert embeddings_api.stats.requests == 5
    request_reindex(chronicle, kinds=["sections"], model=MODEL, dimension=DIM)
    chronicle.drain()
    assert embeddings_api.stats.requests == 6, "only the one new section is new to the old model"
    hits = search(chronicle, "bakery harbour", kinds=["sections"])
    assert {h.model for h in hits} == {MODEL} and embeddings_api.stats.requests == 6
    cms_rows = seed_rows("section", chronicle)
    assert {r["model"] for r in cms_rows} == {MODEL} and len(cms_rows) == 31


def test_429_with_retry_after_is_honoured(chronicle, embeddings_api) -> None:
    embeddings_api.fail_next(429, retry_after=1)
    chronicle.emit_many(section_envelopes(3))
    chronicle.drain()
    times = embeddings_api.stats.times
    assert embeddings_api.stats.requests == 2
    assert times[1] - times[0] >= 1.0, "waited as long as Retry-After asked"
    assert embedding_status(chronicle)["kinds"]["section"]["embedded"] == 3


def test_5xx_and_timeouts_are_retried(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_TIMEOUT", "0.5")
    chronicle.settings.refresh_sections()
    embeddings_api.fail_next(500)
    embeddings_api.timeout_next(stall=1.5)
    embeddings_api.fail_next(503)
    chronicle.emit_many(section_envelopes(3))
    chronicle.drain()
    assert embeddings_api.stats.requests == 4
    assert embedding_status(chronicle)["kinds"]["section"]["embedded"] == 3


def emit_with_one_refused(chronicle: Chronicle, embeddings_api: FakeEmbeddingsServer, monkeypatch, n: int) -> None:
    """``n`` sections, one request each, of which the provider refuses ``sec-0`` (HTTP 400)."""
    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "1")
    embeddings_api.reject_inputs_containing = "BAD"
    envelopes = section_envelopes(n)
    envelopes[2]["data"]["content"] = {"body": "BAD input the provider refuses"}
    chronicle.emit_many(envelopes)
    chronicle.drain()


def test_permanent_400_goes_to_failures_without_retry(chronicle, embeddings_api, monkeypatch) -> None:
    emit_with_one_refused(chronicle, embeddings_api, monkeypatch, 3)
    assert embeddings_api.stats.requests == 3, "one request per item, the 400 not retried"
    status = embedding_status(chronicle)
    assert status["kinds"]["section"]["failed"] == 1 and status["kinds"]["section"]["embedded"] == 2
    assert status["usage"]["failures"] == 1 and status["usage"]["requests"] == 3
    assert sorted(r["id"] for r in rows("section", chronicle)) == ["sec-1", "sec-2"]
    chronicle.drain()
    request_reindex(chronicle, kinds=["sections"])
    chronicle.drain()
    assert embeddings_api.stats.requests == 3, "a failed text is not retried until it changes (or --force)"
    chronicle.emit("SectionEntryUpdated", {"id": "sec-0", "content": {"body": "fixed text"}})
    chronicle.drain()
    assert embeddings_api.stats.requests == 4
    assert embedding_status(chronicle)["kinds"]["section"]["failed"] == 0


def test_a_400_batch_is_split_to_isolate_the_bad_input(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "16")
    chronicle.settings.refresh_sections()
    embeddings_api.reject_inputs_containing = "BAD"
    envelopes = section_envelopes(16)
    envelopes[7]["data"]["content"] = {"body": "BAD input the provider refuses"}
    chronicle.emit_many(envelopes)
    chronicle.drain()
    status = embedding_status(chronicle)
    assert status["kinds"]["section"]["failed"] == 1 and status["kinds"]["section"]["embedded"] == 15
    assert embeddings_api.stats.requests <= 1 + 2 * 4
    assert status["usage"]["requests"] == embeddings_api.stats.requests


def test_a_request_wide_400_stops_splitting_early(chronicle, embeddings_api, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "16")
    chronicle.settings.refresh_sections()
    embeddings_api.fail_next(400, times=1000)
    chronicle.emit_many(section_envelopes(16))
    chronicle.drain()
    assert embedding_status(chronicle)["kinds"]["section"]["failed"] == 16
    assert embeddings_api.stats.requests <= 1 + 2 * 4


def test_images_are_embedded_from_alt_text_and_ai_descriptions(chronicle, embeddings_api, monkeypatch) -> None:
    # The media pipeline also reacts (and fails: there is no file); keep that quick.
    monkeypatch.setenv("CHRONICLE_MEDIA_ISOLATION", "inline")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "1")
    chronicle.settings.refresh_sections()
    chronicle.emit("ImageUploaded", {"id": "img1", "site_id": "site1", "filename": "IMG_0042.jpg",
                                     "original_path": "missing/IMG_0042.jpg", "mime_type": "image/jpeg", "size": 10,
                                     "metadata": {"alt": "A lighthouse on the cliffs"}})
    chronicle.drain()
    assert embeddings_api.stats.requests == 1
    assert [r["text"] for r in rows("image", chronicle)] == ["A lighthouse on the cliffs\nIMG_0042.jpg"]
    chronicle.emit("ImageDescribed", {"id": "img1", "alt_text": "White lighthouse above a stormy sea",
                                      "caption": "", "tags": ["coast"], "model": "vision"})
    chronicle.drain()
    assert embeddings_api.stats.requests == 2, "the AI description is new text"
    assert "stormy sea" in rows("image", chronicle)[0]["text"]
    assert [h.id for h in search(chronicle, "stormy lighthouse", kinds=["images"])] == ["img1"]
    chronicle.emit("ImageDeleted", {"id": "img1"})
    chronicle.drain()
    assert rows("image", chronicle) == []


def test_search_filters_are_pushed_down(chronicle, embeddings_api) -> None:
    chronicle.emit_many([
        {"type": "SiteCreated", "data": {"id": "a", "team_id": "t", "name": "A"}},
        {"type": "PageCreated", "data": {"id": "p1", "site_id": "a", "title": "Harbour tours", "slug": "tours"}},
        {"type": "PageCreated", "data": {"id": "p2", "site_id": "b", "title": "Harbour tours b", "slug": "t2"}},
        {"type": "PagePublished", "data": {"id": "p2"}},
        {"type": "PostCreated", "data": {"id": "p1", "site_id": "a", "title": "Harbour news", "slug": "n"}},
    ])
    chronicle.drain()
    assert {(h.kind, h.id) for h in search(chronicle, "harbour")} == {("page", "p1"), ("page", "p2"), ("post", "p1")}
    assert [(h.kind, h.id) for h in search(chronicle, "harbour", site="b")] == [("page", "p2")]
    assert [(h.kind, h.id) for h in search(chronicle, "harbour", status="published")] == [("page", "p2")]
    assert [(h.kind, h.id) for h in search(chronicle, "harbour", kinds=["posts"])] == [("post", "p1")]
    assert len(search(chronicle, "harbour", limit=1)) == 1


def _worker(data_dir: str, env: dict[str, str]) -> None:
    """A separate process acting as one embedding worker, then as a (would-be second) vector writer."""
    import os

    os.environ.update(env)
    from pipeline import Chronicle, Settings
    from pipeline.notify import NullNotifier

    handle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    try:
        sync.catch_up(handle)
        handle.project()
        vector_sync.catch_up(handle)
    finally:
        handle.close()


def test_concurrent_workers_lose_no_vector_and_duplicate_no_row(chronicle, embeddings_api, settings,
                                                                monkeypatch) -> None:
    import multiprocessing
    import os

    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "20")
    chronicle.settings.refresh_sections()
    embeddings_api.latency = 0.05
    chronicle.emit_many(section_envelopes(200))
    chronicle.project()
    env = {k: v for k, v in os.environ.items() if k.startswith(("CHRONICLE_", "OPENAI_"))}
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(settings.data_dir), env)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    texts = embeddings_api.stats.texts
    assert len(texts) == 200 and len(set(texts)) == 200, "every text embedded exactly once across workers"
    assert embeddings_api.stats.requests == 10
    chronicle.drain()
    found = rows("section", chronicle)
    assert len(found) == 200 and len({r["id"] for r in found}) == 200
    assert embedding_status(chronicle)["kinds"]["section"]["embedded"] == 200
    assert embeddings_api.stats.requests == 10


def test_reindex_progress_and_status(chronicle, embeddings_api) -> None:
    chronicle.emit_many(section_envelopes(10))
    reindex_id = request_reindex(chronicle, kinds=["sections"])
    chronicle.project()
    status = embedding_status(chronicle)
    assert status["kinds"]["section"]["pending"] == 10
    assert [r["id"] for r in status["reindexes"]] == [reindex_id]
    chronicle.drain()
    assert sync.read_progress(chronicle, reindex_id) == {"section": {"total": 10, "done": 10}}
    status = embedding_status(chronicle)
    assert status["reindexes"] == [] and status["kinds"]["section"]["pending"] == 0
    assert status["lag"]["vectors"] >= 0


def test_cli_reindex_and_search(settings, embeddings_api: FakeEmbeddingsServer) -> None:
    import orjson

    from pipeline.notify import NullNotifier
    from tests.helpers import cli

    with Chronicle(settings, notifier=NullNotifier()) as handle:
        handle.emit_many(section_envelopes(5))
    out = cli("reindex", "--kind", "sections", check=True)
    assert b"requested" in out.stdout and embeddings_api.stats.requests == 1
    hits = orjson.loads(cli("search", "glacier", "--kind", "sections", "--limit", "1", "--json", check=True).stdout)
    assert len(hits) == 1 and "glacier" in hits[0]["text"]


def test_a_refused_item_is_a_dead_letter_that_a_redrive_embeds(chronicle, embeddings_api, monkeypatch) -> None:
    """EmbeddingsFailed → one ``failures`` row per item; ``failures retry`` embeds that item alone; the row
    re-opens if the provider refuses again and closes (with a vector row written) once it accepts."""
    from pipeline.failures.dead_letters import list_failures, request_retry

    emit_with_one_refused(chronicle, embeddings_api, monkeypatch, 3)

    def dead_letters() -> list[dict]:
        return [f for f in list_failures(chronicle.settings.projection_db_path) if f["kind"] == "embedding"]

    [failure] = dead_letters()
    assert failure["id"] == f"embedding:{MODEL}:{DIM}:section:sec-0" and failure["status"] == "open"
    assert failure["subject"] == "section:sec-0" and "400" in failure["error"]
    requests = embeddings_api.stats.requests

    assert request_retry(chronicle, [failure["id"]]).requested == [failure["id"]]
    chronicle.drain()  # still refused: one more request, the row is open again and counts the retry
    [failure] = dead_letters()
    assert (failure["status"], failure["retries"], failure["kind"]) == ("open", 1, "embedding")
    assert "refused section sec-0 again" in failure["error"]
    assert embeddings_api.stats.requests == requests + 1

    embeddings_api.reject_inputs_containing = None  # the provider accepts it now
    request_retry(chronicle, [failure["id"]])
    chronicle.drain()
    [failure] = dead_letters()
    assert (failure["status"], failure["retries"]) == ("resolved", 2)
    assert embeddings_api.stats.requests == requests + 2, "only the refused item is embedded again"
    assert sorted(r["id"] for r in rows("section", chronicle)) == ["sec-0", "sec-1", "sec-2"]
    assert embedding_status(chronicle)["kinds"]["section"]["failed"] == 0
    assert request_retry(chronicle, [failure["id"]]).skipped == {failure["id"]: "already resolved"}


def test_embedding_dead_letters_of_deleted_content_close(chronicle, embeddings_api, monkeypatch) -> None:
    """Deleting the content closes its dead letter; one recorded after the deletion (the worker loaded
    the text first) is resolved by its redrive instead of being sent to the provider."""
    from pipeline.failures.dead_letters import list_failures, request_retry

    emit_with_one_refused(chronicle, embeddings_api, monkeypatch, 2)
    chronicle.emit("SectionEntryDeleted", {"id": "sec-0"})
    chronicle.drain()
    [closed] = list_failures(chronicle.settings.projection_db_path)
    assert (closed["id"], closed["status"]) == (f"embedding:{MODEL}:{DIM}:section:sec-0", "resolved")

    chronicle.emit("SectionEntryDeleted", {"id": "sec-1"})
    chronicle.emit("EmbeddingsFailed", {"model": MODEL, "dimension": DIM, "error": "400 late", "items": [
        {"kind": "section", "id": "sec-1", "content_hash": "b" * 64}]})
    chronicle.drain()
    late = f"embedding:{MODEL}:{DIM}:section:sec-1"
    requests = embeddings_api.stats.requests
    assert request_retry(chronicle, [late]).skipped == {late: "section sec-1 no longer exists; resolved"}
    chronicle.drain()
    assert {f["id"]: f["status"] for f in list_failures(chronicle.settings.projection_db_path)}[late] == "resolved"
    assert embeddings_api.stats.requests == requests


def test_retry_finds_any_failure_not_only_the_newest_thousand(chronicle) -> None:
    from pipeline.failures.dead_letters import list_failures, request_retry

    chronicle.emit("EmbeddingsFailed", {"model": MODEL, "dimension": DIM, "error": "400", "items": [
        {"kind": "page", "id": f"p{i}", "content_hash": "c" * 64} for i in range(1001)]})
    chronicle.project()
    assert len(list_failures(chronicle.settings.projection_db_path)) == 1000  # a page of the list
    oldest = f"embedding:{MODEL}:{DIM}:page:p0"
    assert request_retry(chronicle, [oldest]).skipped == {oldest: "page p0 no longer exists; resolved"}


def test_drain_reruns_embedding_work_that_a_killed_drain_lost(chronicle, embeddings_api) -> None:
    """Ctrl-C during a long embedding pass: the reactor had already passed the events, so their jobs are
    gone. The next ``drain`` runs the sweep hooks once (as the Celery sweeper does) and embeds them."""
    from pipeline.reactor import InlineDispatcher

    chronicle.emit_many(section_envelopes(5))
    chronicle.project()
    lost: list = []
    chronicle.reactor(InlineDispatcher(lost.append)).run_until_idle()  # dispatched, never run
    assert lost and embedding_status(chronicle)["kinds"]["section"]["pending"] == 5
    chronicle.drain()
    section = embedding_status(chronicle)["kinds"]["section"]
    assert (section["pending"], section["embedded"]) == (0, 5)
    assert sorted(r["id"] for r in rows("section", chronicle)) == [f"sec-{i}" for i in range(5)]


def test_the_cms_tables_appear_on_an_install_from_before_them(chronicle, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")
    page = {"type": "PageCreated", "data": {"id": "p1", "site_id": "site1", "title": "Bakery", "slug": "bakery"}}
    chronicle.emit_many([*section_envelopes(3, page_id="p1"), page])
    chronicle.drain()
    assert {r["id"]: r["pageId"] for r in seed_rows("section", chronicle)} == {
        "sec-0": "p1", "sec-1": "p1", "sec-2": "p1"}
    assert [(r["id"], r["pageId"]) for r in seed_rows("page", chronicle)] == [("p1", "p1")]
    directory = chronicle.settings.lancedb_dir
    for name in ("page_embeddings", "section_embeddings", "image_embeddings"):  # as a release before them left it
        connect(directory).drop_table(name)
    (directory / ".seed_tables.json").unlink()
    chronicle.drain()  # nothing new in the log: the sweep writes them
    assert len(seed_rows("section", chronicle)) == 3 and len(seed_rows("page", chronicle)) == 1
    assert open_table(connect(directory), "image_embeddings") is not None


def test_bounded_slices_continue_in_follow_ups_and_pay_nothing_twice(chronicle, embeddings_api, monkeypatch) -> None:
    """Issue 20: a catch-up reads at most CHRONICLE_SLICE_EVENTS events and starts no batch after
    CHRONICLE_TASK_SLICE_SECONDS; the job returns its continuation, and the whole backlog costs the
    same requests as one unbounded pass."""
    from pipeline.embeddings import jobs

    monkeypatch.setenv("CHRONICLE_EMBEDDING_BATCH_SIZE", "10")
    chronicle.settings.refresh_sections()
    chronicle.settings.slice_events = 7
    chronicle.settings.task_slice_seconds = 1e-9  # one batch per slice
    chronicle.emit_many(section_envelopes(40))
    chronicle.project()
    follow_up = jobs.embeddings_catch_up(chronicle, None)
    assert follow_up is not None and follow_up.task == jobs.EMBED_CATCH_UP, "a slice left work: it continues"
    assert embeddings_api.stats.requests == 1
    chronicle.drain()  # runs the follow-ups in-process until done
    assert embeddings_api.stats.inputs == 40, "every text embedded exactly once across the slices"
    assert embedding_status(chronicle)["kinds"]["section"]["pending"] == 0
    assert len(rows("section", chronicle)) == 40
