"""The composition root: which subsystems a Chronicle runs, plugged into one registry.

The kernel names no subsystem and the subsystems do not know each other's insides; this module is the
one place that lists them (their order is the order ``status`` shows their projections in), then the
deployment's own modules from ``CHRONICLE_JOB_MODULES``, each a module with a
``register(registry, settings)`` function.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from . import cms, embeddings, failures, media
from .projection import Projection
from .reactor import reactor_subscriber
from .registry import Registry
from .settings import Settings

SUBSYSTEMS = (cms, media, embeddings, failures)


def build_registry(settings: Settings) -> Registry:
    """A fresh registry with the reactor, every built-in subsystem and the configured extra modules."""
    registry = Registry()
    registry.add_subscriber(reactor_subscriber())
    for subsystem in SUBSYSTEMS:
        subsystem.register(registry, settings)
    for name in settings.job_modules:
        import_module(name).register(registry, settings)
    return registry


def default_projections() -> dict[str, Projection]:
    """The built-in projections by name (benchmarks and tests that build a projector by hand)."""
    return build_registry(Settings()).projections


def load_catalogue() -> None:
    """Fill the event catalogue, and the upcasters of older payloads, without building a registry (the
    CLI's ``events catalogue``, tests). A subsystem's ``upcasters`` module is optional."""
    for subsystem in SUBSYSTEMS:
        import_module(f"{subsystem.__name__}.events")
        if find_spec(f"{subsystem.__name__}.upcasters") is not None:
            import_module(f"{subsystem.__name__}.upcasters")


# The catalogue is filled as soon as the composition root is imported (the facade imports it), so the
# envelope validator, `chronicle events catalogue` and the HTTP API know every type before any handle
# exists. Event modules hold only pydantic models: cheap to import.
load_catalogue()
