"""The media storage seam: content-addressed objects on local disk or on S3-compatible object storage.

``CHRONICLE_MEDIA_URL`` picks the backend: unset or a path → ``LocalBlobs`` (the media root, exactly as
before: files, ``flock`` for the collector, rename for atomicity); ``s3://bucket/prefix`` → ``ObjectBlobs``
on obstore (Rust ``object_store``: one dependency, no boto stack, conditional ``PutMode.Create`` that sends
``If-None-Match: *``, presigning). Keys are the relative paths used today (``originals/ab/<sha><ext>``,
``variants/ab/<key>.<ext>``…), so events, manifests and rows are the same under both.

Why these operations and nothing more: every write is whole-or-nothing (a rename locally; a single PUT,
which S3 makes visible only when complete), and the writes that may race (two hosts storing the same
original, two workers encoding the same variant) use ``put_new``: the first wins, the second learns the
object exists, and since the key is the content's hash, both meant the same bytes.

Errors: a missing object is ``FileNotFoundError`` (as for files); the store being slow, down or
answering 5xx/503 SlowDown is ``StoreUnavailable`` (a ``TransientError``: retried, then dead-lettered and
redrivable). Messages keep the key and the kind of failure only, never the endpoint's credentials or a
signed URL (obstore's messages carry the request URL, and ours are redacted and cut to the first line).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

from pipeline.errors import StoreUnavailable
from pipeline.media.errors import MediaRejected
from pipeline.redact import redact


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    mtime: float  # Unix seconds: what the collector's grace period compares


@runtime_checkable
class Blobs(Protocol):
    """What the media pipeline needs from a store (keys are ``/``-separated, relative)."""

    url: str

    def info(self, key: str) -> BlobInfo | None: ...
    def read(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes) -> None: ...
    def put_new(self, key: str, data: bytes | Path) -> bool: ...
    def touch(self, key: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def walk(self, prefix: str) -> Iterator[BlobInfo]: ...
    def fetch(self, key: str) -> Any: ...  # context manager → a local Path to read the object from
    def lock(self, *, exclusive: bool = False) -> Any: ...  # context manager


def check_key(relative: str) -> str:
    """A key as sent by a CMS or found in a manifest: relative, no NUL, no ``..``/``.`` segment."""
    if not relative or "\x00" in relative:
        raise MediaRejected("original_path is empty or contains a NUL byte")
    if relative.startswith("/") or Path(relative).is_absolute():
        raise MediaRejected(f"original_path {relative!r} must be relative to the media root")
    parts = [p for p in relative.split("/") if p]
    if any(p in ("..", ".") for p in parts):
        raise MediaRejected(f"original_path {relative!r} leaves the media root")
    return "/".join(parts)


# -- local disk -------------------------------------------------------------------------------------


class LocalBlobs:
    """Files under one media root; every path handed out or accepted stays inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)

    def path(self, relative: str) -> Path:
        """``relative`` → an absolute path, refusing anything outside the root.

        The path is resolved first and then compared, so ``a/../../etc/passwd`` and a symlink to
        ``/etc`` both fail (``a/../b`` inside the root is fine, as it always was).
        """
        if not relative or "\x00" in relative:
            raise MediaRejected("original_path is empty or contains a NUL byte")
        candidate = Path(relative)
        if candidate.is_absolute():
            raise MediaRejected(f"original_path {relative!r} must be relative to the media root")
        resolved = (self.root / candidate).resolve()
        if not resolved.is_relative_to(self.root):
            raise MediaRejected(f"original_path {relative!r} leaves the media root")
        return resolved

    def info(self, key: str) -> BlobInfo | None:
        path = self.path(key)
        if not path.is_file():
            return None
        stat = path.stat()
        return BlobInfo(key, stat.st_size, stat.st_mtime)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_new(self, key: str, data: bytes | Path) -> bool:
        path = self.path(key)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)
            tmp.replace(path)  # same content by construction: a concurrent winner is simply replaced
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def touch(self, key: str) -> None:
        os.utime(self.path(key))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def walk(self, prefix: str) -> Iterator[BlobInfo]:
        base = self.root / prefix
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.name.startswith((".tmp-", ".upload-")) or path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            yield BlobInfo(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime)

    @contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        path.stat()  # FileNotFoundError now, like the object store
        yield path

    @contextmanager
    def lock(self, *, exclusive: bool = False) -> Iterator[None]:
        """The media root's collector lock (an ``flock`` on ``<root>/.gc.lock``): see ``MediaStore.lock``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".gc.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# -- S3-compatible object storage -------------------------------------------------------------------


def _unavailable(exc: BaseException, key: str) -> StoreUnavailable:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return StoreUnavailable("object store", redact(f"{type(exc).__name__} on {key!r}: {first}")[:300])


class ObjectBlobs:
    """Objects under ``s3://bucket/prefix`` via obstore.

    Endpoint, region and credentials come from the usual ``AWS_*`` variables (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ALLOW_HTTP`` for a local
    server), read by obstore itself, so they never pass through Chronicle's settings, events or logs.
    The client retries a little itself (``CHRONICLE_MEDIA_STORE_RETRIES``, default 2) and gives up
    after ``CHRONICLE_MEDIA_STORE_TIMEOUT`` seconds: the job's own backoff and the dead letter
    handle longer outages, so a worker is never stuck minutes inside one request.
    """

    def __init__(self, url: str) -> None:
        from obstore.store import S3Store

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"unsupported media store URL scheme {parsed.scheme!r} (use a path or s3://bucket/prefix)")
        self.url = f"s3://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        timeout = float(os.environ.get("CHRONICLE_MEDIA_STORE_TIMEOUT", "10"))
        retry: Any = {"max_retries": int(os.environ.get("CHRONICLE_MEDIA_STORE_RETRIES", "2")),
                      "retry_timeout": timedelta(seconds=timeout),
                      "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2),
                                  "base": 2}}
        config: Any = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            config["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                config["allow_http"] = True
        client: Any = {"timeout": timedelta(seconds=timeout), "connect_timeout": timedelta(seconds=min(timeout, 5))}
        self.store = S3Store(parsed.netloc, prefix=parsed.path.strip("/") or None, config=config,
                             client_options=client, retry_config=retry)
        self.scratch = Path(tempfile.gettempdir()) / "chronicle-media"

    def _call(self, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import obstore.exceptions as errors

        try:
            return fn(self.store, *args, **kwargs)
        except FileNotFoundError:
            raise
        except (errors.AlreadyExistsError, errors.PreconditionError, errors.InvalidPathError):
            raise
        except Exception as exc:  # GenericError (5xx, SlowDown, connection refused, timeout) and the rest
            raise _unavailable(exc, key) from None

    def info(self, key: str) -> BlobInfo | None:
        import obstore

        try:
            meta = self._call(key, obstore.head, check_key(key))
        except FileNotFoundError:
            return None
        return BlobInfo(key, int(meta["size"]), meta["last_modified"].timestamp())

    def read(self, key: str) -> bytes:
        import obstore

        result = self._call(key, obstore.get, check_key(key))
        try:
            return bytes(result.bytes())
        except Exception as exc:  # the body stream broke off midway
            raise _unavailable(exc, key) from None

    def put(self, key: str, data: bytes) -> None:
        import obstore

        self._call(key, obstore.put, check_key(key), data)

    def put_new(self, key: str, data: bytes | Path) -> bool:
        """Conditional PUT (``If-None-Match: *``): False when the object already exists."""
        import obstore
        import obstore.exceptions as errors

        payload = data if isinstance(data, bytes) else data.read_bytes()
        try:
            self._call(key, obstore.put, check_key(key), payload, mode="create")
        except (errors.AlreadyExistsError, errors.PreconditionError):
            return False
        return True

    def touch(self, key: str) -> None:
        """Refresh the object's Last-Modified (what gc's grace period reads): a copy onto itself."""
        import obstore

        key = check_key(key)
        self._call(key, obstore.put, key, self.read(key))

    def delete(self, key: str) -> None:
        import obstore

        try:
            self._call(key, obstore.delete, check_key(key))
        except FileNotFoundError:
            return

    def walk(self, prefix: str) -> Iterator[BlobInfo]:
        import obstore

        for batch in self._call(prefix, obstore.list, prefix.strip("/") + "/"):
            for meta in batch:
                yield BlobInfo(meta["path"], int(meta["size"]), meta["last_modified"].timestamp())

    def stream(self, key: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of an object, for serving it without holding it in memory."""
        import obstore

        result = self._call(key, obstore.get, check_key(key))
        size = int(result.meta["size"])

        def chunks() -> Iterator[bytes]:
            for chunk in result:
                yield bytes(chunk)

        return size, chunks()

    def sign(self, key: str, seconds: int = 3600) -> str:
        """A presigned GET URL (the credentials stay out of it; only a signature valid ``seconds``)."""
        import obstore

        return str(self._call(key, obstore.sign, "GET", check_key(key), timedelta(seconds=seconds)))

    @contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        """Download to a private temporary file (decoders want a seekable file), removed afterwards."""
        data = self.read(key)
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, suffix=Path(key).suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    @contextmanager
    def lock(self, *, exclusive: bool = False) -> Iterator[None]:
        """No cross-host lock on object storage: the collector relies on its grace period instead
        (uploads and reusing jobs refresh Last-Modified; gc re-checks before deleting). See docs/media.md."""
        yield


#: What configures an object-store client: a client (or the image helper holding one) made under other
#: values is stale.
STORE_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ALLOW_HTTP",
                     "CHRONICLE_MEDIA_STORE_TIMEOUT", "CHRONICLE_MEDIA_STORE_RETRIES")


def store_environment() -> tuple[str | None, ...]:
    """The current values of ``STORE_ENVIRONMENT``."""
    return tuple(os.environ.get(name) for name in STORE_ENVIRONMENT)


@lru_cache(maxsize=8)
def _object_blobs(url: str, _env: tuple[str | None, ...]) -> ObjectBlobs:
    """One client (and its connection pool) per store and configuration, reused by every job and request."""
    return ObjectBlobs(url)


def open_blobs(url: str | Path) -> Blobs:
    """``s3://bucket/prefix`` → object storage; anything else is a local directory."""
    text = str(url)
    if "://" in text:
        return _object_blobs(text, store_environment())
    return LocalBlobs(Path(text))
