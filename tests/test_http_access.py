"""Issue 16: every route × {no key, read key of site A, write key of site A, admin key} answers as the
matrix in docs/http.md says, and a site-A key never sees a byte of site B — events (also through
``after=`` paging), streams, rows, search hits, image URLs, media files and failures — nor writes to it
(CloudEvents batches mixing sites are refused whole).

One installation is built per module (two sites, posts, a chat session, images, a failure, embeddings)
and served over real HTTP; the keys are real keys from the key store.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server
from pipeline.keys import KeyStore
from pipeline.notify import NullNotifier

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "images" / "pillow"
TOKEN = "access-matrix-token"
SECRET = "bravo"  # every site-B text carries it; no site-A answer may contain it
CE_BATCH = "application/cloudevents-batch+json"
KEYS = ("none", "read_a", "write_a", "admin")


@dataclass
class World:
    url: str
    chronicle: Chronicle
    keys: dict[str, str]  # name → secret ("none" → "")
    key_ids: dict[str, str]
    image_a: dict[str, Any]
    image_b: dict[str, Any]
    b_files: list[str]  # site B's media URLs
    data_dir: Path

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"} if self.keys.get(who) else {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _upload(client: httpx.Client, path: Path, site: str, image_id: str) -> dict[str, Any]:
    with path.open("rb") as fh:
        response = client.post("/images", files={"file": (path.name, fh, "image/jpeg")},
                               data={"site_id": site, "id": image_id},
                               headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("access") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHRONICLE_EMBEDDER", "test")  # deterministic, offline embeddings: search works
        mp.setenv("CHRONICLE_DATA_DIR", str(data_dir))
        for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY", "CHRONICLE_API_TOKEN"):
            mp.delenv(var, raising=False)
        settings = HttpSettings(data_dir=data_dir, api_token=TOKEN, write_rate=0, search_rate=0,
                                log_synchronous="NORMAL")
        chronicle = Chronicle(settings, notifier=NullNotifier())
        store = KeyStore.for_log(settings.resolved_event_store_url, settings.resolved_data_dir)
        made = {"read_a": store.create("read", sites=["A"]), "write_a": store.create("write", sites=["A"]),
                "admin": store.create("admin"), "team_t2": store.create("write", teams=["t2"]),
                "team_t9": store.create("read", teams=["t9"])}
        store.close()
        chronicle.emit_many([
            {"type": "TeamCreated", "data": {"id": "t1", "name": "Team"}},
            {"type": "SiteCreated", "data": {"id": "A", "team_id": "t1", "name": "Alpha site"}},
            {"type": "SiteCreated", "data": {"id": "B", "team_id": "t1", "name": f"{SECRET} site"}},
            {"type": "PostCreated", "data": {"id": "pa", "site_id": "A", "title": "Alpine lakes", "slug": "lakes",
                                             "body": "Clear water between the peaks.", "status": "published"}},
            {"type": "PostCreated", "data": {"id": "pb", "site_id": "B", "title": f"Alpine {SECRET} plans",
                                             "slug": f"{SECRET}-plans", "status": "published",
                                             "body": f"Lakes and peaks, the {SECRET} way."}},
            {"type": "PostUpdated", "data": {"id": "pb", "excerpt": f"{SECRET} excerpt"}},
            {"type": "SessionCreated", "data": {"id": "sb", "site_id": "B", "title": f"{SECRET} chat"}},
            {"type": "MessageAdded", "data": {"id": "mb", "session_id": "sb", "role": "user",
                                              "content": f"my {SECRET} question"}},
            {"type": "TeamCreated", "data": {"id": "t2", "name": "Team two"}},
            {"type": "SiteCreated", "data": {"id": "C", "team_id": "t2", "name": "Charlie site"}},
            {"type": "PostCreated", "data": {"id": "pc", "site_id": "C", "title": "Charlie post", "slug": "c"}},
        ])
        app = create_app(settings, chronicle=chronicle)
        with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            image_a = _upload(client, IMAGES / "hopper.jpg", "A", "img-a")
            image_b = _upload(client, IMAGES / "flower.jpg", "B", f"img-{SECRET}")
            _upload(client, IMAGES / "broken.png", "B", f"img-{SECRET}-broken")
            chronicle.drain()
            admin = {"Authorization": f"Bearer {TOKEN}"}
            b_image = client.get(f"/images/img-{SECRET}", headers=admin).json()
            assert b_image["status"] == "completed" and b_image["variants"], b_image
            b_files = [b_image["original_url"]] + [v["url"] for v in b_image["variants"]]
            assert client.get("/failures", headers=admin).json()["failures"], "the broken image failed"
            yield World(url=url, chronicle=chronicle,
                        keys={"none": ""} | {k: secret for k, (_, secret) in made.items()},
                        key_ids={k: key.id for k, (key, _) in made.items()},
                        image_a=image_a, image_b=image_b, b_files=b_files, data_dir=data_dir)
        chronicle.close()


# -- the matrix ------------------------------------------------------------------------------------------

#: (method, path, request kwargs, expected status for none / read_a / write_a / admin) — docs/http.md.
READS: list[tuple[str, dict[str, Any], tuple[int, int, int, int]]] = [
    ("/healthz", {}, (200, 200, 200, 200)),
    ("/readyz", {}, (200, 200, 200, 200)),
    ("/", {}, (200, 200, 200, 200)),
    ("/openapi.json", {}, (200, 200, 200, 200)),
    ("/status", {}, (401, 403, 403, 200)),
    ("/metrics", {}, (401, 403, 403, 200)),
    ("/events", {"params": {"limit": 1000}}, (401, 200, 200, 200)),
    ("/streams/post-pa", {}, (401, 200, 200, 200)),
    ("/streams/post-pb", {}, (401, 404, 404, 200)),
    ("/streams/session-sb", {}, (401, 404, 404, 200)),
    ("/images", {}, (401, 200, 200, 200)),
    ("/images/img-a", {}, (401, 200, 200, 200)),
    (f"/images/img-{SECRET}", {}, (401, 404, 404, 200)),
    ("/failures", {}, (401, 200, 200, 200)),
    ("/search", {"params": {"q": "alpine lakes peaks", "limit": 20}}, (401, 200, 200, 200)),
]


@pytest.mark.parametrize(("path", "kwargs", "expected"), READS, ids=[r[0] for r in READS])
def test_every_read_route_answers_as_documented(world: World, path: str, kwargs: dict[str, Any],
                                                expected: tuple[int, int, int, int]) -> None:
    with world.client() as client:
        for who, status in zip(KEYS, expected, strict=True):
            response = client.get(path, headers=world.headers(who), **kwargs)
            assert response.status_code == status, (who, path, response.text[:300])
            if who in ("read_a", "write_a"):  # (a 404 may echo the id asked for: that is the caller's own input)
                text = response.text.replace(path.rsplit("/", 1)[-1], "")
                assert SECRET not in text, (who, path, response.text[:2000])
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")


def test_site_b_media_files_are_not_served_to_a_site_a_key(world: World) -> None:
    with world.client() as client:
        for url in world.b_files:
            assert client.get(url).status_code == 401
            assert client.get(url, headers=world.headers("read_a")).status_code == 404, url
            assert client.get(url, headers=world.headers("admin")).status_code == 200, url
        mine = client.get("/images/img-a", headers=world.headers("read_a")).json()
        for url in [mine["original_url"]] + [v["url"] for v in mine["variants"]]:
            served = client.get(url, headers=world.headers("read_a"))
            assert served.status_code == 200 and served.headers["cache-control"].startswith("private")


def test_site_a_sees_its_own_data(world: World) -> None:
    with world.client() as client:
        h = world.headers("read_a")
        events = client.get("/events", params={"limit": 1000}, headers=h).json()["events"]
        assert {e["stream"] for e in events} >= {"site-A", "post-pa", "image-img-a"}
        assert all(e["stream"] not in ("site-B", "post-pb", "session-sb", "team-t1") for e in events)
        assert [i["id"] for i in client.get("/images", headers=h).json()["images"]] == ["img-a"]
        hits = client.get("/search", params={"q": "alpine lakes peaks"}, headers=h).json()["results"]
        assert hits and {hit["site"] for hit in hits} == {"A"}
        assert client.get("/failures", headers=h).json() == {"failures": []}  # the failure is site B's
        everything = client.get("/failures", headers=world.headers("admin")).json()["failures"]
        assert any(SECRET in f["id"] for f in everything)


def test_paging_with_after_never_returns_site_b(world: World) -> None:
    with world.client() as client:
        seen: list[int] = []
        after = 0
        for _ in range(100):
            page = client.get("/events", params={"after": after, "limit": 1},
                              headers=world.headers("read_a")).json()
            assert SECRET not in orjson.dumps(page).decode()
            seen += [e["position"] for e in page["events"]]
            if page["next_after"] == after:
                break
            after = page["next_after"]
        everything = client.get("/events", params={"limit": 1000}, headers=world.headers("admin")).json()
        assert seen == sorted(seen) and len(seen) == len(set(seen))
        assert len(seen) < len(everything["events"])
        site_a = client.get("/events", params={"limit": 1000}, headers=world.headers("read_a")).json()
        assert seen == [e["position"] for e in site_a["events"]]


def _post(world: World, who: str, body: Any, content_type: str = "application/json") -> httpx.Response:
    with world.client() as client:
        return client.post("/events", content=orjson.dumps(body),
                           headers={"content-type": content_type, **world.headers(who)})


def _post_a(n: int, **data: Any) -> dict[str, Any]:
    return {"type": "PostCreated", "data": {"id": f"pa{n}", "site_id": "A", "title": "A post", "slug": f"a{n}",
                                            **data}}


WRITES = [
    # name, body, content type, expected none / read_a / write_a / admin
    ("own site", lambda n: _post_a(n), "application/json", (401, 403, 200, 200)),
    ("other site", lambda n: {"type": "PostCreated", "data": {"id": f"pb{n}", "site_id": "B", "title": "x",
                                                               "slug": f"b{n}"}}, "application/json",
     (401, 403, 403, 200)),
    ("other site by stream", lambda n: {"type": "PostUpdated", "data": {"id": "pb", "title": f"t{n}"}},
     "application/json", (401, 403, 403, 200)),
    ("own payload, other stream", lambda n: {**_post_a(n), "stream": "post-pb"}, "application/json",
     (401, 403, 403, 200)),
    ("no site", lambda n: {"type": "TeamCreated", "data": {"id": f"t{n}", "name": "T"}}, "application/json",
     (401, 403, 403, 200)),
    ("message in other site's session", lambda n: {"type": "MessageAdded", "data": {
        "id": f"m{n}", "session_id": "sb", "role": "user", "content": "hi"}}, "application/json", (401, 403, 403, 200)),
    ("created and updated in one batch", lambda n: [_post_a(n), {"type": "PostPublished", "data": {"id": f"pa{n}"}}],
     "application/json", (401, 403, 200, 200)),
    ("CloudEvents batch mixing sites", lambda n: [
        {"specversion": "1.0", "id": f"ce-a-{n}", "source": "/cms", "type": "PostCreated",
         "data": _post_a(n)["data"]},
        {"specversion": "1.0", "id": f"ce-b-{n}", "source": "/cms", "type": "PostUpdated",
         "data": {"id": "pb", "title": "x"}}], CE_BATCH, (401, 403, 403, 200)),
]


@pytest.mark.parametrize(("name", "body", "content_type", "expected"), WRITES, ids=[w[0] for w in WRITES])
def test_every_write_answers_as_documented_and_a_refusal_writes_nothing(
        world: World, name: str, body: Any, content_type: str, expected: tuple[int, int, int, int]) -> None:
    for index, (who, status) in enumerate(zip(KEYS, expected, strict=True)):
        n = abs(hash((name, who))) % 10**9 + index
        head = world.chronicle.store.head()
        response = _post(world, who, body(n), content_type)
        assert response.status_code == status, (who, name, response.text)
        if status != 200:
            assert world.chronicle.store.head() == head, "a refused batch wrote something"
    refused = _post(world, "write_a", body(10**10), content_type)
    if refused.status_code == 403 and content_type == CE_BATCH:
        assert refused.json()["index"] == 1  # the whole batch is refused, naming the offending event


OTHER_ROUTES = [
    ("POST", "/reindex", {"json": {"kinds": ["posts"]}}, (401, 403, 403, 202)),
    ("POST", f"/failures/image:img-{SECRET}-broken/retry", {}, (401, 403, 404, 202)),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "expected"), OTHER_ROUTES, ids=[r[1] for r in OTHER_ROUTES])
def test_admin_routes_answer_as_documented(world: World, method: str, path: str, kwargs: dict[str, Any],
                                           expected: tuple[int, int, int, int]) -> None:
    with world.client() as client:
        for who, status in zip(KEYS, expected, strict=True):
            response = client.request(method, path, headers=world.headers(who), **kwargs)
            assert response.status_code == status, (who, path, response.text)
    last = world.chronicle.store.read(after=world.chronicle.store.head() - 1)[0]
    actor = last.metadata.get("actor") or last.data.get("actor")
    assert last.type in ("ReindexRequested", "FailureRetryRequested") and actor == f"key:{world.key_ids['admin']}"


def test_uploads_need_write_and_a_site_of_the_key(world: World) -> None:
    with world.client() as client:
        def upload(who: str, site: str | None) -> int:
            with (IMAGES / "hopper.png").open("rb") as fh:
                return client.post("/images", files={"file": ("h.png", fh, "image/png")},
                                   data={"site_id": site} if site else {}, headers=world.headers(who)).status_code
        assert upload("none", "A") == 401
        assert upload("read_a", "A") == 403
        assert upload("write_a", "B") == 403
        assert upload("write_a", None) == 403  # no site: needs an unrestricted key
        assert upload("write_a", "A") == 202
        assert upload("admin", None) == 202


def test_the_actor_comes_from_the_key(world: World) -> None:
    response = _post(world, "write_a", {**_post_a(777), "metadata": {"actor": "mallory"}})
    assert response.status_code == 200, response.text
    recorded = world.chronicle.store.read(after=response.json()["last_position"] - 1, limit=1)[0]
    assert recorded.metadata["actor"] == f"key:{world.key_ids['write_a']}"


def test_page_shows_only_what_the_key_allows(world: World) -> None:
    with world.client() as client:
        locked = client.get("/")
        assert "An API key is needed" in locked.text and "img-a" not in locked.text
    for who in ("read_a", "admin"):
        with httpx.Client(base_url=world.url, timeout=30, cookies={"chronicle_key": world.keys[who]}) as client:
            page = client.get("/").text
            if who == "read_a":
                assert "img-a" in page and SECRET not in page and 'id="pipeline"' not in page
            else:
                assert 'id="pipeline"' in page and SECRET in page
                # the API itself never takes the cookie (no cross-site request forgery through it)
                assert client.get("/events").status_code == 401


def test_a_team_key_covers_the_team_s_sites(world: World) -> None:
    with world.client() as client:
        team = world.headers("team_t2")
        streams = {e["stream"] for e in client.get("/events", params={"limit": 1000}, headers=team).json()["events"]}
        assert {"site-C", "post-pc"} <= streams and not streams & {"site-A", "site-B", "post-pa", "post-pb"}
        assert client.get("/streams/post-pa", headers=team).status_code == 404
        assert _post(world, "team_t2", {"type": "PostCreated", "data": {
            "id": "pc2", "site_id": "C", "title": "t", "slug": "c2"}}).status_code == 200
        assert _post(world, "team_t2", _post_a(4242)).status_code == 403
        empty = world.headers("team_t9")  # a team with no site yet: restricted to nothing, not to everything
        assert client.get("/events", params={"limit": 1000}, headers=empty).json()["events"] == []
        assert client.get("/images", headers=empty).json() == {"images": [], "total": 0}
        assert client.get("/search", params={"q": "alpine"}, headers=empty).json()["results"] == []
        assert client.get("/status", headers=empty).status_code == 403


# -- keys: hashed at rest, revocation on a running server, last use ------------------------------------------


def _chronicle_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**_env(), "CHRONICLE_DATA_DIR": str(data_dir)})


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_API_TOKEN")}


def test_keys_are_hashed_at_rest_and_revocation_is_immediate(world: World) -> None:
    created = _chronicle_cli("keys", "create", "--scope", "read", "--site", "A", "--json", data_dir=world.data_dir)
    assert created.returncode == 0, created.stderr
    new = orjson.loads(created.stdout)
    assert set(new) >= {"id", "key"} and new["key"].startswith(f"chk_{new['id']}_")
    log_db = world.data_dir / "events.db"
    raw = b"".join(p.read_bytes() for p in log_db.parent.glob("events.db*"))
    assert new["key"].encode() not in raw and new["key"].split("_", 2)[2].encode() not in raw
    with sqlite3.connect(log_db) as conn:
        stored = conn.execute("SELECT digest FROM api_keys WHERE id = ?", (new["id"],)).fetchone()[0]
    import hashlib
    assert stored == hashlib.sha256(new["key"].encode()).hexdigest()

    headers = {"Authorization": f"Bearer {new['key']}"}
    with world.client() as client:
        assert client.get("/events", headers=headers).status_code == 200
        listed = orjson.loads(_chronicle_cli("keys", "list", "--json", data_dir=world.data_dir).stdout)
        mine = next(k for k in listed if k["id"] == new["id"])
        assert mine["last_used_at"] and mine["sites"] == ["A"] and "key" not in mine and "digest" not in mine
        revoked = _chronicle_cli("keys", "revoke", new["id"], data_dir=world.data_dir)  # another process
        assert revoked.returncode == 0 and orjson.loads(revoked.stdout)["revoked_at"]
        after = client.get("/events", headers=headers)
        assert after.status_code == 403 and after.json()["error"] == "forbidden"
    assert _chronicle_cli("keys", "revoke", "0000000000000000", data_dir=world.data_dir).returncode == 1
    bad = _chronicle_cli("keys", "create", "--scope", "root", data_dir=world.data_dir)
    assert bad.returncode == 2 and "scope" in bad.stderr


# -- servers of their own: rate limits, public access, keys without a token --------------------------------


@pytest.fixture
def own_server(chronicle: Chronicle) -> Iterator[Any]:
    def serve(**settings: Any) -> Any:
        http_settings = HttpSettings(data_dir=chronicle.settings.data_dir, **settings)
        return running_server(create_app(http_settings, chronicle=chronicle))
    yield serve


def test_writes_and_searches_are_rate_limited_per_key(own_server: Any, chronicle: Chronicle) -> None:
    store = KeyStore.for_log(chronicle.settings.resolved_event_store_url, chronicle.settings.resolved_data_dir)
    (_, one), (_, two) = store.create("write"), store.create("write")
    store.close()
    # A bucket of 2 that refills once in 1000 s: the third request is refused whatever the timing.
    with own_server(write_rate=0.001, write_burst=2, search_rate=0.001, search_burst=1) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        def post(key: str, n: int) -> httpx.Response:
            return client.post("/events", json={"type": "TeamCreated", "data": {"id": f"t{n}", "name": "x"}},
                               headers={"Authorization": f"Bearer {key}"})
        assert [post(one, n).status_code for n in range(2)] == [200, 200]
        limited = post(one, 3)
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert chronicle.store.head() == 2
        assert post(two, 4).status_code == 200  # another key has its own bucket
        assert client.get("/events", headers={"Authorization": f"Bearer {one}"}).status_code == 200  # reads: no limit
        searches = [client.get("/search", params={"q": "x"}, headers={"Authorization": f"Bearer {one}"}).status_code
                    for _ in range(2)]
        assert searches[1] == 429 and searches[0] != 429


def test_with_a_redis_broker_every_api_process_shares_the_buckets(own_server: Any, chronicle: Chronicle,
                                                                  redis_db_url: str) -> None:
    store = KeyStore.for_log(chronicle.settings.resolved_event_store_url, chronicle.settings.resolved_data_dir)
    _, key = store.create("write")
    store.close()
    auth = {"Authorization": f"Bearer {key}"}
    limits = {"broker_url": redis_db_url, "write_rate": 0.001, "write_burst": 2}
    with own_server(**limits) as one, own_server(**limits) as two:  # two API processes, one Redis
        codes = [httpx.post(f"{url}/events", json={"type": "TeamCreated", "data": {"id": f"r{n}", "name": "x"}},
                            headers=auth, timeout=30) for n, url in enumerate((one, two, two))]
    assert [c.status_code for c in codes] == [200, 200, 429], [c.text for c in codes]
    assert int(codes[2].headers["retry-after"]) >= 1


def test_public_media_and_search_are_an_explicit_setting(own_server: Any, chronicle: Chronicle) -> None:
    from pipeline.http.uploads import media_root

    path = media_root(chronicle.settings) / "variants" / "ab" / "abcd.webp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"bytes")
    with own_server(api_token=TOKEN) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/media/variants/ab/abcd.webp").status_code == 401
        assert client.get("/search", params={"q": "x"}).status_code == 401
    with own_server(api_token=TOKEN, public=["media", "search"]) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        served = client.get("/media/variants/ab/abcd.webp")
        assert served.status_code == 200 and served.headers["cache-control"].startswith("public")
        assert client.get("/search", params={"q": "x"}).status_code in (200, 503)  # public (no index here)
        assert client.get("/events").status_code == 401  # nothing else opened


def test_a_key_turns_auth_on_and_revoking_the_last_one_keeps_it_on(own_server: Any, chronicle: Chronicle) -> None:
    with own_server() as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/events").status_code == 200  # no token, no key: auth off (localhost only)
        store = KeyStore.for_log(chronicle.settings.resolved_event_store_url, chronicle.settings.resolved_data_dir)
        key, secret = store.create("read")
        assert client.get("/events").status_code == 401
        assert client.get("/events", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        store.revoke(key.id)
        store.close()
        assert client.get("/events").status_code == 401
        assert client.get("/events", headers={"Authorization": f"Bearer {secret}"}).status_code == 403
