"""A deterministic generator of realistic CMS traffic, for ``make run``, tests and benchmarks.

The mix follows what a CMS's log looks like over time: a few tenants, many pages with sections,
posts, frequent updates, publishes and unpublishes, the odd delete, reorders, menus and chat. Every
event refers only to entities created earlier, so the stream is valid in any prefix.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

WORDS = (
    "river stone garden harbour lantern meadow copper orbit quiet signal timber velvet archive "
    "beacon canyon delta ember fable glacier horizon island jasmine kettle lumen marble nectar"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def generate(count: int, *, seed: int = 7, sites: int = 3) -> Iterator[dict[str, Any]]:
    """Yield ``count`` envelopes (dicts), with deterministic ids so re-emitting is idempotent."""
    rng = random.Random(seed)
    n = 0

    def env(type_: str, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal n
        n += 1
        return {"id": f"sample-{seed}-{n}", "type": type_, "data": data}

    yield env("TeamCreated", {"id": "team-1", "name": "Acme", "slug": "acme"})
    site_ids = []
    for s in range(1, sites + 1):
        site_ids.append(f"site-{s}")
        yield env("SiteCreated", {"id": f"site-{s}", "team_id": "team-1", "name": f"Site {s}"})
        yield env("EnvironmentCreated", {"id": f"env-{s}", "site_id": f"site-{s}", "name": "production"})
        yield env("SectionDefinitionCreated", {"id": f"def-{s}", "site_id": f"site-{s}", "name": "Text block",
                                               "schema": {"type": "object", "properties": {
                                                   "heading": {"type": "string"}, "body": {"type": "string"}}},
                                               "default_content": {"heading": "", "body": ""}})
    pages: list[str] = []
    sections: dict[str, list[str]] = {}
    posts: list[str] = []
    sessions: list[str] = []
    serial = 0
    while n < count:
        serial += 1
        site = rng.randrange(1, sites + 1)
        roll = rng.random()
        if roll < 0.15 or not pages:
            pid = f"page-{serial}"
            pages.append(pid)
            sections[pid] = []
            yield env("PageCreated", {"id": pid, "site_id": f"site-{site}", "environment_id": f"env-{site}",
                                      "title": _text(rng, 4).title(), "slug": f"p-{serial}",
                                      "metadata": {"seo": {"description": _text(rng, 8)}}})
        elif roll < 0.40:
            pid = rng.choice(pages)
            sid = f"sec-{serial}"
            sections[pid].append(sid)
            yield env("SectionEntryCreated", {"id": sid, "definition_id": f"def-{site}", "page_id": pid,
                                              "order": len(sections[pid]) - 1,
                                              "content": {"heading": _text(rng, 3), "body": _text(rng, 30)}})
        elif roll < 0.55:
            pid = rng.choice(pages)
            yield env("PageUpdated", {"id": pid, "title": _text(rng, 4).title()})
        elif roll < 0.62 and any(sections.values()):
            pid = rng.choice(pages)
            if sections[pid]:
                yield env("SectionEntryUpdated", {"id": rng.choice(sections[pid]),
                                                  "content": {"heading": _text(rng, 3), "body": _text(rng, 30)}})
        elif roll < 0.70:
            yield env("PagePublished", {"id": rng.choice(pages)})
        elif roll < 0.72:
            yield env("PageUnpublished", {"id": rng.choice(pages)})
        elif roll < 0.80 or not posts:
            post = f"post-{serial}"
            posts.append(post)
            yield env("PostCreated", {"id": post, "site_id": f"site-{site}", "title": _text(rng, 5).title(),
                                      "slug": f"post-{serial}", "body": _text(rng, 60), "tags": [rng.choice(WORDS)],
                                      "categories": ["news"]})
        elif roll < 0.84:
            yield env("PostUpdated", {"id": rng.choice(posts), "body": _text(rng, 60)})
        elif roll < 0.87:
            yield env("PostPublished", {"id": rng.choice(posts)})
        elif roll < 0.88 and len(pages) > 10:
            pid = pages.pop(rng.randrange(len(pages)))
            sections.pop(pid, None)
            yield env("PageDeleted", {"id": pid})
        elif roll < 0.89 and len(posts) > 10:
            yield env("PostDeleted", {"id": posts.pop(rng.randrange(len(posts)))})
        elif roll < 0.91:
            pid = rng.choice(pages)
            if len(sections[pid]) > 1:
                rng.shuffle(sections[pid])
                yield env("PageSectionsReordered", {"page_id": pid, "section_ids": list(sections[pid])})
        elif roll < 0.92:
            yield env("NavigationUpdated", {"site_id": f"site-{site}", "name": "main",
                                            "items": [{"label": _text(rng, 1), "page_id": p}
                                                      for p in rng.sample(pages, min(5, len(pages)))]})
        elif roll < 0.93:
            yield env("SiteSettingsUpdated", {"id": f"site-{site}", "settings": {"theme": rng.choice(WORDS)}})
        elif roll < 0.95 or not sessions:
            sid = f"chat-{serial}"
            sessions.append(sid)
            yield env("SessionCreated", {"id": sid, "site_id": f"site-{site}", "title": _text(rng, 3)})
        else:
            yield env("MessageAdded", {"id": f"msg-{serial}", "session_id": rng.choice(sessions),
                                       "role": rng.choice(("user", "assistant")), "content": _text(rng, 20)})
