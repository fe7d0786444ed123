"""Which site an event belongs to, for site-restricted API keys.

Derived, never declared by the sender: from the payload (the field the catalogue names, ``site_id`` by
default, ``id`` for ``SiteCreated``), else from a stream the payload points at (``site_via``: a section
entry's page), else from the event's own stream, whose site is its first event's (``PagePublished`` on
``page-42`` belongs where ``PageCreated`` put page 42; ``ImageProcessed`` where ``ImageUploaded`` said).
An event none of these reach (``TeamCreated``, worker bookkeeping such as ``EmbeddingsComputed``) has no
site: only unrestricted keys see or send it.

A stream's first event never changes, so a stream's site is cached for the life of the resolver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .envelope import NewEvent, Recorded
from .errors import AccessDenied
from .events import CATALOGUE
from .store import EventStore

MAX_DEPTH = 4  # streams pointing at streams: section entry → page is 1; a cycle stops here
CACHE_SIZE = 100_000


class SiteResolver:
    """Site of events and streams over one log (thread-safe enough: the cache only ever gains
    entries that are true forever)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._streams: dict[str, str | None] = {}

    def payload_site(self, type_: str, data: Mapping[str, Any], *, local: Mapping[str, str | None] | None = None,
                     depth: int = 0) -> str | None:
        """The site the payload names or points at (``local``: streams created earlier in a batch)."""
        model = CATALOGUE.get(type_)
        if model is None:
            return None
        value = data.get(model.site_field)
        if isinstance(value, str) and value:
            return value
        for field, prefix in model.site_via.items():
            ref = data.get(field)
            if isinstance(ref, str) and ref:
                found = self.stream_site(f"{prefix}-{ref}", local=local, depth=depth + 1)
                if found is not None:
                    return found
        return None

    def stream_site(self, stream: str, *, local: Mapping[str, str | None] | None = None,
                    depth: int = 0) -> str | None:
        """The site of a stream's first event; None for a stream that does not exist or has no site."""
        if local is not None and stream in local:
            return local[stream]
        if stream in self._streams:
            return self._streams[stream]
        if depth > MAX_DEPTH:
            return None
        events = self.store.read_stream(stream)
        if not events:
            return None
        first = events[0]
        site = self.payload_site(first.type, first.data, depth=depth)
        if len(self._streams) < CACHE_SIZE:
            self._streams[stream] = site
        return site

    def site_of(self, event: Recorded) -> str | None:
        """The site of a recorded event (payload first, then its stream)."""
        return self.payload_site(event.type, event.data) or self.stream_site(event.stream)

    def authorize_append(self, events: Iterable[NewEvent], sites: tuple[str, ...]) -> None:
        """Refuse (``AccessDenied``, with the batch index) any event outside ``sites``: every site the
        payload and the stream name must be among them, and at least one must be derivable. Streams
        created earlier in the same batch count (a ``PageCreated`` then its ``PagePublished``)."""
        allowed = set(sites)
        local: dict[str, str | None] = {}
        for index, e in enumerate(events):
            found = {s for s in (self.payload_site(e.type, e.data, local=local),
                                 self.stream_site(e.stream, local=local)) if s is not None}
            if not found:
                raise AccessDenied(f"event #{index} ({e.type} on '{e.stream}'): its site cannot be derived, "
                                   "so it needs a key that is not restricted to sites", index=index)
            outside = sorted(found - allowed)
            if outside:
                raise AccessDenied(f"event #{index} ({e.type} on '{e.stream}') belongs to site "
                                   f"'{outside[0]}', outside this key's sites", index=index)
            if e.stream not in local and self.stream_site(e.stream, local=local) is None:
                local[e.stream] = next(iter(found))
