"""The CMS read model: teams → sites → environments → pages, sections, posts, navigation, chat.

``events`` holds the catalogue entries the CMS emits; ``projection`` the pure handlers that turn them
into rows of the tables in ``db.models``. The CMS subsystem has no side effects of its own: media and
embeddings react to its events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.registry import Registry
    from pipeline.settings import Settings


def register(registry: Registry, settings: Settings) -> None:
    from pipeline.projection import Projection

    from . import (
        events,  # noqa: F401  (registers the CMS event types)
        projection,
    )

    registry.add_projection(Projection("cms", projection.TABLES, projection.HANDLERS,
                                       reads=("sites",)))
