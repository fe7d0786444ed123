"""CloudEvents 1.0 (JSON format; structured, batch and binary HTTP content modes) → Chronicle envelopes.
Pure functions, no IO.

Mapping: ``type`` → event type (a reverse-DNS prefix such as ``com.acme.cms.PageCreated`` is allowed,
the last segment must be in the catalogue), ``id`` → idempotency key, ``subject`` → stream, extension
``expectedversion`` → optimistic concurrency. ``source``, ``time``, ``dataschema`` and every other
extension attribute are kept in the event's metadata, so nothing the sender said is lost.

Binary content mode (HTTP binding §3.1) carries the attributes as ``ce-<name>`` headers (percent-encoded)
and the data as the body, with ``Content-Type`` as ``datacontenttype``; :func:`from_binary` turns that
into the structured-mode dict, so both modes go through the one mapping of :func:`to_envelope`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidEvent
from ..events import CATALOGUE

CE_CONTENT_TYPE = "application/cloudevents+json"
CE_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

_CONTEXT = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
_METADATA_ALIASES = {"correlationid": "correlation_id", "causationid": "causation_id", "actor": "actor"}
# Envelope field → CloudEvents attribute, so a 422 names the attribute the sender actually wrote.
_FIELD_NAMES = {"stream": "subject", "expected_version": "expectedversion", "id": "id", "type": "type"}
# … and in binary mode the header it came in (the data is the body: its fields keep their ``data.`` path).
CE_HEADER_PREFIX = "ce-"
_REQUIRED = ("specversion", "id", "source", "type")
_BINARY_FIELD_NAMES = {"datacontenttype": "content-type", "data": "data", "data_base64": "data"}


def _header(attribute: str, description: str, example: str) -> dict[str, Any]:
    return {"name": CE_HEADER_PREFIX + attribute, "in": "header", "required": False,
            "description": description, "schema": {"type": "string"}, "example": example}


# Binary content mode in the OpenAPI document (``/docs`` shows them on ``POST /events``).
BINARY_MODE_HEADERS: list[dict[str, Any]] = [
    _header("specversion", "Binary mode (with the other ce- headers, the data as a JSON body): "
                           "required, '1.0'.", "1.0"),
    _header("id", "Binary mode: required; the idempotency key.", "9f1c-page-42-created"),
    _header("source", "Binary mode: required; kept in the metadata.", "/cms/acme"),
    _header("type", "Binary mode: required; the event type, reverse-DNS prefix allowed.", "com.acme.cms.PageCreated"),
    _header("subject", "Binary mode: the stream (default: derived).", "page-42"),
    _header("time", "Binary mode: kept in the metadata.", "2024-05-01T12:00:00Z"),
    _header("expectedversion", "Binary mode, extension: append only if the stream is at this version.", "0"),
]


class CloudEvent(BaseModel):
    """A CloudEvent in structured JSON mode, as this API accepts it (documentation for OpenAPI)."""

    model_config = ConfigDict(extra="allow")

    specversion: str = Field(pattern=r"^1\.0$", examples=["1.0"])
    id: str = Field(min_length=1, description="Idempotency key: the same id is appended once.")
    source: str = Field(min_length=1, examples=["/cms/acme"])
    type: str = Field(min_length=1, examples=["PageCreated", "com.acme.cms.PageCreated"])
    subject: str | None = Field(default=None, description="The Chronicle stream (default: derived).")
    time: str | None = None
    datacontenttype: str | None = Field(default=None, examples=["application/json"])
    dataschema: str | None = None
    expectedversion: int | str | None = Field(default=None, description="Extension: expected stream version.")
    data: dict[str, Any] | None = None


def _required_string(ce: dict[str, Any], name: str, index: int | None) -> str:
    value = ce.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("required CloudEvents attribute is missing or not a non-empty string",
                           index=index, field=name)
    return value


def _event_type(ce_type: str) -> str:
    if ce_type in CATALOGUE:
        return ce_type
    last = ce_type.rsplit(".", 1)[-1]
    return last if last in CATALOGUE else ce_type


MAX_VERSION = 2**63 - 1  # a stream version is a 64-bit signed integer in the log


def _expected_version(value: Any, index: int | None) -> int | None:
    # CloudEvents extension values are often sent as strings (in binary mode always); accept "3" as well as 3.
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise InvalidEvent(f"must be an integer from 0 to {MAX_VERSION}", index=index, field="expectedversion")
    return value


def is_json_content_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def to_envelope(ce: Any, *, index: int | None = None) -> dict[str, Any]:
    """One CloudEvent (already JSON-decoded) → an envelope dict for ``Chronicle.emit_many``."""
    if not isinstance(ce, dict):
        raise InvalidEvent("a CloudEvent must be a JSON object", index=index)
    if ce.get("specversion") != "1.0":
        raise InvalidEvent("only CloudEvents specversion '1.0' is supported", index=index, field="specversion")
    event_id = _required_string(ce, "id", index)
    source = _required_string(ce, "source", index)
    ce_type = _required_string(ce, "type", index)
    if "data_base64" in ce:
        raise InvalidEvent("binary data is not supported; send a JSON object in 'data'", index=index,
                           field="data_base64")
    content_type = ce.get("datacontenttype")
    if content_type is not None and (not isinstance(content_type, str) or not is_json_content_type(content_type)):
        raise InvalidEvent("data must be JSON (application/json)", index=index, field="datacontenttype")
    data = ce.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidEvent("data must be a JSON object", index=index, field="data")
    subject = ce.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidEvent("must be a string", index=index, field="subject")

    metadata: dict[str, Any] = {"source": source}
    for name in ("time", "dataschema"):
        if ce.get(name) is not None:
            metadata[name] = ce[name]
    if _event_type(ce_type) != ce_type:
        metadata["cloudevents_type"] = ce_type
    for attribute, value in ce.items():
        if attribute in _CONTEXT or attribute in ("data", "expectedversion"):
            continue
        metadata[_METADATA_ALIASES.get(str(attribute), str(attribute))] = value
    return {
        "id": event_id,
        "type": _event_type(ce_type),
        "stream": subject,
        "expected_version": _expected_version(ce.get("expectedversion"), index),
        "data": data,
        "metadata": metadata,
    }


def to_envelopes(batch: Any) -> list[dict[str, Any]]:
    """A CloudEvents batch (a JSON array) → envelopes; the index in errors is the position in the batch."""
    if not isinstance(batch, list):
        raise InvalidEvent("a CloudEvents batch must be a JSON array")
    return [to_envelope(ce, index=i) for i, ce in enumerate(batch)]


def rename_field(exc: InvalidEvent) -> InvalidEvent:
    """Re-label an envelope-level error with the CloudEvents attribute name the client used."""
    if not exc.field:
        return exc
    head, _, rest = exc.field.partition(".")
    renamed = _FIELD_NAMES.get(head, head)
    if renamed == head:
        return exc
    return type(exc)(exc.reason, index=exc.index, field=renamed + (f".{rest}" if rest else ""))


def rename_binary_field(exc: InvalidEvent) -> InvalidEvent:
    """Re-label an error with the header of a binary-mode request (``ce-subject``, ``content-type``);
    errors inside the payload keep their ``data.…`` path, since the data is the body."""
    exc = rename_field(exc)
    if not exc.field:
        return exc
    head, _, rest = exc.field.partition(".")
    if head.startswith(CE_HEADER_PREFIX):
        return exc
    if head == "metadata" and rest:  # metadata entries come from extension headers
        name = rest.partition(".")[0]
        aliases = {v: k for k, v in _METADATA_ALIASES.items()}
        return type(exc)(exc.reason, index=exc.index, field=CE_HEADER_PREFIX + aliases.get(name, name))
    renamed = _BINARY_FIELD_NAMES.get(head, CE_HEADER_PREFIX + head)
    if renamed == head:
        return exc
    return type(exc)(exc.reason, index=exc.index, field=renamed + (f".{rest}" if rest else ""))


def is_binary(header_names: Iterable[str]) -> bool:
    """Binary content mode: the request carries CloudEvents attributes as ``ce-`` headers."""
    return any(name.lower().startswith(CE_HEADER_PREFIX) for name in header_names)


def from_binary(headers: Iterable[tuple[str, str]], content_type: str | None, data: Any) -> dict[str, Any]:
    """A binary-mode request (its headers, ``Content-Type`` and the JSON-decoded body, ``None`` when empty)
    → the structured-mode dict that :func:`to_envelope` maps. Header values are percent-decoded (§3.1.3.2);
    extension values arrive as strings, like ``"3"`` for ``ce-expectedversion``."""
    ce: dict[str, Any] = {}
    for name, value in headers:
        header = name.lower()
        if not header.startswith(CE_HEADER_PREFIX):
            continue
        attribute = header[len(CE_HEADER_PREFIX):]
        if attribute in ("data", "data_base64", "datacontenttype"):
            hint = "Content-Type" if attribute == "datacontenttype" else "the body"
            raise InvalidEvent(f"not an attribute header in binary mode; send it as {hint}", field=header)
        if attribute in ce:
            raise InvalidEvent("the header is sent more than once", field=header)
        try:
            ce[attribute] = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidEvent("not percent-encoded UTF-8", field=header) from None
    for attribute in _REQUIRED:
        if not ce.get(attribute):
            raise InvalidEvent("required header is missing or empty (CloudEvents binary content mode)",
                               field=CE_HEADER_PREFIX + attribute)
    if content_type:
        ce["datacontenttype"] = content_type
    if data is not None:
        ce["data"] = data
    return ce
