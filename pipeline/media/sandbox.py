"""A helper process that decodes and encodes, so a hostile file can hang or crash only the helper.

Pillow's decoders are C code: a pathological file can spin in a loop no Python signal interrupts, or
allocate until the kernel kills the process. The media job therefore sends each image to a long-lived
helper (``python -m pipeline.media.sandbox``) over a pipe and waits with a deadline. On a timeout the
helper is killed and the image fails with a reason; on a crash likewise; the next image gets a fresh
helper. The helper's address space is capped (``RLIMIT_AS``), so an allocation bomb becomes a
``MemoryError`` in the helper instead of the OOM killer picking a victim. One helper per worker
process, started lazily and reused, costs one Python start-up (~0.3 s) per worker, not per image.

Protocol: 4-byte big-endian length + orjson body, one request and one response at a time.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from pipeline.media.blobs import store_environment
from pipeline.media.errors import MediaRejected, MediaUnavailable, classify
from pipeline.media.settings import MediaSettings

REPO = Path(__file__).resolve().parents[2]
_HEADER = struct.Struct(">I")


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = orjson.dumps(message)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _receive(stream: IO[bytes]) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return orjson.loads(_read_exact(stream, size))


def request(path: Path, mime: str, settings: MediaSettings, root: Path | str, sha256: str | None) -> dict[str, Any]:
    """``path``: a local file holding the original; ``root``: the media store's URL (or local root)."""
    return {"path": str(path), "mime": mime, "settings": settings.model_dump(mode="json"), "root": str(root),
            "sha256": sha256}


def handle(message: dict[str, Any]) -> dict[str, Any]:
    """Run one request (in the helper, or in-process with ``isolation=inline``); never raises."""
    from pipeline.media.process import process_original
    from pipeline.media.storage import MediaStore

    try:
        settings = MediaSettings.model_validate(message["settings"])
        result = process_original(Path(message["path"]), message["mime"], settings, MediaStore(message["root"]),
                                  message.get("sha256"))
        return {"ok": result}
    except BaseException as exc:  # the helper must answer for every input, whatever Pillow raised
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        error = classify(exc)
        return {"error": str(error), "permanent": error.permanent}


class Sandbox:
    """The parent's handle on one helper process."""

    def __init__(self, memory_limit_mb: int) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.started = 0
        self.environment: tuple[str | None, ...] = ()  # the object-store settings the helper inherited

    def _limit(self, pid: int) -> None:
        """Cap the helper from outside (``prlimit``): no ``preexec_fn``, which is unsafe with threads."""
        import resource

        resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))
        if self.memory_limit_mb:
            limit = self.memory_limit_mb * 2**20
            resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        self.environment = store_environment()
        self.started += 1
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.media.sandbox"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, cwd=REPO, env=env)
        self._limit(proc.pid)
        return proc

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def run(self, message: dict[str, Any], time_limit: float) -> dict[str, Any]:
        with self.lock:
            try:
                return self._exchange(message, time_limit)
            except BaseException:
                # Interrupted mid-request (a Celery soft time limit, Ctrl-C, a bug): the helper may still
                # be working on this image and would answer the *next* request with this one's result.
                self.stop()
                raise

    def _exchange(self, message: dict[str, Any], time_limit: float) -> dict[str, Any]:
        if self.proc is not None and self.environment != store_environment():
            self.stop()  # the helper opens the media store itself: new endpoint or credentials, new helper
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            try:
                self.proc = self._start()
            except OSError as exc:
                raise MediaUnavailable(f"cannot start the image helper process: {exc}") from exc
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            _send(proc.stdin, message)
        except OSError:
            raise MediaUnavailable("image helper process went away before the request") from None
        ready, _, _ = select.select([proc.stdout], [], [], time_limit)
        if not ready:
            raise MediaRejected(f"processing took longer than the time limit of {time_limit:g} s "
                                 "(CHRONICLE_MEDIA_TIME_LIMIT)")
        try:
            return _receive(proc.stdout)
        except (EOFError, OSError, struct.error):
            code = proc.wait()
            what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            raise MediaRejected(f"the decoder crashed on this file ({what})") from None


_SANDBOX: tuple[int, Sandbox] | None = None


def sandbox(memory_limit_mb: int) -> Sandbox:
    """This process's helper (a forked Celery child gets its own, never its parent's pipe)."""
    global _SANDBOX
    if _SANDBOX is None or _SANDBOX[0] != os.getpid() or _SANDBOX[1].memory_limit_mb != memory_limit_mb:
        _SANDBOX = (os.getpid(), Sandbox(memory_limit_mb))
    return _SANDBOX[1]


def run_isolated(message: dict[str, Any], settings: MediaSettings) -> dict[str, Any]:
    """Process one image per ``settings.isolation``; returns the helper's answer dict."""
    if settings.isolation == "inline":
        return handle(message)
    started = time.perf_counter()
    answer = sandbox(settings.memory_limit_mb).run(message, settings.time_limit)
    answer["wall"] = time.perf_counter() - started
    return answer


def main() -> None:
    """The helper's loop: one request in, one answer out, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent, which kills us
    from pipeline.media import process  # noqa: F401  (import Pillow & co. once, before the first request)

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print in a library must not corrupt the protocol
    while True:
        try:
            message = _receive(stdin)
        except EOFError:
            return
        _send(stdout, handle(message))


if __name__ == "__main__":
    main()
