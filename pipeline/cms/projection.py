"""Handlers for the CMS content projection (``cms``): everything but images.

Rows follow the CMS's Drizzle schema (``db.models``): timestamps are Unix seconds, JSON columns get
any JSON value. A page, post or menu that names no environment belongs to its site's first
environment (``sites.default_environment_id``; empty text while the site has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from db.changes import Change, Delete, Update, Upsert
from pipeline.envelope import Recorded
from pipeline.projection import Handler, State, event_time, pick, sql_time


def team_created(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("teams", {"id": d["id"], "name": d["name"], "slug": d.get("slug"), "created_at": now,
                             "updated_at": now})]


def site_created(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("sites", {"id": d["id"], "team_id": d["team_id"], "name": d["name"], "domain": d.get("domain"),
                             "settings": {}, "created_at": now, "updated_at": now})]


def environment_of(d: dict[str, Any], state: State) -> str:
    """The environment an event names, else its site's first one ('' while the site has none)."""
    if d.get("environment_id"):
        return d["environment_id"]
    row = state.get("sites", {"id": d["site_id"]}, ("default_environment_id",))
    return (row or {}).get("default_environment_id") or ""


def merge_settings(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge-patch (RFC 7396) semantics: nested objects merge, ``null`` removes a key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def site_settings_updated(e: Recorded, state: State) -> Iterable[Change]:
    row = state.get("sites", {"id": e.data["id"]}, ("settings",))
    if row is None:
        return []
    site_id, now = e.data["id"], event_time(e)
    current = orjson.loads(row["settings"]) if row["settings"] else {}
    merged = merge_settings(current, e.data.get("settings") or {})
    changes: list[Change] = [Update("sites", {"id": site_id}, {"settings": merged, "updated_at": now})]
    for key in e.data.get("settings") or {}:  # site_settings: one row per top-level key
        if key in merged:
            changes.append(Upsert("site_settings", {"site_id": site_id, "key": key, "value": merged[key],
                                                    "updated_at": now}))
        else:
            changes.append(Delete("site_settings", {"site_id": site_id, "key": key}))
    return changes


def environment_created(e: Recorded, state: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    changes: list[Change] = [Upsert("environments", {"id": d["id"], "site_id": d["site_id"], "name": d["name"],
                                                     "created_at": now, "updated_at": now})]
    site = state.get("sites", {"id": d["site_id"]}, ("default_environment_id",))
    if site is not None and not site["default_environment_id"]:
        changes.append(Update("sites", {"id": d["site_id"]}, {"default_environment_id": d["id"]}))
    return changes


def _created_status(d: dict[str, Any], e: Recorded, created: int) -> dict[str, Any]:
    status = d.get("status") or "draft"
    published = sql_time(d.get("published_at"), e) if d.get("published_at") else created
    return {"status": status, "published_at": published if status == "published" else None}


def page_created(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    created = sql_time(d.get("created_at"), e)
    return [Upsert("pages", {
        "id": d["id"], "site_id": d["site_id"], "environment_id": environment_of(d, state),
        "parent_id": d.get("parent_id"), "title": d["title"], "slug": d["slug"],
        "metadata": d.get("metadata") or {}, "created_at": created, "updated_at": created,
        **_created_status(d, e, created),
    })]


def page_updated(e: Recorded, _: State) -> Iterable[Change]:
    values = pick(e.data, "title", "slug", "environment_id", "parent_id", "metadata")
    if "metadata" in values and values["metadata"] is None:
        values["metadata"] = {}
    for required in ("title", "slug", "environment_id"):
        if required in values and values[required] is None:
            del values[required]  # these columns cannot be cleared; null means "unchanged"
    values["updated_at"] = event_time(e)
    return [Update("pages", {"id": e.data["id"]}, values)]


def _published(table: str, e: Recorded) -> Iterable[Change]:
    at = sql_time(e.data.get("published_at"), e)
    return [Update(table, {"id": e.data["id"]}, {"status": "published", "published_at": at,
                                                  "updated_at": event_time(e)})]


def page_published(e: Recorded, _: State) -> Iterable[Change]:
    return _published("pages", e)


def page_unpublished(e: Recorded, _: State) -> Iterable[Change]:
    return [Update("pages", {"id": e.data["id"]}, {"status": "draft", "published_at": None,
                                                    "updated_at": event_time(e)})]


def page_deleted(e: Recorded, _: State) -> Iterable[Change]:
    page_id = e.data["id"]
    return [Delete("page_sections", {"page_id": page_id}), Delete("pages", {"id": page_id})]


def section_definition_created(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("section_definitions", {
        "id": d["id"], "name": d["name"], "schema": d.get("schema"), "default_content": d.get("default_content"),
        "site_id": d.get("site_id"), "environment_id": d.get("environment_id"), "created_at": now,
        "updated_at": now})]


def section_definition_updated(e: Recorded, _: State) -> Iterable[Change]:
    values = pick(e.data, "name", "schema", "default_content")  # schema/default_content: null clears
    if values.get("name", "") is None:
        del values["name"]
    values["updated_at"] = event_time(e)
    return [Update("section_definitions", {"id": e.data["id"]}, values)]


def section_entry_created(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    content = d.get("content")
    changes: list[Change] = [Upsert("section_entries", {
        "id": d["id"], "definition_id": d["definition_id"], "page_id": d.get("page_id"),
        "content": {} if content is None else content, "order": d.get("order", 0), "created_at": now,
        "updated_at": now,
    })]
    if d.get("page_id"):
        changes.append(Upsert("page_sections", {"page_id": d["page_id"], "section_entry_id": d["id"],
                                                "position": d.get("order", 0)}))
    return changes


def section_entry_updated(e: Recorded, _: State) -> Iterable[Change]:
    values = {k: v for k, v in pick(e.data, "content", "order").items() if v is not None}
    values["updated_at"] = event_time(e)
    changes: list[Change] = [Update("section_entries", {"id": e.data["id"]}, values)]
    if "order" in values:
        changes.append(Update("page_sections", {"section_entry_id": e.data["id"]}, {"position": values["order"]}))
    return changes


def section_entry_deleted(e: Recorded, _: State) -> Iterable[Change]:
    entry_id = e.data["id"]
    return [Delete("page_sections", {"section_entry_id": entry_id}), Delete("section_entries", {"id": entry_id})]


def page_sections_reordered(e: Recorded, _: State) -> Iterable[Change]:
    page_id, now = e.data["page_id"], event_time(e)
    changes: list[Change] = [Delete("page_sections", {"page_id": page_id})]
    for position, entry_id in enumerate(dict.fromkeys(e.data["section_ids"])):
        changes.append(Upsert("page_sections", {"page_id": page_id, "section_entry_id": entry_id,
                                                "position": position}))
        changes.append(Update("section_entries", {"id": entry_id},
                              {"page_id": page_id, "order": position, "updated_at": now}))
    return changes


def post_created(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    created = sql_time(d.get("created_at"), e)
    return [Upsert("posts", {
        "id": d["id"], "site_id": d["site_id"], "environment_id": environment_of(d, state), "title": d["title"],
        "slug": d["slug"], "body": d.get("body", ""), "excerpt": d.get("excerpt", ""), "author": d.get("author"),
        "categories": d.get("categories") or [], "tags": d.get("tags") or [],
        "metadata": d.get("metadata") or {}, "created_at": created, "updated_at": created,
        **_created_status(d, e, created),
    })]


_POST_NOT_NULL_DEFAULTS: dict[str, Any] = {"title": None, "slug": None, "body": "", "excerpt": "",
                                           "categories": [], "tags": [], "metadata": {}}


def post_updated(e: Recorded, _: State) -> Iterable[Change]:
    values = pick(e.data, "title", "slug", "body", "excerpt", "author", "categories", "tags", "metadata")
    for name, default in _POST_NOT_NULL_DEFAULTS.items():
        if name in values and values[name] is None:
            if default is None:
                del values[name]
            else:
                values[name] = default
    values["updated_at"] = event_time(e)
    return [Update("posts", {"id": e.data["id"]}, values)]


def post_published(e: Recorded, _: State) -> Iterable[Change]:
    return _published("posts", e)


def post_deleted(e: Recorded, _: State) -> Iterable[Change]:
    return [Delete("posts", {"id": e.data["id"]})]


def navigation_id(site_id: str, environment_id: str, name: str) -> str:
    return f"{site_id}:{environment_id}:{name}"


def navigation_updated(e: Recorded, state: State) -> Iterable[Change]:
    d = e.data
    environment, name = environment_of(d, state), d.get("name", "main")
    return [Upsert("navigation", {"id": navigation_id(d["site_id"], environment, name), "site_id": d["site_id"],
                                  "environment_id": environment, "name": name, "items": d.get("items") or [],
                                  "updated_at": event_time(e)})]


def session_created(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("sessions", {"id": d["id"], "site_id": d.get("site_id"), "user_id": d.get("user_id"),
                                "title": d.get("title"), "created_at": now, "updated_at": now})]


def message_added(e: Recorded, _: State) -> Iterable[Change]:
    d, now = e.data, event_time(e)
    return [Upsert("messages", {"id": d["id"], "session_id": d["session_id"], "role": d["role"],
                                "content": d["content"], "metadata": d.get("metadata") or {},
                                "created_at": now}),
            Update("sessions", {"id": d["session_id"]}, {"updated_at": now})]


HANDLERS: dict[str, Handler] = {
    "TeamCreated": team_created,
    "SiteCreated": site_created,
    "SiteSettingsUpdated": site_settings_updated,
    "EnvironmentCreated": environment_created,
    "PageCreated": page_created,
    "PageUpdated": page_updated,
    "PagePublished": page_published,
    "PageUnpublished": page_unpublished,
    "PageDeleted": page_deleted,
    "SectionDefinitionCreated": section_definition_created,
    "SectionDefinitionUpdated": section_definition_updated,
    "SectionEntryCreated": section_entry_created,
    "SectionEntryUpdated": section_entry_updated,
    "SectionEntryDeleted": section_entry_deleted,
    "PageSectionsReordered": page_sections_reordered,
    "PostCreated": post_created,
    "PostUpdated": post_updated,
    "PostPublished": post_published,
    "PostDeleted": post_deleted,
    "NavigationUpdated": navigation_updated,
    "SessionCreated": session_created,
    "MessageAdded": message_added,
}
TABLES = ("teams", "sites", "site_settings", "environments", "pages", "section_definitions", "section_entries",
          "page_sections", "posts", "navigation", "sessions", "messages")
