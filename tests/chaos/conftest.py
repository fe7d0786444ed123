"""Chaos fixtures: the bounded/full switch, figures printed at the end, a Redis we may stop, and a
fleet of real ``chronicle worker`` processes we may ``kill -9`` and restart.

``CHAOS_FULL=1`` (``make chaos``) runs every scenario at the size the issue asks for; without it the
same scenarios run small enough for ``make test`` on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.helpers import REPO, wait_until

FULL = os.environ.get("CHAOS_FULL", "").lower() in ("1", "true", "yes")
FIGURES: list[str] = []


def figure(line: str) -> None:
    """Record a figure for the end-of-run summary (and print it now, for ``-s`` runs)."""
    FIGURES.append(line)
    print(f"[chaos] {line}", flush=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section(f"chaos figures ({'full' if FULL else 'bounded'} run)")
        for line in FIGURES:
            terminalreporter.write_line(line)


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of our own on a spare port, which a test may stop and start again.

    Every chaos test that runs workers uses one rather than a database of the shared server: the
    shared ``redis_db_url`` fixture picks one of 14 databases at random and flushes it, so two test
    runs on one machine can collide — one flushing (or a worker of one consuming) the other's
    messages, which looks exactly like the message loss these tests hunt for."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, timeout=20, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """SIGKILL: an outage, not a polite shutdown (and with --save '' nothing survives it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        wait_until(lambda: not self._ping(), timeout=10, what="redis-server down")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server binary is not installed, and CI=true: CI must run this test")
        pytest.skip("redis-server binary is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Worker:
    """One ``chronicle worker`` role (its queue arguments) and its current process."""

    name: str
    args: tuple[str, ...]
    log: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    kills: list[str] = field(default_factory=list)


class Fleet:
    """Real ``chronicle worker`` processes, each in its own session so ``kill -9`` reaches the whole
    process group (main process, pool children, embedded beat) at once — what the OOM killer or a
    container runtime does."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.workers: dict[str, Worker] = {}
        self.self_exits = 0
        logs.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, *args: str) -> Worker:
        worker = Worker(name, args, self.logs / f"{name}.log")
        self.workers[name] = worker
        self.start(worker)
        return worker

    def start(self, worker: Worker) -> None:
        worker.starts += 1
        with open(worker.log, "ab") as out:
            worker.proc = subprocess.Popen([sys.executable, "-m", "workers", "worker", *worker.args], cwd=REPO,
                                           env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    def kill9(self, worker: Worker, *, child_only: bool = False) -> str:
        """``kill -9`` the worker (whole group), or only one pool child (Celery then respawns it and
        ``task_reject_on_worker_lost`` gives its message back). Returns what was killed."""
        proc = worker.proc
        assert proc is not None
        children = child_pids(proc.pid) if child_only else []
        if children:
            os.kill(children[-1], signal.SIGKILL)
            what = "pool child"
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            self.start(worker)  # the supervisor (systemd, k8s) restarts it
            what = "whole worker"
        worker.kills.append(what)
        return what

    def supervise(self) -> list[str]:
        """Restart every worker whose process exited on its own, as systemd/k8s would; returns their
        names. (Celery's main process exits with ``WorkerLostError('Could not start worker
        processes')`` when a pool child is killed while the pool is still starting.)"""
        restarted = []
        for worker in self.workers.values():
            if worker.proc is not None and worker.proc.poll() is not None:
                worker.kills.append(f"exited by itself ({worker.proc.returncode})")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.proc.pid, signal.SIGKILL)  # orphans of the dead main process
                self.start(worker)
                restarted.append(worker.name)
        self.self_exits += len(restarted)
        return restarted

    def stop_all(self) -> None:
        for worker in self.workers.values():
            proc = worker.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # a killed group may leave orphans (a pool child whose parent died): reap them by group
        for worker in self.workers.values():
            if worker.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for worker in self.workers.values():
            text = worker.log.read_text(errors="replace").splitlines() if worker.log.exists() else []
            out.append(f"--- {worker.name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[list[Fleet]]:
    """Fleets created through this fixture are always stopped, whatever the test did."""
    fleets: list[Fleet] = []
    try:
        yield fleets
    finally:
        for fleet in fleets:
            fleet.stop_all()


def host_fleets(count: int, shared: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                fleet_factory: list[Fleet], per_host: list[dict[str, str]] | None = None) -> list[Fleet]:
    """``count`` hosts simulated on one machine: each its own, unrelated data directory
    (``tmp_path/hostN/data``) and fleet, sharing only what ``shared`` names (broker, log, S3). Host 1 is
    the CMS/API host: this process gets its environment, so a ``Chronicle(Settings())`` here is host 1's."""
    fleets = []
    for n in range(1, count + 1):
        env = {**shared, "CHRONICLE_DATA_DIR": str(tmp_path / f"host{n}" / "data"), **(per_host or [{}] * count)[n - 1]}
        fleets.append(Fleet(env, tmp_path / f"logs{n}"))
    for key, value in fleets[0].env.items():
        monkeypatch.setenv(key, value)
    fleet_factory.extend(fleets)
    return fleets


def elapsed(started: float) -> float:
    return time.monotonic() - started


def port_outside_the_ephemeral_range() -> int:
    """A free port below the kernel's ephemeral range. While the proxy is cut, clients reconnecting to
    its port on 127.0.0.1 may be given that very port as their own source port (a TCP self-connect),
    which then holds it and makes ``restore()`` fail with EADDRINUSE; a port the kernel never hands out
    as a source port cannot be taken that way."""
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10_000, low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class TcpProxy:
    """A TCP proxy on a spare port in front of a shared server (RabbitMQ): ``cut()`` drops every
    connection and refuses new ones, ``restore()`` listens again on the same port. A broker outage for
    this test only, without stopping the server other test runs use.

    A cut must be complete. ``close()`` of a listening socket does not stop it while another thread is
    blocked in ``accept()`` on it: the kernel keeps the socket (and its port) open until that call
    returns, so the old listener went on accepting, one reconnecting client got through to the broker
    during the "outage", and when no client came ``restore()`` failed with ``EADDRINUSE`` (the rare
    failure of the RabbitMQ outage scenario). So ``cut()`` first ``shutdown()``s the listener, which
    wakes the blocked ``accept()`` on Linux, and waits for the accept thread to end; a connection
    accepted or connected upstream while a cut was under way is closed, not piped."""

    def __init__(self, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.port = port_outside_the_ephemeral_range()
        self._threading = threading
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0  # connections piped to the target (a figure for the test's failure message)

    def restore(self) -> None:
        assert self._listener is None, "the proxy is already listening"
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        self._acceptor = self._threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def _live(self, listener: socket.socket) -> bool:
        return self._listener is listener  # under self._lock

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._live(listener):  # accepted while a cut was under way
                    client.close()
                    return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self._live(listener):
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): close() alone does not
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(10)
            assert not self._acceptor.is_alive(), "the proxy's accept thread did not stop"
            self._acceptor = None
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
