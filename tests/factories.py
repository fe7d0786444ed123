"""Small builders for envelopes, so tests read as CMS stories rather than dict literals."""

from __future__ import annotations

from typing import Any

# Tests that validate envelopes without a Chronicle handle (store contract, hostile input, spawned
# emitters) need the catalogue: importing the composition root fills it.
import pipeline.subsystems  # noqa: F401


def envelope(type_: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "data": data, **extra}


def page(page_id: str = "p1", **extra: Any) -> dict[str, Any]:
    data = {"id": page_id, "site_id": "s1", "title": f"Page {page_id}", "slug": f"page-{page_id}"}
    return envelope("PageCreated", data, **extra)


# One valid payload per catalogue type, in an order where parents exist before children.
CATALOGUE_STORY: list[dict[str, Any]] = [
    envelope("TeamCreated", {"id": "t1", "name": "Team"}),
    envelope("SiteCreated", {"id": "s1", "team_id": "t1", "name": "Site", "domain": "example.org"}),
    envelope("SiteSettingsUpdated", {"id": "s1", "settings": {"theme": "dark", "nested": {"a": 1}}}),
    envelope("EnvironmentCreated", {"id": "e1", "site_id": "s1", "name": "production"}),
    envelope("PageCreated", {"id": "p1", "site_id": "s1", "environment_id": "e1", "title": "Home", "slug": "home",
                             "metadata": {"seo": "x"}}),
    envelope("PageUpdated", {"id": "p1", "title": "Welcome"}),
    envelope("PagePublished", {"id": "p1"}),
    envelope("PageCreated", {"id": "p2", "site_id": "s1", "title": "Gone", "slug": "gone"}),
    envelope("PageUnpublished", {"id": "p1"}),
    envelope("SectionDefinitionCreated", {"id": "d1", "site_id": "s1", "name": "Hero",
                                          "fields": [{"name": "heading"}]}),
    envelope("SectionDefinitionUpdated", {"id": "d1", "name": "Hero banner"}),
    envelope("SectionEntryCreated", {"id": "x1", "definition_id": "d1", "page_id": "p1", "content": {"h": "1"},
                                     "order": 0}),
    envelope("SectionEntryCreated", {"id": "x2", "definition_id": "d1", "page_id": "p1", "content": {"h": "2"},
                                     "order": 1}),
    envelope("SectionEntryCreated", {"id": "x3", "definition_id": "d1", "page_id": "p2", "content": {"h": "3"}}),
    envelope("SectionEntryUpdated", {"id": "x1", "content": {"h": "one"}}),
    envelope("PageSectionsReordered", {"page_id": "p1", "section_ids": ["x2", "x1"]}),
    envelope("SectionEntryDeleted", {"id": "x3"}),
    envelope("PageDeleted", {"id": "p2"}),
    envelope("PostCreated", {"id": "b1", "site_id": "s1", "title": "Hello", "slug": "hello", "body": "text",
                             "tags": ["a"]}),
    envelope("PostUpdated", {"id": "b1", "body": "more text"}),
    envelope("PostPublished", {"id": "b1", "published_at": "2026-01-02T03:04:05+01:00"}),
    envelope("PostCreated", {"id": "b2", "site_id": "s1", "title": "Bye", "slug": "bye"}),
    envelope("PostDeleted", {"id": "b2"}),
    envelope("ImageUploaded", {"id": "i1", "filename": "a.jpg", "original_path": "originals/ab/abc.jpg",
                               "mime_type": "image/jpeg", "size": 10}),
    envelope("ImageUploaded", {"id": "i2", "filename": "b.jpg", "original_path": "originals/cd/cde.jpg",
                               "mime_type": "image/jpeg", "size": 10}),
    envelope("ImageDeleted", {"id": "i2"}),
    envelope("NavigationUpdated", {"site_id": "s1", "items": [{"label": "Home", "page_id": "p1"}]}),
    envelope("SessionCreated", {"id": "c1", "site_id": "s1", "title": "Help"}),
    envelope("MessageAdded", {"id": "m1", "session_id": "c1", "role": "user", "content": "hi"}),
]
