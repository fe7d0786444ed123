"""CloudEvents binary content mode on ``POST /events``: ``ce-`` headers, the data as the body.

Mapped through the same function as the structured mode, so an event sent either way is the same
event in the log; missing attributes are a 422 naming the header. The official SDKs as clients:
``tests/test_cloudevents_sdks.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server

CE = "application/cloudevents+json"


@pytest.fixture
def client(chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.delenv("CHRONICLE_API_TOKEN", raising=False)
    app = create_app(HttpSettings(data_dir=chronicle.settings.data_dir, max_body_bytes=64 * 1024),
                     chronicle=chronicle)
    with running_server(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def ce_headers(event_id: str = "b-1", type_: str = "TeamCreated", **extra: str) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/cms/acme", "ce-type": type_,
               "content-type": "application/json"}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def post_binary(client: httpx.Client, headers: dict[str, str], data: Any) -> httpx.Response:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return client.post("/events", content=body, headers=headers)


def test_binary_mode_maps_like_the_structured_mode(client: httpx.Client, chronicle: Chronicle) -> None:
    data = {"id": "t1", "name": "Acme", "slug": "acme"}
    headers = ce_headers("b-1", "com.acme.cms.TeamCreated", ce_subject="team-t1", ce_time="2024-05-01T12:00:00Z",
                         ce_correlationid="req-7", ce_tenant="acme", ce_dataschema="https://acme.test/team")
    response = post_binary(client, headers, data)
    assert response.status_code == 200, response.text
    assert response.json()["positions"] == [1]

    structured = {"specversion": "1.0", "id": "s-1", "source": "/cms/acme", "type": "com.acme.cms.TeamCreated",
                  "subject": "team-t2", "time": "2024-05-01T12:00:00Z", "correlationid": "req-7", "tenant": "acme",
                  "dataschema": "https://acme.test/team", "datacontenttype": "application/json",
                  "data": {"id": "t2", "name": "Acme"}}
    assert client.post("/events", content=orjson.dumps(structured), headers={"content-type": CE}).status_code == 200
    binary, struct = chronicle.store.read()
    assert (binary.id, binary.type, binary.stream, binary.data) == ("b-1", "TeamCreated", "team-t1", data)
    assert binary.metadata == struct.metadata
    assert binary.metadata["source"] == "/cms/acme" and binary.metadata["correlation_id"] == "req-7"
    assert binary.metadata["time"] == "2024-05-01T12:00:00Z" and binary.metadata["tenant"] == "acme"
    assert binary.metadata["cloudevents_type"] == "com.acme.cms.TeamCreated"

    again = post_binary(client, headers, data)
    assert again.status_code == 200 and again.json()["duplicates"] == 1


def test_header_values_are_percent_decoded_and_names_case_insensitive(client: httpx.Client,
                                                                      chronicle: Chronicle) -> None:
    headers = {"CE-SpecVersion": "1.0", "Ce-Id": "b-%C3%A9", "CE-SOURCE": "/cms/a%20b", "ce-type": "TeamCreated",
               "Content-Type": "application/json; charset=utf-8"}
    response = post_binary(client, headers, {"id": "t1", "name": "x"})
    assert response.status_code == 200, response.text
    event = chronicle.store.read()[0]
    assert event.id == "b-é" and event.metadata["source"] == "/cms/a b"


def test_missing_content_type_is_json_and_vendor_json_types_are_accepted(client: httpx.Client,
                                                                         chronicle: Chronicle) -> None:
    headers = ce_headers("b-1")
    del headers["content-type"]
    assert post_binary(client, headers, {"id": "t1", "name": "x"}).status_code == 200
    vendor = ce_headers("b-2", content_type="application/vnd.acme+json")
    assert post_binary(client, vendor, {"id": "t2", "name": "x"}).status_code == 200
    assert [e.id for e in chronicle.store.read()] == ["b-1", "b-2"]


@pytest.mark.parametrize("missing", ["ce-specversion", "ce-id", "ce-source", "ce-type"])
def test_a_missing_required_header_is_422_naming_it(client: httpx.Client, chronicle: Chronicle,
                                                    missing: str) -> None:
    headers = ce_headers()
    del headers[missing]
    response = post_binary(client, headers, {"id": "t1", "name": "x"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_event" and body["field"] == missing and missing in body["detail"]
    assert chronicle.store.head() == 0


@pytest.mark.parametrize(("headers", "data", "field"), [
    ({"ce-specversion": "0.3"}, {"id": "t1", "name": "x"}, "ce-specversion"),
    ({"ce-id": ""}, {"id": "t1", "name": "x"}, "ce-id"),
    ({"ce-expectedversion": "-1"}, {"id": "t1", "name": "x"}, "ce-expectedversion"),
    ({"ce-expectedversion": "9223372036854775808"}, {"id": "t1", "name": "x"}, "ce-expectedversion"),  # 2**63
    ({"ce-expectedversion": "9" * 5000}, {"id": "t1", "name": "x"}, "ce-expectedversion"),
    ({"ce-expectedversion": "1e3"}, {"id": "t1", "name": "x"}, "ce-expectedversion"),
    ({"ce-type": "NotAnEvent"}, {"id": "t1", "name": "x"}, "ce-type"),
    ({"ce-subject": "bad stream name with spaces and / # ?" * 20}, {"id": "t1", "name": "x"}, "ce-subject"),
    ({}, {"name": "no id"}, "data.id"),
    ({}, [1, 2], "data"),
    ({"ce-datacontenttype": "application/json"}, {"id": "t1", "name": "x"}, "ce-datacontenttype"),
    ({"ce-data": "{}"}, {"id": "t1", "name": "x"}, "ce-data"),
    ({"ce-id": "%FF%FE"}, {"id": "t1", "name": "x"}, "ce-id"),  # percent-encoded, but not UTF-8
])
def test_invalid_binary_event_names_the_header(client: httpx.Client, headers: dict[str, str], data: Any,
                                               field: str) -> None:
    response = post_binary(client, ce_headers() | headers, data)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field, response.json()


def test_structured_mode_refuses_a_version_beyond_64_bits_too(client: httpx.Client) -> None:
    for value in (2**63, str(2**64)):
        ce = {"specversion": "1.0", "id": "s-1", "source": "/s", "type": "TeamCreated", "subject": "team-t1",
              "expectedversion": value, "data": {"id": "t1", "name": "x"}}
        response = client.post("/events", content=orjson.dumps(ce), headers={"content-type": CE})
        assert response.status_code == 422 and response.json()["field"] == "expectedversion", response.text


def test_expectedversion_header_makes_the_append_conditional(client: httpx.Client) -> None:
    first = ce_headers("b-1", ce_subject="team-t1", ce_expectedversion="0")
    assert post_binary(client, first, {"id": "t1", "name": "x"}).status_code == 200
    second = ce_headers("b-2", ce_subject="team-t1", ce_expectedversion="0")
    response = post_binary(client, second, {"id": "t1", "name": "y"})
    assert response.status_code == 409 and response.json()["actual"] == 1
    third = ce_headers("b-3", ce_subject="team-t1", ce_expectedversion="1")
    assert post_binary(client, third, {"id": "t1", "name": "y"}).status_code == 200


def test_non_json_payload_is_415_and_malformed_json_400(client: httpx.Client, chronicle: Chronicle) -> None:
    text = post_binary(client, ce_headers(content_type="text/plain"), b"hello")
    assert text.status_code == 415 and "binary" in text.json()["detail"]
    broken = post_binary(client, ce_headers(), b"{not json")
    assert broken.status_code == 400 and broken.json()["error"] == "malformed_json"
    assert chronicle.store.head() == 0


def test_empty_body_is_an_event_without_data(client: httpx.Client, chronicle: Chronicle) -> None:
    response = post_binary(client, ce_headers("b-1", "PagePublished"), b"")
    assert response.status_code == 422 and response.json()["field"] == "data.id"


def test_structured_content_type_wins_over_ce_headers(client: httpx.Client, chronicle: Chronicle) -> None:
    structured = {"specversion": "1.0", "id": "s-1", "source": "/s", "type": "TeamCreated",
                  "data": {"id": "t1", "name": "x"}}
    headers = ce_headers("b-1") | {"content-type": CE}
    assert post_binary(client, headers, structured).status_code == 200
    assert chronicle.store.read()[0].id == "s-1"
