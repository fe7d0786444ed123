"""``chronicle --help`` (and every command's ``--help``), ``status`` and ``emit`` import none of the heavy
libraries.

A fresh interpreter runs the CLI's ``main`` as the console script does, then reports ``sys.modules``:
the command line must import only what a command uses, so an operator's ``--help``, ``status`` or a
script's one-event ``emit`` never pays for LanceDB, pyarrow, torch, Celery or FastAPI. The timings
themselves are ``python -m benchmarks cli`` (tests/test_benchmarks_cli.py runs it in its quickest mode).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("lancedb", "pyarrow", "torch", "celery", "fastapi")
# Nor what only the commands that do the work need: the facade's database layer, images, brokers, HTTP.
NOT_FOR_HELP = ("sqlalchemy", "sqlmodel", "db", "workers.app", "workers.tasks", "numpy", "PIL", "openai", "kombu",
                "redis", "psycopg",
                "uvicorn", "httpx", "sentence_transformers", "pydantic_settings", "opentelemetry")
# Runs the CLI like the `chronicle` console script, then prints the top-level packages it imported.
PROBE = """
import importlib, json, sys
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
sys.argv = ["chronicle", *json.loads(sys.argv[1])]
from workers.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
names = {m.split(".")[0] for m in sys.modules} | {m for m in sys.modules if m.startswith(("workers.", "sqlalchemy."))}
print("\\nMODULES " + json.dumps({"code": code, "modules": sorted(names)}))
"""
HELPS = [["--help"], ["emit", "--help"], ["status", "--help"], ["serve", "--help"], ["search", "--help"],
         ["reindex", "--help"], ["worker", "--help"], ["replay", "--help"], ["media", "--help"],
         ["media", "backfill", "--help"], ["events", "--help"], ["failures", "list", "--help"],
         ["import", "wxr", "--help"], ["upload", "--help"], ["drain", "--help"], []]


def imported_by(args: list[str], tmp_path: Path, preload: tuple[str, ...] = (),
                stdin: str | None = None) -> tuple[int, set[str], str]:
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL"):  # the defaults: SQLite log, embedded broker
        env.pop(var, None)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(preload)],
                          capture_output=True, text=True, input=stdin,
                          env=env, cwd=tmp_path, timeout=120, check=False)
    marker = done.stdout.rfind("\nMODULES ")
    assert marker >= 0, done.stdout + done.stderr
    report = json.loads(done.stdout[marker + len("\nMODULES "):])
    return report["code"], set(report["modules"]), done.stdout[:marker] + done.stderr


@pytest.mark.parametrize("args", HELPS, ids=lambda a: " ".join(a) or "(no arguments)")
def test_help_imports_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    code, modules, output = imported_by(args, tmp_path)
    assert code in (0, 2), output  # no arguments: the help (on stderr), and click's exit code for a missing command
    assert "Usage" in output, output
    heavy = sorted(m for m in HEAVY if m in modules)
    assert not heavy, f"`chronicle {' '.join(args)}` imported {heavy}"
    needless = sorted(m for m in NOT_FOR_HELP if m in modules)
    assert not needless, f"`chronicle {' '.join(args)}` imported {needless}"


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """The check can fail: with the HTTP app and the Celery app loaded first, the probe reports them."""
    code, modules, output = imported_by(["--help"], tmp_path, preload=("pipeline.http", "workers.app"))
    assert code == 0 and "Usage" in output, output
    assert {"fastapi", "celery", "sqlalchemy"} <= modules


def test_emit_with_traces_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    """Traces are off unless OTEL_* variables say so, and then OpenTelemetry costs an emit nothing."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "PageCreated", "data": {"id": "1", "site_id": "s", "title": "T", "slug": "t"}}\n')
    code, modules, output = imported_by(["emit", str(events)], tmp_path)
    assert code == 0, output
    assert "opentelemetry" not in modules


# `status` and `emit` do real work, so they may load the log's SQLAlchemy Core and the broker's kombu;
# not the ORM models, images, the OpenAI client, vectors or any server's client they were not told to use.
NOT_FOR_STATUS_OR_EMIT = ("sqlmodel", "db.models", "workers.app", "workers.tasks", "numpy", "PIL", "openai",
                          "redis", "psycopg", "uvicorn", "httpx", "sentence_transformers", "tenacity.tornadoweb")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with a projected log: ``status`` reads an existing read model, as in production."""
    from tests.helpers import cli

    root = tmp_path_factory.mktemp("cli-imports")
    env = {"CHRONICLE_DATA_DIR": str(root / "data"), "CHRONICLE_EVENT_STORE_URL": "", "CHRONICLE_BROKER_URL": ""}
    events = "".join(json.dumps({"type": "TeamCreated", "data": {"id": f"t{i}", "name": f"Team {i}"}}) + "\n"
                     for i in range(3))
    cli("emit", "-", input=events.encode(), env=env, check=True)
    cli("drain", env=env, check=True)
    return root


def _modules_of(modules: set[str]) -> set[str]:
    return {m for m in NOT_FOR_STATUS_OR_EMIT if m in modules}


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["status", "--check"]],
                         ids=lambda a: " ".join(a))
def test_status_imports_no_heavy_library(args: list[str], data_dir: Path) -> None:
    code, modules, output = imported_by(args, data_dir)
    assert code == 0, output
    assert "head" in output, output
    heavy = sorted(m for m in HEAVY if m in modules)
    assert not heavy, f"`chronicle {' '.join(args)}` imported {heavy}"
    needless = sorted(_modules_of(modules))
    assert not needless, f"`chronicle {' '.join(args)}` imported {needless}"


def test_emit_of_one_event_imports_no_heavy_library(data_dir: Path) -> None:
    """The default deployment: the SQLite log (on the standard library's sqlite3) and the embedded broker,
    woken without Celery, kombu or SQLAlchemy."""
    line = json.dumps({"type": "TeamCreated", "data": {"id": "t-probe", "name": "Probe"}}) + "\n"
    code, modules, output = imported_by(["emit", "-"], data_dir, stdin=line)
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["appended"] == 1, output
    heavy = sorted(m for m in HEAVY if m in modules)
    assert not heavy, f"`chronicle emit` imported {heavy}"
    needless = sorted(_modules_of(modules))
    assert not needless, f"`chronicle emit` imported {needless}"
    assert "kombu" not in modules and "sqlalchemy" not in modules
    broker = sqlite3.connect(data_dir / "data" / "broker.db")
    try:  # it did wake the workers, through the broker
        woken = broker.execute("SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id "
                               "WHERE q.name = 'projections'").fetchone()[0]
    finally:
        broker.close()
    assert woken >= 2  # the fixture's emit, and this one
