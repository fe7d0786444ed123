"""AI descriptions through the real ``openai`` client against a local fake server (never a real key)."""

from __future__ import annotations

import json
import sqlite3

import openai
import pytest

from pipeline import Chronicle
from pipeline.media.jobs import STATS
from pipeline.media.upload import upload
from tests.conftest import SHARED
from tests.fakes.openai_server import FakeOpenAI, fake_openai  # noqa: F401  (fixture)

PILLOW = SHARED / "testdata" / "images" / "pillow"
CHAT = "/v1/chat/completions"
REPLY = {"alt_text": "A woman in a hat", "caption": "Portrait of a woman wearing a feathered hat.",
         "tags": ["Portrait", "hat", "woman"]}


@pytest.fixture(autouse=True)
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "320")
    monkeypatch.setenv("CHRONICLE_MEDIA_FORMATS", "webp")
    STATS.clear()


@pytest.fixture
def configured(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.chat_reply = json.dumps(REPLY)
    return fake_openai


def described(chronicle: Chronicle) -> list[dict]:
    return [e.data for e in chronicle.store.read(after=0, limit=10_000) if e.type == "ImageDescribed"]


def test_vision_api_429_with_retry_after_then_success(chronicle: Chronicle, configured: FakeOpenAI) -> None:
    configured.fail_next(429, times=1, retry_after=0.4, path=CHAT)
    image_id = upload(chronicle, PILLOW / "hopper.jpg")["id"]
    chronicle.drain()
    assert configured.count(CHAT) == 2
    chat = [i for i, (_, path, _, _) in enumerate(configured.requests) if path == CHAT]
    assert configured.times[chat[1]] - configured.replied[chat[0]] >= 0.35, "Retry-After was not honoured"
    [event] = described(chronicle)
    assert event["id"] == image_id
    assert event["alt_text"] == REPLY["alt_text"] and event["tags"] == ["portrait", "hat", "woman"]
    _, _, body, headers = configured.requests[chat[1]]
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-test-not-a-real-key"
    image_part = body["messages"][0]["content"][1]
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    db = sqlite3.connect(chronicle.settings.projection_db_path)
    (meta,) = db.execute("SELECT metadata FROM images WHERE id = ?", (image_id,)).fetchone()
    db.close()
    assert json.loads(meta)["ai"]["caption"] == REPLY["caption"]


def test_duplicate_image_is_not_described_twice(chronicle: Chronicle, configured: FakeOpenAI) -> None:
    upload(chronicle, PILLOW / "hopper.jpg")
    upload(chronicle, PILLOW / "hopper.jpg")
    chronicle.drain()
    assert configured.count(CHAT) == 1
    assert len(described(chronicle)) == 2


def test_server_errors_retry_and_permanent_errors_do_not(chronicle: Chronicle, configured: FakeOpenAI) -> None:
    configured.fail_next(503, times=2, path=CHAT)
    upload(chronicle, PILLOW / "hopper.jpg")
    chronicle.drain()
    assert configured.count(CHAT) == 3 and len(described(chronicle)) == 1

    configured.fail_next(400, times=5, path=CHAT)
    upload(chronicle, PILLOW / "flower.jpg")
    chronicle.drain()
    assert configured.count(CHAT) == 4, "a 400 is not retried"
    assert len(described(chronicle)) == 1 and STATS["describe_failed"] == 1


def test_skipped_cleanly_without_a_key(chronicle: Chronicle, fake_openai: FakeOpenAI) -> None:  # noqa: F811
    upload(chronicle, PILLOW / "hopper.jpg")
    chronicle.drain()
    assert fake_openai.count(CHAT) == 0 and described(chronicle) == []
    assert STATS["processed"] == 1 and STATS["described"] == 0 and STATS["describe_failed"] == 0


def test_fake_server_speaks_embeddings_too(fake_openai: FakeOpenAI) -> None:  # noqa: F811
    client = openai.OpenAI(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    result = client.embeddings.create(model="m", input=["a", "b", "a"], dimensions=8)
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 8 and vectors[0] == vectors[2] != vectors[1]
    fake_openai.fail_next(429, path="/v1/embeddings")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="m", input="x")
    assert fake_openai.count("/v1/embeddings") == 2
