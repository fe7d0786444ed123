"""Event catalogue: every event type Chronicle accepts, as pydantic models keyed by name.

The machinery is here (``base``); the types live with their subsystems (``pipeline.cms.events``,
``pipeline.media.events``, …) and join the catalogue when their module is imported, which building a
registry (``pipeline.subsystems``) does.
"""

from . import erasure as _erasure  # noqa: F401  (SubjectErased)
from .base import CATALOGUE, PERSONAL, EventData, event

__all__ = ["CATALOGUE", "PERSONAL", "EventData", "event"]
