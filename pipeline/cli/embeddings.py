"""``chronicle reindex`` and ``chronicle search``."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

KIND_CHOICES = ("pages", "sections", "posts", "images", "all")


def _check_kind(kind: str) -> str:
    if kind not in KIND_CHOICES:
        raise typer.BadParameter(f"choose from {', '.join(KIND_CHOICES)}")
    return kind


@app.command()
def reindex(
    kind: Annotated[list[str], typer.Option("--kind", help="pages|sections|posts|images|all (repeatable).",
                                            callback=lambda v: [_check_kind(k) for k in v])] = ["all"],  # noqa: B006
    item_id: Annotated[str | None, typer.Option("--id", help="Only this item.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Embed with this model (builds a shadow table "
                                                             "and swaps it in when complete).")] = None,
    dimension: Annotated[int | None, typer.Option("--dimension", help="Vector size for --model.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-embed even unchanged, cached text (pays again).")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Only record the request; workers carry it out.")] = False,
) -> None:
    """Record a ReindexRequested event, then (unless --detach) carry it out here with a progress bar.

    Unchanged text costs nothing: vectors come from the content-addressed cache.
    """
    if dimension is not None and model is None:
        raise typer.BadParameter("--dimension needs --model")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from ..api import Chronicle
    from ..embeddings.api import request_reindex
    from ..embeddings.config import EmbeddingSettings
    from ..embeddings.embedders import EmbeddingsOff
    from ..embeddings.progress import read_progress

    with errors_to_exit_codes(), Chronicle.open(notify=detach) as handle:
        if not EmbeddingSettings().enabled:
            raise EmbeddingsOff("embeddings are off: set CHRONICLE_EMBEDDER=openai|local")
        reindex_id = request_reindex(handle, kinds=kind, item_id=item_id, model=model, dimension=dimension,
                                     force=force, actor="cli")
        console.print(f"reindex [bold]{reindex_id}[/bold] requested")
        if detach:
            return
        failure: list[BaseException] = []

        def work() -> None:
            try:
                handle.drain()
            except BaseException as exc:  # reported below, in the foreground thread
                failure.append(exc)

        worker = threading.Thread(target=work, name="reindex", daemon=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            tasks: dict[str, TaskID] = {}
            worker.start()
            while worker.is_alive():
                for name, entry in read_progress(handle, reindex_id).items():
                    if name not in tasks:
                        tasks[name] = bar.add_task(name, total=entry["total"])
                    bar.update(tasks[name], completed=entry["done"], total=entry["total"])
                time.sleep(0.2)
            for name, entry in read_progress(handle, reindex_id).items():
                task = tasks[name] if name in tasks else bar.add_task(name, total=entry["total"])
                bar.update(task, completed=entry["done"], total=entry["total"])
        if failure:
            raise failure[0]
        from ..embeddings.api import embedding_status

        usage = embedding_status(handle)["usage"]
        console.print(f"done: {usage['requests']} requests and {usage['tokens']} tokens used in total so far, "
                      f"{usage['failures']} failures")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for (natural language or keywords).")],
    kind: Annotated[list[str], typer.Option("--kind", callback=lambda v: [_check_kind(k) for k in v])] = ["all"],  # noqa: B006
    site: Annotated[str | None, typer.Option("--site")] = None,
    status: Annotated[str | None, typer.Option("--status", help="draft|published")] = None,
    environment: Annotated[str | None, typer.Option("--environment")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 10,
    mode: Annotated[str, typer.Option("--mode", help="hybrid|vector|fts")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Hybrid (vector + full-text, reciprocal-rank fused) search over embedded content."""
    from rich.table import Table

    from ..api import Chronicle
    from ..embeddings.api import search as run_search

    # A look starts no rebuild of the read model (as `status`): migrate=False.
    with errors_to_exit_codes(), Chronicle.open(notify=False, migrate=False) as handle:
        hits = run_search(handle, query, kinds=kind, site=site, status=status, environment=environment,
                          limit=limit, mode=mode)
    if as_json:
        print_json([h.to_json() for h in hits])
        return
    table = Table("score", "kind", "id", "site", "status", "text")
    for h in hits:
        snippet = h.text.replace("\n", " ")
        table.add_row(f"{h.score:.4f}", h.kind, h.id, h.site or "", h.status,
                      snippet[:80] + ("…" if len(snippet) > 80 else ""))
    console.print(table)
