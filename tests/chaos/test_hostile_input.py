"""Scenario 5: hostile input at every door — the Python API, ``chronicle emit -``, the HTTP API and the
media job. Every input ends as a clear error (InvalidEvent / exit 2 / 4xx) or a ``failed`` image with a
reason: no crash, no 500, no hang past the time limit, and nothing partially written (the log head is
unchanged after a rejected batch).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import Chronicle, Settings
from pipeline.envelope import validate_envelope
from pipeline.errors import ChronicleError, InvalidEvent
from pipeline.events import CATALOGUE
from pipeline.http import HttpSettings, create_app
from pipeline.http.cloudevents import to_envelope, to_envelopes
from pipeline.http.testing import running_server
from pipeline.media.upload import upload
from pipeline.notify import NullNotifier
from tests.chaos.common import FAST_ENV, image_statuses
from tests.chaos.conftest import FULL, figure
from tests.factories import page
from tests.helpers import cli

SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "images"
EXAMPLES = 3000 if FULL else 150
MUTANTS_PER_KIND = 12 if FULL else 3
TOKEN = "chaos-token"
MAX_BODY = 256 * 1024

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)
type_names = st.sampled_from(sorted(CATALOGUE)) | st.text(max_size=20)
field_names = st.sampled_from(["id", "site_id", "title", "slug", "filename", "original_path", "mime_type", "size",
                               "team_id", "name", "settings", "items", "content", "section_ids", "page_id"])
envelopes = st.fixed_dictionaries(
    {"type": type_names, "data": st.dictionaries(field_names | st.text(max_size=8), json_values, max_size=8)},
    optional={"id": json_values | st.text(), "stream": json_values | st.text(), "expected_version": json_values,
              "metadata": json_values})
cloud_events = st.fixed_dictionaries(
    {"specversion": st.sampled_from(["1.0", "0.3", 1]) | json_scalars, "id": json_scalars,
     "source": json_scalars, "type": type_names | json_scalars},
    optional={"data": json_values, "subject": json_values, "datacontenttype": json_values,
              "expectedversion": json_values, "data_base64": json_values, "time": json_values,
              "correlationid": json_values})

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not FULL,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(raw=envelopes | json_values)
def test_fuzzed_envelopes_are_accepted_or_a_clear_error(raw: Any) -> None:
    try:
        event = validate_envelope(raw, index=0, max_bytes=4096)
    except ChronicleError as exc:  # InvalidEvent, UnknownEventType: a reason, a field
        assert str(exc)
        return
    assert event.type in CATALOGUE and event.stream and len(event.data_json) + len(event.metadata_json) <= 4096


@FUZZ
@given(raw=cloud_events | json_values | st.lists(cloud_events, max_size=3))
def test_fuzzed_cloudevents_are_accepted_or_a_clear_error(raw: Any) -> None:
    try:
        envelopes_ = to_envelopes(raw) if isinstance(raw, list) else [to_envelope(raw, index=0)]
        for i, env in enumerate(envelopes_):
            validate_envelope(env, index=i)
    except ChronicleError as exc:
        assert str(exc)


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def handle(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chronicle]:
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "off")
    chronicle = Chronicle(Settings(data_dir=data_dir), notifier=NullNotifier())
    chronicle.emit_many([page("seed")])
    yield chronicle
    chronicle.close()


# Found by this suite: a payload nested ~300-1024 levels deep (valid JSON: orjson parses up to 1024) made
# pydantic's model_dump raise a bare ValueError in validate_envelope: a traceback and exit 1 from
# `chronicle emit -`, a 500 from POST /events. Fixed in pipeline/envelope.py (an InvalidEvent now).
@pytest.mark.parametrize("depth", [200, 600, 1_000, 5_000])
def test_deeply_nested_payloads_through_the_python_api(handle: Chronicle, depth: int) -> None:
    head = handle.store.head()
    bad = {"type": "PageCreated", "data": {"id": "deep", "site_id": "s", "title": "t", "slug": "s",
                                           "metadata": deep(depth)}}
    try:
        handle.emit_many([page("ok-1"), bad])
    except InvalidEvent:
        assert handle.store.head() == head, "a rejected batch wrote something"
        return
    # accepted (shallow enough): then the whole batch is there and it projects
    assert handle.store.head() == head + 2
    handle.project()


def nested_page(depth: int) -> bytes:
    return (b'{"type": "PageCreated", "data": {"id": "n", "site_id": "s", "title": "t", "slug": "s", "metadata": '
            + b'{"a": ' * depth + b"1" + b"}" * depth + b"}}")


def test_moderately_deep_json_is_a_clear_error_at_the_cli_and_over_http(api: tuple[str, Chronicle]) -> None:
    url, handle = api
    head = handle.store.head()
    out = cli("emit", "-", input=nested_page(600) + b"\n")
    response = httpx.post(f"{url}/events", content=nested_page(600), timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert handle.store.head() == head  # this part holds: nothing is written
    assert out.returncode == 2 and "Traceback" not in out.stderr.decode(), out.stderr.decode()[-300:]
    assert response.status_code == 422, (response.status_code, response.text[:200])


def test_cli_emit_rejects_hostile_lines_and_writes_nothing(handle: Chronicle) -> None:
    head = handle.store.head()
    good = orjson.dumps(page("cli-ok")) + b"\n"
    big = orjson.dumps({"type": "PageCreated", "data": {"id": "big", "site_id": "s", "title": "x" * 1_100_000,
                                                        "slug": "b"}}) + b"\n"
    nested = b'{"type": "PageCreated", "data": {"id": "n", "site_id": "s", "title": "t", "slug": "s", ' \
             b'"metadata": ' + b'{"a": ' * 100_000 + b'1' + b'}' * 100_000 + b'}}\n'
    hostile = {
        "invalid utf-8": good + b'{"type": "PageCreated", "data": {"id": "\xff\xfe", "site_id": "s"}}\n',
        "oversized payload": good + big,
        "deep nesting": good + nested,
        "not json": good + b"{\"type\": \n",
        "a json array line": good + b"[1, 2, 3]\n",
        "nul bytes": good + b'{"type": "PageCreated\x00", "data": {}}\n',
        "lone surrogate": good + b'{"type": "PageCreated", "data": {"id": "\\ud800", "site_id": "s", '
                                 b'"title": "t", "slug": "s"}}\n',
    }
    outcomes = {}
    for name, body in hostile.items():
        started = time.monotonic()
        out = cli("emit", "-", input=body)
        outcomes[name] = out.returncode
        err = out.stderr.decode(errors="replace")
        if name == "lone surrogate" and out.returncode == 0:
            continue  # a valid JSON escape; storing it is a legitimate outcome
        assert out.returncode == 2, f"{name}: exit {out.returncode}: {err[-500:]}"
        assert "Traceback" not in err and "line 2" in err, f"{name}: unclear error: {err[-500:]}"
        assert time.monotonic() - started < 60, f"{name}: took too long"
        assert handle.store.head() == head, f"{name}: a rejected batch wrote something"
    figure(f"hostile input, chronicle emit -: exit codes {outcomes}")


@pytest.fixture
def api(handle: Chronicle, data_dir: Path) -> Iterator[tuple[str, Chronicle]]:
    settings_ = HttpSettings(data_dir=data_dir, api_token=TOKEN, max_body_bytes=MAX_BODY,
                             max_upload_bytes=512 * 1024, log_synchronous="NORMAL")
    with running_server(create_app(settings_, chronicle=handle)) as url:
        yield url, handle


def test_http_rejects_hostile_bodies_and_writes_nothing(api: tuple[str, Chronicle]) -> None:
    url, handle = api
    head = handle.store.head()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ok = orjson.dumps(page("http-ok"))
    bodies: dict[str, tuple[str, bytes]] = {
        "oversized body": ("application/json", b"[" + b",".join([ok] * 3000) + b"]"),
        "invalid utf-8": ("application/json", b'[' + ok + b', {"type": "PageCreated", "data": {"id": "\xff"}}]'),
        "deep nesting": ("application/json", b'{"a": ' * 20_000 + b"1" + b"}" * 20_000),  # under the limit
        "deep nesting in a valid batch": ("application/json", b"[" + ok + b', {"type": "PageCreated", "data": '
                                          b'{"id": "x", "site_id": "s", "title": "t", "slug": "s", "metadata": '
                                          + b"[" * 5_000 + b"]" * 5_000 + b"}}]"),
        "not json": ("application/json", b"{\"type\":"),
        "cloudevent batch with one bad": ("application/cloudevents-batch+json", orjson.dumps([
            {"specversion": "1.0", "id": "ce-1", "source": "/t", "type": "PageCreated",
             "data": {"id": "ce1", "site_id": "s", "title": "t", "slug": "s"}},
            {"specversion": "1.0", "id": "ce-2", "source": "/t", "type": "PageCreated", "data": {"id": 5}}])),
        "cloudevent data_base64": ("application/cloudevents+json", orjson.dumps(
            {"specversion": "1.0", "id": "ce-3", "source": "/t", "type": "PageCreated", "data_base64": "AAAA"})),
    }
    codes: dict[str, object] = {}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        for name, (content_type, body) in bodies.items():
            try:
                response = client.post("/events", content=body, headers={"Content-Type": content_type})
            except httpx.TransportError as exc:
                # Observed (flaky, full run): the body limit answers 413 before reading the body and the
                # connection is closed under a client still sending, which then sees a reset instead of
                # the 413. Nothing is written either way; docs/reliability.md reports it.
                assert len(body) > MAX_BODY, f"{name}: {exc!r}"
                assert handle.store.head() == head
                codes[name] = f"connection reset ({type(exc).__name__})"
                continue
            codes[name] = response.status_code
            assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:300]}"
            assert handle.store.head() == head, f"{name}: a rejected batch wrote something"
        # path traversal in an upload's filename: stored content-addressed, the name is only a label
        [source] = sorted(SHARED_IMAGES.glob("pillow/hopper.jpg")) or [None]
        if source is not None:
            response = client.post("/images", files={"file": ("../../../../etc/cron.d/evil.jpg",
                                                              source.read_bytes(), "image/jpeg")})
            assert response.status_code in (202, 422), response.text
            if response.status_code == 202:
                body = response.json()
                assert ".." not in body["original_path"] and not body["original_path"].startswith("/")
                [event] = [e for e in handle.store.iter_all() if e.type == "ImageUploaded"]
                assert "/" not in event.data["filename"] and ".." not in event.data["original_path"]
            codes["upload ../ filename"] = response.status_code
        try:
            response = httpx.post(f"{url}/images", files={"file": ("x.jpg", b"\xff\xd8" * 400_000, "image/jpeg")},
                                  headers=auth, timeout=60)
            codes["oversized upload"] = response.status_code
            assert response.status_code == 413, response.text[:300]
        except httpx.TransportError as exc:  # see above: a reset instead of the 413
            codes["oversized upload"] = f"connection reset ({type(exc).__name__})"
        assert not [e for e in handle.store.iter_all() if e.type == "ImageUploaded" and e.data["size"] > 500_000]
    figure(f"hostile input over HTTP: status codes {codes}")


def test_path_traversal_in_original_path_fails_the_image(handle: Chronicle, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes((SHARED_IMAGES / "pillow" / "hopper.jpg").read_bytes())
    media = handle.settings.media_dir
    media.mkdir(parents=True, exist_ok=True)
    (media / "escape.jpg").symlink_to(outside)
    paths = {"dotdot": "../../secret.jpg", "absolute": str(outside), "nested-dotdot": "originals/../../../secret.jpg",
             "symlink-out": "escape.jpg", "nul": "originals/a\x00.jpg"}
    events = []
    for name, original in paths.items():
        events.append({"type": "ImageUploaded", "data": {"id": f"trav-{name}", "filename": "x.jpg",
                                                         "original_path": original, "mime_type": "image/jpeg",
                                                         "size": 10}})
    accepted = []
    for env in events:
        try:
            handle.emit_many([env])
            accepted.append(env["data"]["id"])
        except InvalidEvent:
            pass  # refused at the door is fine too
    handle.drain()
    from db.engine import connect

    conn = connect(handle.settings.projection_db_path)
    try:
        rows = dict(conn.execute("SELECT id, status || ': ' || coalesce(error, '') FROM images").fetchall())
    finally:
        conn.close()
    for image_id in accepted:
        assert rows[image_id].startswith("failed: "), f"{image_id}: {rows[image_id]}"
    assert not list((media / "variants").rglob("*")) if (media / "variants").exists() else True
    figure(f"path traversal in original_path: {rows}")


def mutants(directory: Path, rng: random.Random) -> list[tuple[str, Path, str]]:
    """Truncated, bit-flipped and header-lied copies of the shared test images, written into tmp."""
    directory.mkdir(parents=True, exist_ok=True)
    sources = [p for p in sorted((SHARED_IMAGES / "pillow").iterdir())
               if p.suffix.lower() in (".jpg", ".png", ".gif", ".webp", ".tif", ".avif") and p.stat().st_size < 400_000]
    sources += sorted((SHARED_IMAGES / "exif-orientation").glob("*.jpg"))[:2]
    out: list[tuple[str, Path, str]] = []
    mimes = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp",
             ".tif": "image/tiff", ".avif": "image/avif"}
    for kind in ("truncated", "bitflip", "header-lie"):
        for source in rng.sample(sources, min(MUTANTS_PER_KIND, len(sources))):
            data = bytearray(source.read_bytes())
            mime = mimes[source.suffix.lower()]
            if kind == "truncated":
                data = data[: rng.randint(16, max(17, len(data) // 2))]
            elif kind == "bitflip":
                for _ in range(rng.randint(1, 40)):
                    i = rng.randrange(min(len(data), 64), len(data)) if len(data) > 64 else rng.randrange(len(data))
                    data[i] ^= 1 << rng.randrange(8)
            else:  # a PNG header on JPEG bytes (or the reverse), declared as the original type
                lie = b"\x89PNG\r\n\x1a\n" if mime != "image/png" else b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
                data = bytearray(lie) + data[len(lie):]
            path = directory / f"{kind}-{source.stem}{source.suffix}"
            path.write_bytes(bytes(data))
            out.append((kind, path, mime))
    return out


def test_mutated_images_complete_or_fail_with_a_reason(handle: Chronicle, tmp_path: Path) -> None:
    if not SHARED_IMAGES.exists():
        pytest.skip(f"{SHARED_IMAGES} is not there")
    seed = random.SystemRandom().randrange(1 << 30) if FULL else 20261122
    files = mutants(tmp_path / "mutants", random.Random(seed))
    for i, (kind, path, mime) in enumerate(files):
        upload(handle, path, image_id=f"m{i}-{kind}", mime_type=mime)
    started = time.monotonic()
    handle.drain()  # the real media job (sandboxed helper process), inline
    seconds = time.monotonic() - started
    statuses = image_statuses(handle)
    assert set(statuses) <= {"completed", "failed"}, statuses
    assert sum(statuses.values()) == len(files)
    from db.engine import connect

    conn = connect(handle.settings.projection_db_path)
    try:
        for image_id, error in conn.execute("SELECT id, error FROM images WHERE status='failed'"):
            assert error and len(error) > 10, f"{image_id}: failed without a reason"
    finally:
        conn.close()
    limit = float(FAST_ENV["CHRONICLE_MEDIA_TIME_LIMIT"]) * len(files)
    assert seconds < limit
    figure(f"mutated images (seed {seed}): {len(files)} files → {statuses} in {seconds:.1f}s, every failure "
           f"with a reason")
