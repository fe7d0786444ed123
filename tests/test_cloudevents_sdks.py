"""The official CloudEvents SDKs as real clients of a running ``chronicle serve`` process.

* Python: ``cloudevents`` from PyPI, its ``to_binary`` and ``to_structured`` (the 2.x core bindings and
  the 1.x-compatible ``cloudevents.v1`` API);
* Node: ``cloudevents`` from npm, driven by ``node``: binary (its emitter over its HTTP transport),
  structured (``HTTP.structured``) and batch (an array of its events, as its batch parser reads them).

Each event sent is read back over ``GET /events``: the same id, type, subject, source, time and data.
The npm package is installed once into ``~/.cache/chronicle-tests/node-cloudevents`` (outside the repo;
``CHRONICLE_TEST_CACHE`` moves it) and reused. Without node/npm or the Python SDK the tests skip with
the reason, except under ``CI=true``, where that is a broken CI and fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import terminate

from .test_http_cli import free_port

CHRONICLE = str(Path(sys.executable).parent / "chronicle")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NPM_PACKAGE = "cloudevents@10"
CACHE = Path(os.environ.get("CHRONICLE_TEST_CACHE", Path.home() / ".cache" / "chronicle-tests"))
NODE_DIR = CACHE / "node-cloudevents"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run the CloudEvents SDK tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``chronicle serve`` as a process on a fresh data dir; yields its base URL once it answers."""
    data_dir = tmp_path_factory.mktemp("sdk") / "data"
    port = free_port()
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir), "CHRONICLE_EMBEDDER": "off"}
    for var in ("CHRONICLE_API_TOKEN", "CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY"):
        env.pop(var, None)
    proc = subprocess.Popen([CHRONICLE, "serve", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"chronicle serve did not answer:\n{output}")
            time.sleep(0.05)
        yield base
    finally:
        terminate(proc)


def logged(base: str) -> dict[str, dict[str, Any]]:
    """Every event in the log, by id (paging through ``GET /events``)."""
    events: dict[str, dict[str, Any]] = {}
    after = 0
    while True:
        page = httpx.get(f"{base}/events", params={"after": after, "limit": 1000}, timeout=10).json()
        events.update((e["id"], e) for e in page["events"])
        if not page["events"]:
            return events
        after = page["next_after"]


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def assert_in_log(base: str, sent: list[dict[str, Any]]) -> None:
    """``sent``: the events as the SDK serialised them (id, type, subject, source, time, data)."""
    log = logged(base)
    for ce in sent:
        assert ce["id"] in log, f"{ce['id']} is not in the log ({sorted(log)})"
        event = log[ce["id"]]
        assert event["id"] == ce["id"]
        assert event["type"] == ce["type"].rsplit(".", 1)[-1]
        if ce["type"] != event["type"]:
            assert event["metadata"]["cloudevents_type"] == ce["type"]
        assert event["stream"] == ce["subject"]
        assert event["metadata"]["source"] == ce["source"]
        assert _time(event["metadata"]["time"]) == _time(ce["time"])
        assert event["data"] == ce["data"]


def team_data(n: str) -> dict[str, Any]:
    # Every field of TeamCreated, so the log's normalised payload equals what was sent.
    return {"id": f"team-{n}", "name": f"Team {n}", "slug": f"team-{n}"}


# -- Python: cloudevents from PyPI --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_sdk() -> Any:
    try:
        from cloudevents.core.bindings import http as bindings
    except ImportError:
        _unavailable("the Python CloudEvents SDK is not installed (pip install -e '.[test]')")
    return bindings


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_python_sdk_core_bindings(server: str, python_sdk: Any, mode: str) -> None:
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    when = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    attributes = {"id": f"py-core-{mode}", "type": "com.acme.cms.TeamCreated", "source": "/cms/acme",
                  "subject": f"team-py-core-{mode}", "time": when, "datacontenttype": "application/json",
                  "expectedversion": "0", "correlationid": f"req-{mode}"}
    event = CloudEvent(attributes=dict(attributes), data=team_data(f"py-core-{mode}"))
    convert = python_sdk.to_binary if mode == "binary" else python_sdk.to_structured
    message = convert(event, JSONFormat())
    if mode == "binary":
        assert message.headers["ce-id"] == attributes["id"]  # really binary mode
    response = httpx.post(f"{server}/events", headers=message.headers, content=message.body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["appended"] == 1
    assert_in_log(server, [{**attributes, "data": team_data(f"py-core-{mode}")}])
    stored = logged(server)[attributes["id"]]
    assert stored["version"] == 1 and stored["metadata"]["correlation_id"] == f"req-{mode}"

    again = httpx.post(f"{server}/events", headers=message.headers, content=message.body, timeout=10)
    assert again.json()["duplicates"] == 1  # the id is the idempotency key in every mode


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_python_sdk_v1_api(server: str, python_sdk: Any, mode: str) -> None:
    from cloudevents.v1.conversion import to_binary, to_structured
    from cloudevents.v1.http import CloudEvent

    attributes = {"id": f"py-v1-{mode}", "type": "TeamCreated", "source": "/cms/legacy",
                  "subject": f"team-py-v1-{mode}", "time": "2024-05-02T08:00:00Z"}
    event = CloudEvent(dict(attributes), team_data(f"py-v1-{mode}"))
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    assert ("ce-id" in headers) == (mode == "binary")
    response = httpx.post(f"{server}/events", headers=headers, content=body, timeout=10)
    assert response.status_code == 200, response.text
    assert_in_log(server, [{**attributes, "data": team_data(f"py-v1-{mode}")}])


def test_python_sdk_binary_without_a_required_attribute_is_422_naming_the_header(server: str,
                                                                                 python_sdk: Any) -> None:
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    message = python_sdk.to_binary(CloudEvent({"id": "py-bad", "type": "TeamCreated", "source": "/cms"},
                                              data=team_data("bad")), JSONFormat())
    headers = {k: v for k, v in message.headers.items() if k != "ce-source"}
    response = httpx.post(f"{server}/events", headers=headers, content=message.body, timeout=10)
    assert response.status_code == 422 and response.json()["field"] == "ce-source", response.text


# -- Node: cloudevents from npm ------------------------------------------------------------------------------

NODE_SCRIPT = textwrap.dedent("""
    const { CloudEvent, HTTP, CONSTANTS, Mode, emitterFor, httpTransport } = require("cloudevents");
    const url = process.argv[2];
    const team = (n) => ({ id: `team-${n}`, name: `Team ${n}`, slug: `team-${n}` });
    const event = (n, extra = {}) => new CloudEvent({
        id: `node-${n}`, type: "com.acme.cms.TeamCreated", source: "/cms/node", subject: `team-node-${n}`,
        time: "2024-06-01T09:15:30.125Z", datacontenttype: "application/json", data: team(`node-${n}`),
        ...extra });
    async function main() {
        const results = [];
        // binary: the SDK's emitter over its own HTTP transport (it resolves with the response body)
        const binary = event("binary", { expectedversion: "0", correlationid: "req-node" });
        const emit = emitterFor(httpTransport(url), { mode: Mode.BINARY });
        const answer = await emit(binary);
        results.push({ mode: "binary", wire: HTTP.binary(binary).headers, response: JSON.parse(answer.body),
                       sent: [binary.toJSON()] });
        // structured: HTTP.structured, posted with fetch
        const structured = event("structured");
        const message = HTTP.structured(structured);
        let res = await fetch(url, { method: "POST", headers: message.headers, body: message.body });
        results.push({ mode: "structured", status: res.status, wire: message.headers,
                       response: await res.json(), sent: [structured.toJSON()] });
        // batch: an array of the SDK's events in the batch format its parser reads back
        const batch = [event("batch-1"), event("batch-2"), event("batch-3")];
        const body = JSON.stringify(batch);
        if (HTTP.toEvent({ headers: { "content-type": CONSTANTS.MIME_CE_BATCH }, body }).length !== 3) {
            throw new Error("the SDK does not read back its own batch");
        }
        res = await fetch(url, { method: "POST", headers: { "content-type": CONSTANTS.MIME_CE_BATCH }, body });
        results.push({ mode: "batch", status: res.status, response: await res.json(),
                       sent: batch.map((e) => e.toJSON()) });
        process.stdout.write(JSON.stringify(results));
    }
    main().catch((err) => { console.error(err); process.exit(1); });
""")


@pytest.fixture(scope="module")
def node_cloudevents() -> Path:
    """The npm package's ``node_modules``, installed once into the cache and reused."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        _unavailable("node and npm are needed for the npm CloudEvents SDK test")
    modules = NODE_DIR / "node_modules"
    manifest = modules / "cloudevents" / "package.json"
    wanted = NPM_PACKAGE.rsplit("@", 1)[1]
    if not (manifest.exists() and json.loads(manifest.read_text())["version"].split(".")[0] == wanted):
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        if not (NODE_DIR / "package.json").exists():
            (NODE_DIR / "package.json").write_text('{"name": "chronicle-node-cloudevents", "private": true}\n')
        try:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR),
                                   NPM_PACKAGE], capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            _unavailable(f"npm install {NPM_PACKAGE} timed out")
        if done.returncode != 0 or not manifest.exists():
            _unavailable(f"npm install {NPM_PACKAGE} failed: {done.stderr.strip()[-400:]}")
    return modules


def test_node_sdk_binary_structured_and_batch(server: str, node_cloudevents: Path, tmp_path: Path) -> None:
    script = tmp_path / "send.js"
    script.write_text(NODE_SCRIPT)
    env = {**os.environ, "NODE_PATH": str(node_cloudevents)}
    done = subprocess.run(["node", str(script), f"{server}/events"], capture_output=True, text=True, timeout=120,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    results = {r["mode"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"binary", "structured", "batch"}
    assert results["binary"]["wire"]["ce-id"] == "node-binary"  # the SDK really sent binary mode
    assert results["structured"]["wire"]["content-type"].startswith("application/cloudevents+json")
    for mode, result in results.items():
        assert result.get("status", 200) == 200, (mode, result)
        assert result["response"]["appended"] == len(result["sent"]), (mode, result)
        assert_in_log(server, result["sent"])
    binary = logged(server)["node-binary"]
    assert binary["metadata"]["correlation_id"] == "req-node" and binary["version"] == 1
