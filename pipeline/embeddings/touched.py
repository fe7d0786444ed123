"""Pure: which items an event may have changed (text, or metadata stored next to the vector)."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.envelope import Recorded

Key = tuple[str, str]  # kind, id

_BY_TYPE = {
    "PageCreated": "page", "PageUpdated": "page", "PagePublished": "page", "PageUnpublished": "page",
    "PageDeleted": "page",
    "SectionEntryCreated": "section", "SectionEntryUpdated": "section", "SectionEntryDeleted": "section",
    "PostCreated": "post", "PostUpdated": "post", "PostPublished": "post", "PostDeleted": "post",
    "ImageUploaded": "image", "ImageDeleted": "image", "ImageDescribed": "image",
}
CONTENT_EVENTS = frozenset(_BY_TYPE) | {"PageSectionsReordered", "SubjectErased"}
OUTCOME_EVENTS = frozenset({"EmbeddingsComputed", "EmbeddingsFailed"})


def touched_by(event: Recorded) -> Iterable[Key]:
    """Items whose document may differ after ``event`` (pages ↔ sections are expanded later, with IO)."""
    kind = _BY_TYPE.get(event.type)
    if kind is not None:
        yield kind, event.data["id"]
        if event.type == "SectionEntryCreated" and event.data.get("page_id"):
            yield "page", event.data["page_id"]
    elif event.type == "SubjectErased":  # the items now read "[erased]": embed the placeholder instead
        for item in event.data.get("items", ()):
            yield item["kind"], item["id"]
    elif event.type == "PageSectionsReordered":
        yield "page", event.data["page_id"]
        for section_id in event.data["section_ids"]:
            yield "section", section_id


def outcome_keys(event: Recorded) -> Iterable[Key]:
    """Items an embedding outcome event is about (their vector rows need writing)."""
    if event.type in OUTCOME_EVENTS:
        for item in event.data["items"]:
            yield item["kind"], item["id"]


def group(keys: Iterable[Key]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for kind, id in keys:
        grouped.setdefault(kind, set()).add(id)
    return grouped
