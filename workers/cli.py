"""The complete ``chronicle`` command: the pipeline's CLI plus the Celery roles (``worker``, ``beat``).

The shells in ``pipeline/`` know nothing of Celery; this module, in ``workers/``, adds the two commands
that start Celery processes to the same typer app, and is what the ``chronicle`` script and
``python -m workers`` run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli import app


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    queues: Annotated[str | None, typer.Option("-Q", "--queues", help="Comma-separated; default: all.")] = None,
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency")] = None,
    beat: Annotated[bool | None, typer.Option("--beat/--no-beat", help="Embed the sweeper schedule; "
                                              "default on when serving every queue.")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """A real Celery worker on the configured broker. Extra options pass through to Celery."""
    from pipeline.settings import Settings

    from .app import QUEUES
    from .app import app as celery_app

    settings = Settings()
    settings.ensure_dirs()
    argv = ["worker", f"--loglevel={loglevel}", "-Q", queues or ",".join(QUEUES)]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if beat if beat is not None else queues is None:
        argv += ["-B", f"--schedule={settings.resolved_data_dir / 'celerybeat-schedule'}"]
    argv += list(ctx.args)
    celery_app.worker_main(argv)


@app.command()
def beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO") -> None:
    """Run only the sweeper schedule (Celery beat), for deployments with dedicated workers."""
    from pipeline.settings import Settings

    from .app import app as celery_app

    settings = Settings()
    settings.ensure_dirs()
    celery_app.start(["beat", f"--loglevel={loglevel}",
                      f"--schedule={settings.resolved_data_dir / 'celerybeat-schedule'}"])


def main() -> None:
    app()
