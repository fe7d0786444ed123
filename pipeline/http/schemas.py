"""Response models and hand-written request bodies for the OpenAPI schema.

``POST /events`` reads its body itself (three content types, one handler), so its request schema is
declared here and the referenced models are added to the document's components by ``app.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..envelope import Envelope
from .cloudevents import CE_BATCH_CONTENT_TYPE, CE_CONTENT_TYPE, CloudEvent

REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    defs = schema.pop("$defs", {})
    return schema, {model.__name__: schema, **defs}


def component_schemas() -> dict[str, Any]:
    """Models referenced by hand-written request bodies, for ``components.schemas``."""
    out: dict[str, Any] = {}
    for model in (Envelope, CloudEvent):
        out.update(_schema(model)[1])
    return out


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


EVENTS_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One event or a batch (appended atomically), as Chronicle envelopes or CloudEvents 1.0.",
        "content": {
            "application/json": {"schema": {"anyOf": [_ref(Envelope), {"type": "array", "items": _ref(Envelope)}]}},
            CE_CONTENT_TYPE: {"schema": _ref(CloudEvent)},
            CE_BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": _ref(CloudEvent)}},
        },
    }
}


class Problem(BaseModel):
    """Every error body."""

    error: str = Field(description="Stable machine-readable code, e.g. invalid_event, version_conflict.")
    detail: str
    index: int | None = Field(default=None, description="Which event of the batch (0-based).")
    field: str | None = Field(default=None, description="The offending field, e.g. data.title or subject.")


class AppendResponse(BaseModel):
    appended: int
    duplicates: int
    last_position: int | None
    positions: list[int] = Field(description="Where each submitted event lives (duplicates: the earlier copy).")


class EventOut(BaseModel):
    position: int
    id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str | None


class EventPage(BaseModel):
    events: list[EventOut]
    head: int
    next_after: int = Field(description="Pass as ?after= to read the next page.")


class StreamOut(BaseModel):
    stream: str
    version: int
    events: list[EventOut]


class VariantOut(BaseModel):
    id: str
    width: int
    height: int | None
    format: str
    size: int
    url: str
    content_type: str


class ImageOut(BaseModel):
    id: str
    site_id: str | None
    filename: str
    status: str
    mime_type: str
    size: int
    width: int | None
    height: int | None
    hash: str | None
    error: str | None = None
    metadata: dict[str, Any]
    placeholder: dict[str, str] | None
    created_at: str | None
    updated_at: str | None
    original_url: str
    variants: list[VariantOut]


class ImageList(BaseModel):
    images: list[ImageOut]
    total: int


class UploadOut(BaseModel):
    id: str
    sha256: str
    original_path: str
    mime_type: str
    size: int
    position: int | None
    duplicate: bool
    url: str


class FailureOut(BaseModel):
    id: str = Field(description="image:<image id> for images, embedding:<model>:<dimension>:<kind>:<item id> "
                                "for texts the embedding provider refused, job:<hash> for other jobs.")
    kind: str = Field(description="image, embedding or job")
    subject: str | None = Field(description="The image id, or <kind>:<item id> for an embedding.")
    task: str
    queue: str
    kwargs: dict[str, Any]
    error: str
    attempts: int
    permanent: bool
    status: str = Field(description="open, retrying or resolved")
    retries: int
    source_position: int
    failed_at: str | None
    updated_at: str | None
    url: str | None = Field(description="The image, for image failures.")


class FailureList(BaseModel):
    failures: list[FailureOut]


class ReindexIn(BaseModel):
    kinds: list[str] = Field(default=["all"], max_length=20, description="pages, posts, sections, images or all.")
    item_id: str | None = Field(default=None, max_length=200, description="Only this item.")
    force: bool = Field(default=False, description="Re-embed even when the text did not change.")


class ReindexOut(BaseModel):
    id: str
    kinds: list[str]


class RetryOut(BaseModel):
    id: str
    status: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in ((401, "No bearer token"), (403, "Wrong bearer token"), (413, "Body too large"),
                       (422, "Invalid input: see index and field"))
}
