"""Process and condition helpers for end-to-end tests: wait on conditions, never on sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], *, timeout: float = 60, what: str = "condition",
               explain: Callable[[], str] | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail loudly with ``what`` on timeout, and
    with ``explain()`` (what is still behind, computed at the moment of the timeout) when given: a
    timeout that names nothing cannot be diagnosed from a CI log."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = ""
            if explain is not None:
                try:
                    detail = f"; behind: {explain()}"
                except Exception as exc:  # the report must not hide the timeout itself
                    detail = f"; (could not say what is behind: {type(exc).__name__}: {exc})"
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(0.05)


def cli(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run ``chronicle …`` as a user would, in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "workers", *args], input=input, capture_output=True,
                          env={**os.environ, **(env or {})}, cwd=REPO, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"chronicle {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


@contextmanager
def worker_process(*args: str, env: dict[str, str] | None = None,
                   log: Path | None = None) -> Iterator[subprocess.Popen]:
    """A real ``chronicle worker`` process; stopped (warm shutdown, then kill) on exit."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "workers", "worker", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc
    finally:
        stop_process_group(proc)
        if log:
            out.close()


def stop_process_group(proc: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM) of a process started with ``start_new_session``, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s: a server under test stops either way."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def writer_processes(scratch: Path | None = None) -> list[int]:
    """Pids of live rebuild writer processes (``python -m pipeline.replay_writer``), of ``scratch`` only
    if given (Linux: read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if b"pipeline.replay_writer" in argv and state != "Z" and (
                scratch is None or str(scratch).encode() in argv):
            found.append(int(entry.name))
    return found
