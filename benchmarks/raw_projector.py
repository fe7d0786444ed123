"""The baseline for replay: a hand-written ``sqlite3`` loop that reads the log, decodes JSON and
writes the same rows as the ``cms`` and ``media`` projections, in 5 000-event transactions.

It is what a careful engineer would write without the framework: one SQL statement per row change,
prepared by sqlite3's statement cache, no objects in between. ``bench_replay`` checks that it produces
the same checksum as Chronicle's replay, so the comparison is of equal work.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path


def _ts(recorded_at: str) -> int:
    return int(datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp() // 1)


def _env(cur: sqlite3.Cursor, d: dict) -> str:
    if d.get("environment_id"):
        return d["environment_id"]
    row = cur.execute("SELECT default_environment_id FROM sites WHERE id=?", (d["site_id"],)).fetchone()
    return (row[0] if row else None) or ""


def _j(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _merge(current: dict, patch: dict) -> dict:
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _update(cur: sqlite3.Cursor, table: str, values: dict, key: str, key_value: str) -> None:
    cols = ", ".join(f'"{c}"=?' for c in values)
    cur.execute(f'UPDATE {table} SET {cols} WHERE "{key}"=?', [*values.values(), key_value])


def apply(cur: sqlite3.Cursor, type_: str, d: dict, recorded_at: str) -> None:
    now = _ts(recorded_at)
    if type_ == "PageCreated":
        cur.execute("INSERT INTO pages (id, site_id, environment_id, parent_id, title, slug, status, metadata, "
                    "created_at, updated_at, published_at) VALUES (?,?,?,?,?,?,'draft',?,?,?,NULL) ON CONFLICT(id) DO "
                    "UPDATE SET site_id=excluded.site_id, environment_id=excluded.environment_id, "
                    "parent_id=excluded.parent_id, title=excluded.title, slug=excluded.slug, status=excluded.status, "
                    "metadata=excluded.metadata, created_at=excluded.created_at, updated_at=excluded.updated_at, "
                    "published_at=excluded.published_at",
                    (d["id"], d["site_id"], _env(cur, d), d.get("parent_id"), d["title"], d["slug"],
                     _j(d.get("metadata") or {}), now, now))
    elif type_ == "PageUpdated":
        values = {k: d[k] for k in ("title", "slug") if d.get(k) is not None}
        if "metadata" in d:
            values["metadata"] = _j(d["metadata"] or {})
        values["updated_at"] = now
        _update(cur, "pages", values, "id", d["id"])
    elif type_ in ("PagePublished", "PostPublished"):
        table = "pages" if type_ == "PagePublished" else "posts"
        cur.execute(f"UPDATE {table} SET status='published', published_at=?, updated_at=? WHERE id=?",
                    (now, now, d["id"]))
    elif type_ == "PageUnpublished":
        cur.execute("UPDATE pages SET status='draft', published_at=NULL, updated_at=? WHERE id=?", (now, d["id"]))
    elif type_ == "PageDeleted":
        cur.execute("DELETE FROM page_sections WHERE page_id=?", (d["id"],))
        cur.execute("DELETE FROM pages WHERE id=?", (d["id"],))
    elif type_ == "SectionEntryCreated":
        cur.execute('INSERT INTO section_entries (id, definition_id, page_id, content, "order", created_at, '
                    'updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET '
                    'definition_id=excluded.definition_id, page_id=excluded.page_id, content=excluded.content, '
                    '"order"=excluded."order", created_at=excluded.created_at, updated_at=excluded.updated_at',
                    (d["id"], d["definition_id"], d.get("page_id"), _j(d.get("content") or {}), d.get("order", 0),
                     now, now))
        if d.get("page_id"):
            cur.execute("INSERT INTO page_sections (page_id, section_entry_id, position) VALUES (?,?,?) "
                        "ON CONFLICT(page_id, section_entry_id) DO UPDATE SET position=excluded.position",
                        (d["page_id"], d["id"], d.get("order", 0)))
    elif type_ == "SectionEntryUpdated":
        values = {}
        if d.get("content") is not None:
            values["content"] = _j(d["content"])
        if d.get("order") is not None:
            values["order"] = d["order"]
        values["updated_at"] = now
        _update(cur, "section_entries", values, "id", d["id"])
        if "order" in values:
            cur.execute("UPDATE page_sections SET position=? WHERE section_entry_id=?", (values["order"], d["id"]))
    elif type_ == "SectionEntryDeleted":
        cur.execute("DELETE FROM page_sections WHERE section_entry_id=?", (d["id"],))
        cur.execute("DELETE FROM section_entries WHERE id=?", (d["id"],))
    elif type_ == "PageSectionsReordered":
        cur.execute("DELETE FROM page_sections WHERE page_id=?", (d["page_id"],))
        for position, entry in enumerate(dict.fromkeys(d["section_ids"])):
            cur.execute("INSERT INTO page_sections (page_id, section_entry_id, position) VALUES (?,?,?) ON CONFLICT"
                        "(page_id, section_entry_id) DO UPDATE SET position=excluded.position",
                        (d["page_id"], entry, position))
            cur.execute('UPDATE section_entries SET page_id=?, "order"=?, updated_at=? WHERE id=?',
                        (d["page_id"], position, now, entry))
    elif type_ == "PostCreated":
        cur.execute("INSERT INTO posts (id, site_id, environment_id, title, slug, body, excerpt, author, categories, "
                    "tags, status, metadata, created_at, updated_at, published_at) VALUES (?,?,?,?,?,?,?,?,?,?,"
                    "'draft',?,?,?,NULL) ON CONFLICT(id) DO UPDATE SET title=excluded.title",
                    (d["id"], d["site_id"], _env(cur, d), d["title"], d["slug"], d.get("body", ""),
                     d.get("excerpt", ""), d.get("author"), _j(d.get("categories") or []), _j(d.get("tags") or []),
                     _j(d.get("metadata") or {}), now, now))
    elif type_ == "PostUpdated":
        values = {k: d[k] for k in ("title", "slug") if d.get(k) is not None}
        for k, default in (("body", ""), ("excerpt", "")):
            if k in d:
                values[k] = d[k] if d[k] is not None else default
        if "author" in d:
            values["author"] = d["author"]
        for k, empty in (("categories", []), ("tags", []), ("metadata", {})):
            if k in d:
                values[k] = _j(d[k] if d[k] is not None else empty)
        values["updated_at"] = now
        _update(cur, "posts", values, "id", d["id"])
    elif type_ == "PostDeleted":
        cur.execute("DELETE FROM posts WHERE id=?", (d["id"],))
    elif type_ == "NavigationUpdated":
        env, name = _env(cur, d), d.get("name", "main")
        cur.execute("INSERT INTO navigation (id, site_id, environment_id, name, items, updated_at) VALUES "
                    "(?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET items=excluded.items, updated_at=excluded.updated_at",
                    (f"{d['site_id']}:{env}:{name}", d["site_id"], env, name, _j(d.get("items") or []), now))
    elif type_ == "SiteSettingsUpdated":
        row = cur.execute("SELECT settings FROM sites WHERE id=?", (d["id"],)).fetchone()
        if row is not None:
            merged = _merge(json.loads(row[0]) if row[0] else {}, d.get("settings") or {})
            cur.execute("UPDATE sites SET settings=?, updated_at=? WHERE id=?", (_j(merged), now, d["id"]))
            for key in d.get("settings") or {}:
                if key in merged:
                    cur.execute("INSERT OR REPLACE INTO site_settings (site_id, key, value, updated_at) "
                                "VALUES (?,?,?,?)", (d["id"], key, _j(merged[key]), now))
                else:
                    cur.execute("DELETE FROM site_settings WHERE site_id=? AND key=?", (d["id"], key))
    elif type_ == "SessionCreated":
        cur.execute("INSERT OR REPLACE INTO sessions (id, site_id, user_id, title, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?)", (d["id"], d.get("site_id"), d.get("user_id"), d.get("title"), now, now))
    elif type_ == "MessageAdded":
        cur.execute("INSERT OR REPLACE INTO messages (id, session_id, role, content, metadata, created_at) "
                    "VALUES (?,?,?,?,?,?)", (d["id"], d["session_id"], d["role"], _j(d["content"]),
                                             _j(d.get("metadata") or {}), now))
        cur.execute("UPDATE sessions SET updated_at=? WHERE id=?", (now, d["session_id"]))
    elif type_ == "TeamCreated":
        cur.execute("INSERT OR REPLACE INTO teams (id, name, slug, created_at, updated_at) VALUES (?,?,?,?,?)",
                    (d["id"], d["name"], d.get("slug"), now, now))
    elif type_ == "SiteCreated":
        cur.execute("INSERT OR REPLACE INTO sites (id, team_id, name, domain, settings, created_at, updated_at) "
                    "VALUES (?,?,?,?,'{}',?,?)", (d["id"], d["team_id"], d["name"], d.get("domain"), now, now))
    elif type_ == "EnvironmentCreated":
        cur.execute("INSERT OR REPLACE INTO environments (id, site_id, name, created_at, updated_at) "
                    "VALUES (?,?,?,?,?)", (d["id"], d["site_id"], d["name"], now, now))
        cur.execute("UPDATE sites SET default_environment_id=? WHERE id=? AND default_environment_id IS NULL",
                    (d["id"], d["site_id"]))
    elif type_ == "SectionDefinitionCreated":
        schema = d["schema"] if "schema" in d else d.get("fields", [])  # v2, or a v1 payload (upcast)
        cur.execute("INSERT OR REPLACE INTO section_definitions (id, name, schema, default_content, site_id, "
                    "environment_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                    (d["id"], d["name"], None if schema is None else _j(schema),
                     None if d.get("default_content") is None else _j(d["default_content"]), d.get("site_id"),
                     d.get("environment_id"), now, now))


def replay(log_path: Path, db_path: Path, *, batch: int = 5000) -> int:
    """Project every event of the log at ``log_path`` into ``db_path`` (schema already created)."""
    log = sqlite3.connect(str(log_path))
    db = sqlite3.connect(str(db_path), isolation_level=None)
    db.execute("PRAGMA journal_mode=MEMORY")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    cur = db.cursor()
    after = count = 0
    while True:
        rows = log.execute("SELECT position, type, data, recorded_at FROM events WHERE position > ? "
                           "ORDER BY position LIMIT ?", (after, batch)).fetchall()
        if not rows:
            break
        cur.execute("BEGIN")
        for _position, type_, data, recorded_at in rows:
            apply(cur, type_, json.loads(data), recorded_at)
        after = rows[-1][0]
        cur.execute("INSERT OR REPLACE INTO projection_checkpoints (name, position) VALUES ('cms', ?), "
                    "('media', ?)", (after, after))
        cur.execute("COMMIT")
        count += len(rows)
    log.close()
    db.close()
    return count
