"""Chronicle: an event-sourced background processing pipeline for a CMS.

The public names are loaded lazily: a command or a worker that needs one kernel module
(``pipeline.envelope``) does not pay for importing the facade and every subsystem behind it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Chronicle as Chronicle
    from .api import DrainReport as DrainReport
    from .errors import ChronicleError as ChronicleError
    from .errors import ConcurrencyConflict as ConcurrencyConflict
    from .errors import CorruptEvent as CorruptEvent
    from .errors import InvalidEvent as InvalidEvent
    from .errors import UnknownEventType as UnknownEventType
    from .settings import Settings as Settings

_EXPORTS = {
    "Chronicle": ".api",
    "DrainReport": ".api",
    "ChronicleError": ".errors",
    "ConcurrencyConflict": ".errors",
    "CorruptEvent": ".errors",
    "InvalidEvent": ".errors",
    "UnknownEventType": ".errors",
    "Settings": ".settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
