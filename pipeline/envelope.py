"""Envelopes: what a CMS sends (``Envelope``), what the store writes (``NewEvent``) and what readers get
back (``Recorded``).

Validation happens here, once, before the store opens a transaction: an unknown type or a bad payload
is rejected with the batch index and field path, and nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, NamedTuple, Required

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from .errors import InvalidEvent, UnknownEventType
from .events import CATALOGUE, EventData

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


class NewEvent(NamedTuple):
    """A validated event ready to append: payload normalised, id and stream filled in, and the JSON
    already encoded (the size limit needs it anyway, so the store writes these exact bytes).

    A tuple rather than a dataclass: bulk imports build hundreds of thousands of these, and the store
    only ever reads the encoded JSON, so the dicts are decoded on demand (``data``, ``metadata``)."""

    id: str
    type: str
    stream: str
    expected_version: int | None
    schema_version: int
    data_json: str
    metadata_json: str

    @property
    def data(self) -> dict[str, Any]:
        return orjson.loads(self.data_json)

    @property
    def metadata(self) -> dict[str, Any]:
        return orjson.loads(self.metadata_json)


class Recorded(NamedTuple):
    """An event as the log holds it. A tuple: a replay decodes millions of these, and building a tuple
    costs a fraction of a frozen dataclass's per-field ``__setattr__``."""

    position: int
    id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str  #: ISO-8601 UTC with microseconds, as the log stores it (sortable as text)


class _EnvelopeFields(TypedDict, total=False):
    """``Envelope``'s fields and constraints as a TypedDict: pydantic-core validates a dict into a dict,
    without building a model per event (``tests/test_store_contract.py`` checks the two agree)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    id: EventId | None
    type: Required[Annotated[str, StringConstraints(min_length=1, max_length=200)]]
    stream: StreamName | None
    expected_version: Annotated[int, Field(ge=0)] | None
    data: dict[str, Any]
    metadata: EventMetadata


_validate_fields = TypeAdapter(_EnvelopeFields).validator.validate_python

#: Digits → "0", everything else → " ": then a run of 20 zeros is a number that may not fit in 64 bits
#: (or a long digit string; see ``_encode``). ``bytes.translate`` and ``in`` scan in C, ten times
#: faster than a regular expression.
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_TWENTY_DIGITS = b"0" * 20


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    return field, err.get("msg", "invalid")


def _fields(raw: Envelope | dict[str, Any], index: int | None) -> dict[str, Any]:
    if isinstance(raw, Envelope):
        return {"id": raw.id, "type": raw.type, "stream": raw.stream, "expected_version": raw.expected_version,
                "data": raw.data, "metadata": raw.metadata}
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be a JSON object", index=index)
    try:
        return _validate_fields(raw)
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise InvalidEvent(msg, index=index, field=field) from None


class _Codec(NamedTuple):
    """What validating an event of one type needs, looked up once per type rather than as a chain of
    attributes per event (a class attribute of a pydantic model costs ~90 ns to read, a tuple field
    ~20). ``schema_version`` is still read off the model each time: tests patch it."""

    model: type[EventData]
    validate: Any
    to_json: Any
    partial: bool
    stream_prefix: str
    stream_key: str


_CODECS: dict[str, _Codec] = {}


def _codec(type_: str, index: int | None) -> _Codec:
    codec = _CODECS.get(type_)
    if codec is None:
        model = CATALOGUE.get(type_)
        if model is None:
            raise UnknownEventType(f"unknown event type '{type_}'", index=index, field="type")
        codec = _CODECS[type_] = _Codec(model, model.__pydantic_validator__.validate_python,
                                        model.__pydantic_serializer__.to_json, model.partial,
                                        model.stream_prefix, model.stream_key)
    return codec


def _encode(codec: _Codec, payload: EventData) -> str:
    """The payload as stored JSON, serialised by pydantic-core in one step (no intermediate dict).

    The log is read back with orjson, which reads integers beyond 64 bits as floats: such payloads
    are encoded as before (``to_stored`` + ``orjson.dumps``, which refuses them). The digit scan is a
    cheap filter in C; a string that merely contains 20 digits takes the exact path and passes."""
    encoded = codec.to_json(payload, by_alias=True, exclude_unset=codec.partial)
    if _TWENTY_DIGITS in encoded.translate(_DIGITS):
        encoded = orjson.dumps(payload.to_stored())
    return encoded.decode()


def validate_envelope(raw: Envelope | dict[str, Any], *, index: int | None = None,
                      max_bytes: int = 1_048_576) -> NewEvent:
    """Turn what a client sent into a ``NewEvent`` or raise ``InvalidEvent`` saying exactly why.

    Every event of an import or a replayed batch comes through here, so the common case (a dict) is
    checked inline rather than through ``_fields``, and the type's codec is one dict lookup."""
    if raw.__class__ is dict:
        try:
            env = _validate_fields(raw)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise InvalidEvent(msg, index=index, field=field) from None
    else:
        env = _fields(raw, index)
    type_ = env["type"]
    codec = _CODECS.get(type_) or _codec(type_, index)
    try:
        payload = codec.validate(env.get("data", {}))
    except ValidationError as exc:
        field, msg = _first_error(exc)
        raise InvalidEvent(f"{type_}: {msg}", index=index, field=f"data.{field}" if field else "data") from None
    try:
        data_json = _encode(codec, payload)
        metadata = env.get("metadata")
        metadata_json = "{}" if metadata is None else orjson.dumps(metadata.model_dump(exclude_none=True)).decode()
    except (ValueError, TypeError, RecursionError) as exc:
        # Valid JSON can still nest deeper than the serialisers go (pydantic and orjson stop at a few
        # hundred levels): that is the sender's payload being unreasonable, not our bug.
        raise InvalidEvent(f"payload cannot be stored: {exc} (nested too deeply?)", index=index,
                           field="data") from None
    if len(data_json) + len(metadata_json) > max_bytes:
        size = len(data_json) + len(metadata_json)
        raise InvalidEvent(f"payload is {size} bytes, above the {max_bytes}-byte limit", index=index, field="data")
    stream = env.get("stream")
    if not stream:
        # ``EventData.default_stream``, read off the validated payload (no dict needed).
        key = getattr(payload, codec.stream_key, None)
        if key is None or not codec.stream_prefix:
            raise InvalidEvent("no stream given and none can be derived", index=index, field="stream")
        stream = f"{codec.stream_prefix}-{key}"
    return _new_event(NewEvent, (env.get("id") or str(uuid.uuid4()), type_, stream, env.get("expected_version"),
                                 codec.model.schema_version, data_json, metadata_json))


_new_event = tuple.__new__  # NewEvent without its Python-level __new__: the fields are already checked
