"""``make run``: the main job on the embedded default (no server, no API key).

1. imports the WordPress theme unit test export (``samples/wordpress``) as Chronicle events;
2. uploads the sample photos (``samples/photos``);
3. runs a real ``chronicle worker`` (embedded SQLite broker, every queue, sweeper) until everything is
   idle — projections, media variants, embeddings — with progress shown;
4. prints ``chronicle status`` and runs one search.

Running it again is safe: the import's event ids are deterministic (all duplicates the second time)
and photos already uploaded are not uploaded again.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .api import Chronicle
from .sample import generate
from .status import full_status

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
WXR = SAMPLES / "wordpress" / "themeunittestdata.wordpress.xml"
QUERY = "how to write a blog post with pictures"


def upload_photos(chronicle: Chronicle, console: Console) -> int:
    from pipeline.media.upload import upload

    conn = sqlite3.connect(chronicle.settings.projection_db_path)
    try:
        known = {row[0] for row in conn.execute("SELECT id FROM images")}
    finally:
        conn.close()
    uploaded = 0
    for photo in sorted((SAMPLES / "photos").glob("*.jpg")):
        image_id = f"sample-{photo.stem.lower()}"
        if image_id not in known:
            upload(chronicle, photo, image_id=image_id, metadata={"title": photo.stem.replace("_", " ")})
            uploaded += 1
    console.print(f"uploaded {uploaded} sample photos ({len(known)} were already there)")
    return uploaded


def pending_work(status: dict[str, Any]) -> int:
    """How much is left: lag, queued messages, images not finished, texts not embedded."""
    left = sum(p["lag"] for p in status["projections"].values())
    left += sum(s["lag"] for s in status["subscribers"].values())
    left += sum((status["queues"].get("queues") or {}).values())
    left += sum(n for state, n in status["images"].items() if state in ("pending", "processing"))
    emb = status.get("embeddings") or {}
    left += sum(k.get("pending", 0) for k in (emb.get("kinds") or {}).values())
    return left


def run_workers_until_idle(chronicle: Chronicle, console: Console, timeout: float) -> None:
    """A real worker process on the embedded broker; stop it once two polls in a row find no work."""
    data_dir = chronicle.settings.resolved_data_dir
    log_path = data_dir / "demo-worker.log"
    env = {**os.environ, "CHRONICLE_DATA_DIR": str(data_dir), "CHRONICLE_SWEEP_INTERVAL": "1"}
    with open(log_path, "wb") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "workers", "worker", "--loglevel", "WARNING"],
                                  env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("workers", total=None)
                deadline, idle_polls, peak = time.monotonic() + timeout, 0, 1
                while idle_polls < 2 and time.monotonic() < deadline:
                    if worker.poll() is not None:
                        raise SystemExit(f"the worker exited early ({worker.returncode}); see {log_path}")
                    left = pending_work(full_status(chronicle))
                    peak = max(peak, left)
                    idle_polls = idle_polls + 1 if left == 0 else 0
                    progress.update(task, total=peak, completed=peak - left,
                                    description=f"workers: {left} item(s) of work left")
                    time.sleep(0.5)  # a progress display polls; correctness never depends on this
            if idle_polls < 2:
                console.print(f"[yellow]not idle after {timeout:.0f}s; finishing in-process (chronicle drain)")
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    chronicle.drain()  # anything the worker left (normally nothing) is done here, in-process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo")
    parser.add_argument("--events", type=int, default=0, help="also emit N generated CMS events")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the workers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    with Chronicle.open(notify=True) as chronicle:
        console.rule("[bold]Chronicle demo")
        console.print(f"data dir: {chronicle.settings.resolved_data_dir}")
        from .importers.wxr_import import import_wxr

        report = import_wxr(chronicle, WXR)
        console.print(f"imported {WXR.name}: {report.appended} events appended, {report.duplicates} duplicates")
        if args.events:
            result = chronicle.emit_many(list(generate(args.events)))
            console.print(f"emitted {args.events} generated events: {result.appended} appended")
        upload_photos(chronicle, console)
        run_workers_until_idle(chronicle, console, args.timeout)
        console.rule("[bold]chronicle status")
        subprocess.run([sys.executable, "-m", "workers", "status"], check=False)
        console.rule(f"[bold]chronicle search {QUERY!r}")
        subprocess.run([sys.executable, "-m", "workers", "search", QUERY, "--limit", "5"], check=False)


if __name__ == "__main__":
    main()
