"""CloudEvents 1.0 (JSON format) → Chronicle envelopes. Pure functions, no IO.

Mapping: ``type`` → event type (a reverse-DNS prefix such as ``com.acme.cms.PageCreated`` is allowed,
the last segment must be in the catalogue), ``id`` → idempotency key, ``subject`` → stream, extension
``expectedversion`` → optimistic concurrency. ``source``, ``time``, ``dataschema`` and every other
extension attribute are kept in the event's metadata, so nothing the sender said is lost.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidEvent
from ..events import CATALOGUE

CE_CONTENT_TYPE = "application/cloudevents+json"
CE_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

_CONTEXT = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
_METADATA_ALIASES = {"correlationid": "correlation_id", "causationid": "causation_id", "actor": "actor"}
# Envelope field → CloudEvents attribute, so a 422 names the attribute the sender actually wrote.
_FIELD_NAMES = {"stream": "subject", "expected_version": "expectedversion", "id": "id", "type": "type"}


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


def _expected_version(value: Any, index: int | None) -> int | None:
    # CloudEvents extension values are often sent as strings; accept "3" as well as 3.
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent("must be a non-negative integer", index=index, field="expectedversion")
    return value


def _is_json_content_type(value: str) -> bool:
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
    if content_type is not None and (not isinstance(content_type, str) or not _is_json_content_type(content_type)):
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
    for name, value in ce.items():
        if name in _CONTEXT or name in ("data", "expectedversion"):
            continue
        metadata[_METADATA_ALIASES.get(name, name)] = value
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
