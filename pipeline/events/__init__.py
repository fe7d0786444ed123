"""Event catalogue: every event type Chronicle accepts, as pydantic models keyed by name."""

from . import cms as _cms  # noqa: F401  (registers the CMS event types)
from . import cms_upcasters as _cms_upcasters  # noqa: F401  (older CMS payloads → today's shapes)
from . import embeddings as _embeddings  # noqa: F401  (embedding outcomes, reindex requests)
from . import media as _media  # noqa: F401  (media pipeline outcomes)
from . import ops as _ops  # noqa: F401  (dead letters and redrive)
from .base import CATALOGUE, EventData, event

__all__ = ["CATALOGUE", "EventData", "event"]
