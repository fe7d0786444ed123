"""The ``chronicle`` command line (typer + rich). Each command group lives in its own module."""

from __future__ import annotations

from . import commands as _commands  # noqa: F401  (registers the commands on ``app``)
from . import embeddings as _embeddings  # noqa: F401  (reindex, search)
from . import erase as _erase  # noqa: F401  (erase --subject)
from . import events as _events  # noqa: F401
from . import failures as _failures  # noqa: F401
from . import importers as _importers  # noqa: F401  (import wxr)
from . import keys as _keys  # noqa: F401  (keys create/list/revoke)
from . import media as _media  # noqa: F401  (upload, media backfill/status)
from . import model as _model  # noqa: F401  (model info, model export)
from . import replay as _replay  # noqa: F401
from . import schema as _schema  # noqa: F401  (schema drizzle, schema sql)
from . import serve as _serve  # noqa: F401
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
