"""Envelopes: what a CMS sends (``Envelope``), what the store writes (``NewEvent``) and what readers get
back (``Recorded``).

Validation happens here, once, before the store opens a transaction: an unknown type or a bad payload
is rejected with the batch index and field path, and nothing is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import InvalidEvent, UnknownEventType
from .events import CATALOGUE

StreamName = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class EventMetadata(BaseModel):
    """Tracing data; other keys are kept as sent (bounded by the payload size limit)."""

    model_config = ConfigDict(extra="allow")

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None


class Envelope(BaseModel):
    """The JSON a CMS sends for one event."""

    model_config = ConfigDict(extra="forbid")

    id: EventId | None = None
    type: str = Field(min_length=1, max_length=200)
    stream: StreamName | None = None
    expected_version: int | None = Field(default=None, ge=0)
    data: dict[str, Any] = Field(default_factory=dict)
    metadata: EventMetadata = Field(default_factory=EventMetadata)


@dataclass(slots=True, frozen=True)
class NewEvent:
    """A validated event ready to append: payload normalised, id and stream filled in, and the JSON
    already encoded (the size limit needs it anyway, so the store writes these exact bytes)."""

    id: str
    type: str
    stream: str
    expected_version: int | None
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    data_json: str
    metadata_json: str


@dataclass(slots=True, frozen=True)
class Recorded:
    """An event as the log holds it."""

    position: int
    id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str  # fixed-width ISO-8601 UTC, as stored (``store.utc_timestamp``)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "id": self.id,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "schema_version": self.schema_version,
            "data": self.data,
            "metadata": self.metadata,
            "recorded_at": self.recorded_at.isoformat(),
        }


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    return field, err.get("msg", "invalid")


def validate_envelope(raw: Envelope | dict[str, Any], *, index: int | None = None,
                      max_bytes: int = 1_048_576) -> NewEvent:
    """Turn what a client sent into a ``NewEvent`` or raise ``InvalidEvent`` saying exactly why."""
    if isinstance(raw, Envelope):
        env = raw
    else:
        if not isinstance(raw, dict):
            raise InvalidEvent("an event must be a JSON object", index=index)
        try:
            env = Envelope.model_validate(raw)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise InvalidEvent(msg, index=index, field=field) from None
    model = CATALOGUE.get(env.type)
    if model is None:
        raise UnknownEventType(f"unknown event type '{env.type}'", index=index, field="type")
    try:
        payload = model.model_validate(env.data)
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise InvalidEvent(f"{env.type}: {msg}", index=index, field=f"data.{field}" if field else "data") from None
    try:
        data = payload.to_stored()
        metadata = env.metadata.model_dump(exclude_none=True)
        data_json, metadata_json = orjson.dumps(data).decode(), orjson.dumps(metadata).decode()
    except (ValueError, TypeError, RecursionError) as exc:
        # Valid JSON can still nest deeper than the serialisers go (pydantic and orjson stop at a few
        # hundred levels): that is the sender's payload being unreasonable, not our bug.
        raise InvalidEvent(f"payload cannot be stored: {exc} (nested too deeply?)", index=index,
                           field="data") from None
    size = len(data_json) + len(metadata_json)
    if size > max_bytes:
        raise InvalidEvent(f"payload is {size} bytes, above the {max_bytes}-byte limit", index=index, field="data")
    stream = env.stream or model.default_stream(data)
    if stream is None:
        raise InvalidEvent("no stream given and none can be derived", index=index, field="stream")
    return NewEvent(
        id=env.id or str(uuid.uuid4()),
        type=env.type,
        stream=stream,
        expected_version=env.expected_version,
        schema_version=model.schema_version,
        data=data,
        metadata=metadata,
        data_json=data_json,
        metadata_json=metadata_json,
    )
