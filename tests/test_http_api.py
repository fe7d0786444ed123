"""The HTTP API over real HTTP: uvicorn on a socket, httpx as the client (what a TypeScript CMS does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server

SHARED_IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "images"
JPEG = SHARED_IMAGES / "pillow" / "hopper.jpg"
TOKEN = "s3cret-token-for-tests"
CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def team(team_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TeamCreated", "data": {"id": team_id, "name": f"Team {team_id}"}, **extra}


def cloudevent(event_id: str, type_: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "/cms/acme", "type": type_, "data": data, **extra}


def _client(chronicle: Chronicle, **settings: Any) -> Iterator[httpx.Client]:
    http_settings = HttpSettings(data_dir=chronicle.settings.data_dir, max_body_bytes=64 * 1024,
                                 max_upload_bytes=256 * 1024, **settings)
    app = create_app(http_settings, chronicle=chronicle)
    with running_server(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture
def client(chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """Auth off: no token configured."""
    monkeypatch.delenv("CHRONICLE_API_TOKEN", raising=False)
    yield from _client(chronicle)


@pytest.fixture
def secured(chronicle: Chronicle) -> Iterator[httpx.Client]:
    """Auth on: a token is configured."""
    yield from _client(chronicle, api_token=TOKEN)


# -- liveness, readiness, status, schema ----------------------------------------------------------------


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"log": {"ok": True}, "projection_db": {"ok": True}, "broker": {"ok": True}}


def test_readyz_reports_an_unreachable_broker(chronicle: Chronicle) -> None:
    chronicle.settings.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        for client in _client(chronicle):
            response = client.get("/readyz")
    finally:
        chronicle.settings.broker_url = None
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["log"]["ok"] is True


def test_status_shows_head_lag_and_counts(client: httpx.Client, chronicle: Chronicle) -> None:
    client.post("/events", json=[team("t1"), team("t2")]).raise_for_status()
    status = client.get("/status").json()
    assert status["head"] == 2
    cms = status["projections"]["cms"]
    assert (cms["checkpoint"], cms["lag"]) == (0, 2) and cms["lag_seconds"] >= 0
    chronicle.project()
    status = client.get("/status").json()
    assert status["projections"]["cms"]["lag"] == 0
    assert status["counts"]["teams"] == 2


def test_openapi_schema_documents_every_endpoint(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/events", "/streams/{stream}", "/images", "/images/{image_id}", "/media/{path}", "/search",
                 "/status", "/failures", "/failures/{failure_id}/retry", "/reindex", "/healthz", "/readyz"):
        assert path in paths, path
    body = paths["/events"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", CE, CE_BATCH}
    assert "CloudEvent" in schema["components"]["schemas"]


# -- POST /events: Chronicle envelopes ------------------------------------------------------------------


def test_post_one_envelope_returns_its_position(client: httpx.Client, chronicle: Chronicle) -> None:
    response = client.post("/events", json=team("t1", id="evt-1"))
    assert response.status_code == 200, response.text
    assert response.json() == {"appended": 1, "duplicates": 0, "last_position": 1, "positions": [1]}
    assert chronicle.store.read()[0].id == "evt-1"


def test_post_batch_and_resend_is_idempotent(client: httpx.Client) -> None:
    batch = [team("t1", id="a"), team("t2", id="b"), team("t3", id="c")]
    first = client.post("/events", json=batch).json()
    assert first == {"appended": 3, "duplicates": 0, "last_position": 3, "positions": [1, 2, 3]}
    again = client.post("/events", json=batch).json()
    assert again["appended"] == 0 and again["duplicates"] == 3 and again["positions"] == [1, 2, 3]


def test_invalid_event_in_a_batch_is_422_with_index_and_field_and_writes_nothing(
        client: httpx.Client, chronicle: Chronicle) -> None:
    batch = [team("t1"), {"type": "TeamCreated", "data": {"id": "t2"}}]
    response = client.post("/events", json=batch)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_event" and body["index"] == 1 and body["field"] == "data.name"
    assert chronicle.store.head() == 0


def test_unknown_type_is_422_on_the_type_field(client: httpx.Client) -> None:
    response = client.post("/events", json={"type": "NoSuchThing", "data": {}})
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_event_type" and response.json()["field"] == "type"


def test_version_conflict_is_409_and_writes_nothing(client: httpx.Client, chronicle: Chronicle) -> None:
    client.post("/events", json=team("t1", stream="team-t1", expected_version=0)).raise_for_status()
    response = client.post("/events", json=[team("t9"), team("t1", id="late", stream="team-t1", expected_version=0)])
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "version_conflict" and body["stream"] == "team-t1" and body["actual"] == 1
    assert body["index"] == 1
    assert chronicle.store.head() == 1


def test_malformed_json_is_400_and_wrong_content_type_is_415(client: httpx.Client) -> None:
    bad = client.post("/events", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "malformed_json"
    form = client.post("/events", data={"type": "TeamCreated"})
    assert form.status_code == 415 and form.json()["error"] == "unsupported_media_type"
    scalar = client.post("/events", json=42)
    assert scalar.status_code == 422


# -- POST /events: CloudEvents ---------------------------------------------------------------------------


def test_cloudevent_structured_mode(client: httpx.Client, chronicle: Chronicle) -> None:
    ce = cloudevent("ce-1", "com.acme.cms.TeamCreated", {"id": "t1", "name": "Acme"}, subject="team-t1",
                    time="2024-05-01T12:00:00Z", correlationid="req-7", tenant="acme")
    response = client.post("/events", content=httpx.Request("POST", "/", json=ce).content,
                           headers={"content-type": CE})
    assert response.status_code == 200, response.text
    assert response.json()["positions"] == [1]
    event = chronicle.store.read()[0]
    assert (event.id, event.type, event.stream) == ("ce-1", "TeamCreated", "team-t1")
    assert event.metadata["source"] == "/cms/acme" and event.metadata["correlation_id"] == "req-7"
    assert event.metadata["tenant"] == "acme" and event.metadata["time"] == "2024-05-01T12:00:00Z"
    again = client.post("/events", content=httpx.Request("POST", "/", json=ce).content,
                        headers={"content-type": f"{CE}; charset=utf-8"})
    assert again.json()["duplicates"] == 1


def _post_ce(client: httpx.Client, body: Any, content_type: str = CE) -> httpx.Response:
    return client.post("/events", content=httpx.Request("POST", "/", json=body).content,
                       headers={"content-type": content_type})


def test_cloudevents_batch_mode_is_atomic(client: httpx.Client, chronicle: Chronicle) -> None:
    batch = [cloudevent(f"ce-{i}", "TeamCreated", {"id": f"t{i}", "name": "x"}) for i in range(3)]
    response = _post_ce(client, batch, CE_BATCH)
    assert response.status_code == 200, response.text
    assert response.json()["positions"] == [1, 2, 3]
    broken = [cloudevent("ce-9", "TeamCreated", {"id": "t9", "name": "x"}),
              cloudevent("ce-10", "TeamCreated", {"name": "no id"})]
    response = _post_ce(client, broken, CE_BATCH)
    assert response.status_code == 422
    assert response.json()["index"] == 1 and response.json()["field"] == "data.id"
    assert chronicle.store.head() == 3


def test_cloudevents_expectedversion_extension_conflicts_with_409(client: httpx.Client) -> None:
    first = cloudevent("ce-1", "TeamCreated", {"id": "t1", "name": "x"}, subject="team-t1", expectedversion="0")
    assert _post_ce(client, first).status_code == 200
    second = cloudevent("ce-2", "TeamCreated", {"id": "t1", "name": "y"}, subject="team-t1", expectedversion=0)
    response = _post_ce(client, second)
    assert response.status_code == 409 and response.json()["actual"] == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"specversion": "0.3"}, "specversion"),
    ({"id": ""}, "id"),
    ({"source": None}, "source"),
    ({"subject": ""}, "subject"),
    ({"expectedversion": "-1"}, "expectedversion"),
    ({"data": [1, 2]}, "data"),
    ({"datacontenttype": "text/plain"}, "datacontenttype"),
    ({"data_base64": "AAAA"}, "data_base64"),
    ({"type": "NotAnEvent"}, "type"),
])
def test_invalid_cloudevent_names_the_cloudevents_attribute(client: httpx.Client, change: dict[str, Any],
                                                            field: str) -> None:
    ce = cloudevent("ce-1", "TeamCreated", {"id": "t1", "name": "x"}) | change
    response = _post_ce(client, ce)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_deeply_nested_payload_is_422_not_500(client: httpx.Client, chronicle: Chronicle) -> None:
    depth = 600  # valid JSON (orjson parses 1024 levels) that the payload models cannot serialise
    body = (b'[{"type": "TeamCreated", "data": {"id": "t0", "name": "ok"}}, {"type": "PageCreated", "data": '
            b'{"id": "n", "site_id": "s", "title": "t", "slug": "s", "metadata": '
            + b'{"a": ' * depth + b"1" + b"}" * depth + b"}}]")
    response = client.post("/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert chronicle.store.head() == 0
    too_deep = client.post("/events", content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"})
    assert too_deep.status_code == 400


def test_cloudevents_batch_must_be_an_array(client: httpx.Client) -> None:
    response = _post_ce(client, cloudevent("ce-1", "TeamCreated", {"id": "t1", "name": "x"}), CE_BATCH)
    assert response.status_code == 422


# -- body size limit --------------------------------------------------------------------------------------


def test_declared_body_above_the_limit_is_413(client: httpx.Client, chronicle: Chronicle) -> None:
    big = [team(f"t{i}") | {"metadata": {"pad": "x" * 1000}} for i in range(100)]  # ~110 KB > 64 KB
    response = client.post("/events", json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert chronicle.store.head() == 0


def test_streamed_body_is_cut_off_at_the_limit(client: httpx.Client, chronicle: Chronicle) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count while reading
        yield b"["
        for i in range(200):
            yield (b"," if i else b"") + b'{"type":"TeamCreated","data":{"id":"t%d","name":"%s"}}' % (i, b"x" * 500)
        yield b"]"

    response = client.post("/events", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert chronicle.store.head() == 0


def test_upload_above_the_upload_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/images", files={"file": ("big.jpg", b"\xff\xd8\xff" + b"0" * 300_000, "image/jpeg")})
    assert response.status_code == 413


# -- reading the log ---------------------------------------------------------------------------------------


def test_read_events_pages_through_the_log(client: httpx.Client) -> None:
    client.post("/events", json=[team(f"t{i}") for i in range(5)]).raise_for_status()
    page = client.get("/events", params={"after": 0, "limit": 2}).json()
    assert [e["position"] for e in page["events"]] == [1, 2] and page["next_after"] == 2 and page["head"] == 5
    rest = client.get("/events", params={"after": page["next_after"], "limit": 100}).json()
    assert [e["position"] for e in rest["events"]] == [3, 4, 5]
    assert rest["events"][0]["type"] == "TeamCreated" and rest["events"][0]["recorded_at"]
    assert client.get("/events", params={"limit": 0}).status_code == 422
    assert client.get("/events", params={"after": -1}).status_code == 422


def test_read_one_stream(client: httpx.Client) -> None:
    client.post("/events", json=[team("t1"), team("t2")]).raise_for_status()
    stream = client.get("/streams/team-t1").json()
    assert stream["stream"] == "team-t1" and stream["version"] == 1 and len(stream["events"]) == 1
    missing = client.get("/streams/team-nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# -- images and media files -----------------------------------------------------------------------------


def test_upload_stores_content_addressed_and_records_the_event(client: httpx.Client, chronicle: Chronicle) -> None:
    with JPEG.open("rb") as fh:
        response = client.post("/images", files={"file": ("hopper.jpg", fh, "image/jpeg")})
    assert response.status_code == 202, response.text
    stored = response.json()
    assert stored["mime_type"] == "image/jpeg" and not stored["duplicate"]
    assert stored["original_path"].startswith(f"originals/{stored['sha256'][:2]}/")
    events = chronicle.store.read()
    assert [e.type for e in events] == ["ImageUploaded"] and events[0].data["hash"] == stored["sha256"]
    with JPEG.open("rb") as fh:
        again = client.post("/images", files={"file": ("copy.jpg", fh, "image/jpeg")}).json()
    assert again["duplicate"] and again["id"] == stored["id"] and chronicle.store.head() == 1

    assert client.get(stored["url"]).status_code == 404  # not projected yet
    chronicle.project()
    image = client.get(stored["url"]).json()
    assert image["status"] == "pending" and image["filename"] == "hopper.jpg"
    original = client.get(image["original_url"])
    assert original.status_code == 200 and original.content == JPEG.read_bytes()
    assert original.headers["content-type"] == "image/jpeg"
    assert "immutable" in original.headers["cache-control"] and "max-age=31536000" in original.headers["cache-control"]
    listing = client.get("/images").json()
    assert listing["total"] == 1 and listing["images"][0]["id"] == stored["id"]


def test_upload_with_own_id_and_bad_input(client: httpx.Client) -> None:
    ok = client.post("/images", data={"id": "cms-image-7"}, files={"file": ("a.png", b"\x89PNG\r\n\x1a\nxx")})
    assert ok.status_code == 202 and ok.json()["id"] == "cms-image-7" and ok.json()["mime_type"] == "image/png"
    empty = client.post("/images", files={"file": ("empty.jpg", b"", "image/jpeg")})
    assert empty.status_code == 422 and empty.json()["field"] == "file"
    missing = client.post("/images", data={"id": "x"})
    assert missing.status_code == 422 and missing.json()["field"] == "file"


def test_variant_files_are_served_with_their_content_type(client: httpx.Client, chronicle: Chronicle) -> None:
    from pipeline.http.uploads import media_root

    root = media_root(chronicle.settings)
    for name, kind in (("ab/abcd.webp", "image/webp"), ("ab/abce.avif", "image/avif"), ("ab/abcf.jpg", "image/jpeg")):
        path = root / "variants" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"bytes")
        response = client.get(f"/media/variants/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == kind
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/media/variants/ab/none.webp").status_code == 404
    assert client.get("/media/..%2F..%2Fevents.db").status_code == 404
    assert client.get("/media/variants").status_code == 404
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "m.json").write_text("{}")
    assert client.get("/media/manifests/m.json").status_code == 404


def test_image_shows_variants_once_processed(client: httpx.Client, chronicle: Chronicle) -> None:
    with JPEG.open("rb") as fh:
        stored = client.post("/images", files={"file": ("hopper.jpg", fh, "image/jpeg")}).json()
    chronicle.drain()
    image = client.get(stored["url"]).json()
    assert image["status"] == "completed", image
    assert image["variants"], image
    for variant in image["variants"]:
        served = client.get(variant["url"])
        assert served.status_code == 200 and served.headers["content-type"] == variant["content_type"]
    assert image["placeholder"] and image["placeholder"]["kind"] == "blurhash"


def test_unknown_image_is_404(client: httpx.Client) -> None:
    response = client.get("/images/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


# -- failures, retry, reindex, search ------------------------------------------------------------------


def test_failures_empty_and_unknown_retry_is_404(client: httpx.Client) -> None:
    assert client.get("/failures").json() == {"failures": []}
    assert client.get("/failures", params={"status": "bogus"}).status_code == 422
    assert client.post("/failures/image:nope/retry").status_code == 404
    assert client.post("/failures/whatever/retry").json()["error"] == "not_found"
    # ids may contain "/" (a model such as "BAAI/bge-small" in an embedding dead letter's id): the route
    # still reaches the handler, which names the whole id
    slashed = client.post("/failures/embedding:BAAI/bge-small:384:page:p1/retry").json()
    assert slashed["error"] == "not_found" and "BAAI/bge-small" in slashed["detail"]


def test_failed_image_is_listed_retried_and_fails_again(client: httpx.Client, chronicle: Chronicle) -> None:
    with (SHARED_IMAGES / "pillow" / "broken.png").open("rb") as fh:
        stored = client.post("/images", files={"file": ("broken.png", fh, "image/png")}).json()
    chronicle.drain()
    failures = client.get("/failures").json()["failures"]
    assert [f["id"] for f in failures] == [f"image:{stored['id']}"]
    failure = failures[0]
    assert failure["status"] == "open" and failure["error"] and failure["url"] == stored["url"]
    assert client.get(stored["url"]).json()["status"] == "failed"

    response = client.post(f"/failures/{failure['id']}/retry")
    assert response.status_code == 202, response.text
    assert response.json() == {"id": failure["id"], "status": "retry_requested"}
    assert chronicle.store.read(after=chronicle.store.head() - 1)[0].type == "FailureRetryRequested"
    chronicle.project()
    assert client.get("/failures", params={"status": "retrying"}).json()["failures"][0]["retries"] == 1
    chronicle.drain()  # the redriven job runs and fails again: the failure is open once more
    again = client.get("/failures").json()["failures"][0]
    assert again["status"] == "open" and again["retries"] == 1


def test_retrying_a_resolved_failure_is_409(client: httpx.Client, chronicle: Chronicle) -> None:
    with JPEG.open("rb") as fh:
        stored = client.post("/images", files={"file": ("hopper.jpg", fh, "image/jpeg")}).json()
    # The CMS reports a failure, then the image is processed after all: the failure is resolved.
    client.post("/events", json={"type": "ImageProcessingFailed",
                                 "data": {"id": stored["id"], "reason": "disk full", "permanent": False}})
    chronicle.drain()
    assert client.get("/failures").json()["failures"][0]["status"] == "resolved"
    response = client.post(f"/failures/image:{stored['id']}/retry")
    assert response.status_code == 409 and response.json()["error"] == "not_retryable"


def test_search_and_reindex_with_the_embeddings_pipeline(client: httpx.Client, chronicle: Chronicle,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "test")  # deterministic, offline
    chronicle.settings.refresh_sections()
    client.post("/events", json=[
        {"type": "SiteCreated", "data": {"id": "s1", "team_id": "t1", "name": "Site"}},
        {"type": "PostCreated", "data": {"id": "p1", "site_id": "s1", "title": "Waterfalls of Iceland",
                                         "slug": "waterfalls", "body": "Seljalandsfoss and Skogafoss at dawn."}},
        {"type": "PostPublished", "data": {"id": "p1"}},
    ]).raise_for_status()
    chronicle.drain()
    response = client.get("/search", params={"q": "waterfalls iceland", "limit": 5})
    assert response.status_code == 200, response.text
    assert any(hit["id"] == "p1" for hit in response.json()["results"]), response.json()
    reindex = client.post("/reindex", json={"kinds": ["posts"], "force": True})
    assert reindex.status_code == 202, reindex.text
    assert any(e.type == "ReindexRequested" for e in chronicle.store.read(after=0, limit=1000))


# -- auth ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("POST", "/events", {"json": team("t1")}),
    ("POST", "/images", {"files": {"file": ("a.jpg", b"\xff\xd8\xffdata", "image/jpeg")}}),
    ("POST", "/failures/image:x/retry", {}),
    ("POST", "/reindex", {}),
])
def test_writes_need_the_token(secured: httpx.Client, method: str, path: str, kwargs: dict[str, Any]) -> None:
    missing = secured.request(method, path, **kwargs)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = secured.request(method, path, headers={"Authorization": "Bearer nope"}, **kwargs)
    assert wrong.status_code == 403
    basic = secured.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"}, **kwargs)
    assert basic.status_code == 401
    right = secured.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    assert right.status_code not in (401, 403)


def test_reads_need_a_key_with_auth_on(secured: httpx.Client) -> None:
    """Issue 16: with auth on, reading the log, the read model, failures and status needs a key too
    (the full route x key matrix is tests/test_http_access.py)."""
    for path in ("/events", "/status", "/failures", "/images", "/metrics"):
        assert secured.get(path).status_code == 401, path
        assert secured.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    for path in ("/healthz", "/"):  # liveness for orchestrators; the page asks for a key
        assert secured.get(path).status_code == 200, path
    assert "An API key is needed" in secured.get("/").text


def test_cloudevents_with_the_token(secured: httpx.Client) -> None:
    response = secured.post("/events", content=httpx.Request("POST", "/", json=cloudevent(
        "ce-1", "TeamCreated", {"id": "t1", "name": "x"})).content,
        headers={"content-type": CE, "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["positions"] == [1]


# -- the page ----------------------------------------------------------------------------------------


def test_page_renders_status_gallery_failures_and_search(client: httpx.Client, chronicle: Chronicle) -> None:
    with JPEG.open("rb") as fh:
        client.post("/images", files={"file": ("hopper.jpg", fh, "image/jpeg")}).raise_for_status()
    chronicle.project()
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for marker in ('id="pipeline"', 'id="gallery"', 'id="failures"', 'id="search-form"', "hopper.jpg"):
        assert marker in html, marker
    assert client.get("/static/app.css").status_code == 200
