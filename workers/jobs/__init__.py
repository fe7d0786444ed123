"""Side-effect job modules. Importing this package registers every job (``workers.registry.job``) and
every reaction (``pipeline.reactor.reaction``); add one import line per new module."""

from __future__ import annotations


def load() -> None:
    """Import every job module once (idempotent: Python caches modules), then the user's own
    (``CHRONICLE_JOB_MODULES``): a deployment adds side effects without forking Chronicle."""
    from importlib import import_module

    from pipeline.settings import Settings

    # One import line per job module goes here (with a noqa for F401).
    from workers.jobs import embeddings as _embeddings  # noqa: F401
    from workers.jobs import failures as _failures  # noqa: F401
    from workers.media import job as _media  # noqa: F401
    from workers.media import recovery as _media_recovery  # noqa: F401
    for name in Settings().job_modules:
        import_module(name)
