"""Nav menus: WordPress stores one ``nav_menu_item`` post per entry; Chronicle has one
``NavigationUpdated`` per menu holding the whole tree. So menu items are collected during the read and
mapped at the end, when every page title a label may fall back to is known.

An entry's target becomes ``page_id`` (a page), ``post_id`` (a post), or ``url`` (custom links and
category archives). Parents come from ``_menu_item_menu_item_parent``; siblings keep ``menu_order``.
An entry listed twice in the same menu is kept once (the repeat is skipped and counted); the theme
test export reuses 18 entry ids across its "All Pages" and "All Pages Flat" menus, and each menu keeps
its own copy.
"""

from __future__ import annotations

from typing import Any

from .wxr import Mapped, WxrContext
from .wxr_ids import finish
from .wxr_model import WxrItem, WxrTerm
from .wxr_report import Outcome, mapped, skipped


def _target(item: WxrItem, ctx: WxrContext) -> tuple[dict[str, Any], str]:
    """The link part of an entry and the label to use when the entry has no title of its own."""
    kind, obj, obj_id = item.meta.get("_menu_item_type", ""), item.meta.get("_menu_item_object", ""), \
        item.meta.get("_menu_item_object_id", "")
    if kind == "post_type" and obj in ("page", "post"):
        _, title = ctx.titles.get(obj_id, (obj, ""))
        return {f"{obj}_id": ctx.id(obj_id)}, title
    if kind == "taxonomy" and obj == "category" and obj_id in ctx.category_slugs:
        slug, name = ctx.category_slugs[obj_id]
        return {"url": f"{ctx.base_url}/category/{slug}/"}, name
    return {"url": item.meta.get("_menu_item_url") or item.link}, ""


def _tree(entries: list[WxrItem], ctx: WxrContext) -> list[dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for entry in entries:
        link, fallback = _target(entry, ctx)
        nodes[entry.post_id] = {"label": entry.title or fallback, **link, "children": []}
    roots: list[dict[str, Any]] = []
    for entry in sorted(entries, key=lambda e: (e.menu_order, int(e.post_id) if e.post_id.isdigit() else 0)):
        parent = entry.meta.get("_menu_item_menu_item_parent", "0")
        siblings = nodes[parent]["children"] if parent in nodes and parent != entry.post_id else roots
        siblings.append(nodes[entry.post_id])
    return roots


def map_menus(menus: list[WxrTerm], items: list[WxrItem], ctx: WxrContext) -> Mapped:
    """Every declared menu (even an empty one) → one ``NavigationUpdated`` with its item tree."""
    outcomes: list[Outcome] = []
    by_menu: dict[str, dict[str, WxrItem]] = {m.slug: {} for m in menus}
    for item in items:
        if item.status != "publish":
            outcomes.append(skipped("menu item", f"status {item.status}"))
            continue
        slugs = [slug for slug, _ in item.terms_in("nav_menu")] or ["main"]
        for slug in slugs:
            entries = by_menu.setdefault(slug, {})
            if item.post_id in entries:
                outcomes.append(skipped("menu item", "listed twice in the export (second copy ignored)"))
                continue
            entries[item.post_id] = item
    envelopes: list[dict[str, Any]] = []
    for slug, entries in by_menu.items():
        data = {"site_id": ctx.site_id, "name": slug, "items": _tree(list(entries.values()), ctx)}
        envelopes += finish(ctx.key, f"menu:{slug}", [("NavigationUpdated", data)])
        outcomes.append(mapped("menu item", "entry in NavigationUpdated.items", len(entries)))
    outcomes.append(mapped("menu", "NavigationUpdated", len(by_menu)))
    return Mapped(envelopes, outcomes)
