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
    queues: Annotated[str | None, typer.Option("-Q", "--queues", help="Comma-separated; default: all, "
                                               "in fair lanes.")] = None,
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency", help="Pool size (per lane).")] = None,
    beat: Annotated[bool | None, typer.Option("--beat/--no-beat", help="Embed the sweeper schedule; "
                                              "default on when serving every queue.")] = None,
    lanes: Annotated[bool, typer.Option("--lanes/--one-pool", help="Without -Q: one Celery worker per lane "
                                        "(projections, media, embeddings+vectors) so cheap work never "
                                        "waits behind expensive work (workers/lanes.py); --one-pool: "
                                        "every queue in one pool, as before.")] = True,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this "
                                                     "port (all pool processes summed); default off.")] = None,
) -> None:
    """A real Celery worker on the configured broker. Extra options pass through to Celery."""
    if metrics_port is not None:
        _serve_metrics(metrics_port)
    from pipeline.settings import Settings

    settings = Settings()
    settings.ensure_dirs()
    if queues is None and lanes:
        from .lanes import LANES, Supervisor

        raise typer.Exit(Supervisor(LANES, loglevel=loglevel, concurrency=concurrency,
                                    beat=beat if beat is not None else True, extra=list(ctx.args)).run())
    from .app import QUEUES
    from .app import app as celery_app

    argv = ["worker", f"--loglevel={loglevel}", "-Q", queues or ",".join(QUEUES)]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if beat if beat is not None else queues is None:
        argv += ["-B", f"--schedule={settings.resolved_data_dir / 'celerybeat-schedule'}"]
    argv += list(ctx.args)
    celery_app.worker_main(argv)


def _serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Prometheus multiprocess mode: the prefork children write their counters to files in a directory
    of this worker's own, and this (the parent) process serves their sum. Why not one server per child:
    children come and go (and would each need a port); why not Celery task events: they need a monitor
    process and say nothing about Chronicle's own numbers."""
    import atexit
    import shutil
    import tempfile

    from celery.signals import worker_process_shutdown
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from pipeline.metrics import use_multiprocess_dir

    path = tempfile.mkdtemp(prefix="chronicle-metrics-")
    atexit.register(shutil.rmtree, path, True)
    use_multiprocess_dir(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    start_http_server(port, addr=host, registry=registry)

    @worker_process_shutdown.connect(weak=False)
    def _child_gone(pid: int | None = None, **_: object) -> None:
        import os

        multiprocess.mark_process_dead(pid or os.getpid(), path)


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
