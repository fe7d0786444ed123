"""Fair lanes under one ``chronicle worker``: one Celery worker process (with its own pool) per lane.

Why processes and not one pool: a Celery pool slot runs whatever message it took, so with one pool a
minute of embedding work holds a slot a projection catch-up (the page an editor is looking at) needs.
Priorities do not help once every slot is busy, and bounded slices alone only shorten the wait. So
the default worker (no ``-Q``) starts one Celery worker per lane, each consuming only its queues:

==============  ======================  =====  =====  ============================================
lane            queues                  nice   pool   why
==============  ======================  =====  =====  ============================================
``projections`` projections (+ sweeper)   0      2    cheap, latency-critical: never waits behind others
``media``       media                    +5      1    thumbnails an editor waits for; never behind embeddings
``embeddings``  embeddings, vectors     +10      1    expensive, deferrable: yields the CPU to the others
==============  ======================  =====  =====  ============================================

Two pool processes for ``projections``: its queue also carries the sweep, and each catch-up ends with
the reactor's dispatch. Both take a second or more on a loaded machine, and the sweep after a restart
takes longest. With one slot, a fresh page's catch-up waited behind them (measured: 1.46 s behind a
1.38 s sweep, docs/reliability.md finding 15). Two catch-ups at once stay correct: the projector
serialises on the database write lock, and the reactor moves its checkpoint with compare-and-set.

The ``nice`` values matter on a small machine: the local model keeps every core busy, and the kernel
then runs the projections first. Every lane's tasks are also bounded (``CHRONICLE_TASK_SLICE_SECONDS``),
so a lane's own backlog never holds its slot for minutes either.

This process only supervises: it imports neither Celery nor the pipeline's heavy modules, starts each
lane with ``fork+exec`` (nothing of ours crosses a fork), restarts a lane that exits, forwards
SIGTERM/SIGINT for a warm shutdown, and its lanes die with it (``PR_SET_PDEATHSIG``). All of them share
one process group, so ``kill -9`` of the group (OOM killer, container stop) takes the whole worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("chronicle.lanes")


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    queues: tuple[str, ...]
    nice: int = 0
    beat: bool = False
    pool: int = 1  # pool processes, unless ``-c`` says otherwise


LANES = (
    Lane("projections", ("projections",), nice=0, beat=True, pool=2),
    Lane("media", ("media",), nice=5),
    Lane("embeddings", ("embeddings", "vectors"), nice=10),
)

_PR_SET_PDEATHSIG = 1


def lane_argv(lane: Lane, *, loglevel: str, concurrency: int | None, beat: bool, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "workers", "worker", "-Q", ",".join(lane.queues), "-n", f"{lane.name}@%h",
            "--loglevel", loglevel, "--beat" if beat and lane.beat else "--no-beat",
            "-c", str(concurrency or lane.pool)]
    return argv + extra


def _preexec(nice: int) -> None:  # runs in the child between fork and exec: no locks, no threads here
    if nice:
        os.nice(nice)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Runs the lanes until SIGTERM/SIGINT; restarts a lane that exits by itself."""

    RESTART_DELAY = 1.0

    def __init__(self, lanes: tuple[Lane, ...], *, loglevel: str = "INFO", concurrency: int | None = None,
                 beat: bool = True, extra: list[str] | None = None) -> None:
        self.lanes = lanes
        self.loglevel, self.concurrency, self.beat, self.extra = loglevel, concurrency, beat, list(extra or [])
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, lane: Lane) -> None:
        argv = lane_argv(lane, loglevel=self.loglevel, concurrency=self.concurrency, beat=self.beat,
                         extra=self.extra)
        env = {**os.environ, "CHRONICLE_WORKER_LANE": lane.name}
        self.procs[lane.name] = subprocess.Popen(argv, env=env, preexec_fn=lambda: _preexec(lane.nice))

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        names = ", ".join(f"{lane.name} ({'+'.join(lane.queues)})" for lane in self.lanes)
        print(f"chronicle worker: lanes {names}", flush=True)
        for lane in self.lanes:
            self.start(lane)
        exited_at: dict[str, float] = {}
        while not self.stopping:
            time.sleep(0.2)
            for lane in self.lanes:
                proc = self.procs[lane.name]
                if proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                if lane.name not in exited_at:
                    print(f"chronicle worker: lane {lane.name} exited ({proc.returncode}); restarting",
                          file=sys.stderr, flush=True)
                    exited_at[lane.name] = now
                if now - exited_at[lane.name] >= self.RESTART_DELAY:
                    del exited_at[lane.name]
                    self.start(lane)
        deadline = time.monotonic() + 60
        for proc in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return 0
