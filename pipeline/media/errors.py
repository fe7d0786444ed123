"""The two kinds of failure the media pipeline distinguishes, because they are handled oppositely.

``MediaRejected`` (a ``PermanentError``): the input itself is the problem (not an image, a bomb, a lie
about its type); retrying cannot help, so the image fails at once with the message as the reason an
editor reads. ``MediaUnavailable`` (a ``TransientError``): the world is the problem (I/O, a busy API, a
crashed helper); retry with backoff. ``classify`` translates Pillow's and the OS's exceptions into one of
the two where they enter (the sandbox), so the rest of the pipeline decides by class.
"""

from __future__ import annotations

import errno

from pipeline.errors import ChronicleError, PermanentError, TransientError, is_permanent


class MediaError(ChronicleError):
    """Base of media failures; ``str(exc)`` is the human-readable reason recorded in the event."""

    @property
    def permanent(self) -> bool:
        return is_permanent(self)


class MediaRejected(MediaError, PermanentError):
    """The file is not an image Chronicle will process (corrupt, a bomb, over a limit)."""


class MediaUnavailable(MediaError, TransientError):
    """Processing failed for a reason outside the file (I/O, a crashed or hung helper)."""


# OS errors where waiting can help: the file may appear (a CMS still copying), the disk may free up.
# EACCES too: a CMS often copies a file, then fixes its permissions.
_TRANSIENT_ERRNOS = {errno.ENOENT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ENOSPC, errno.ETIMEDOUT,
                     errno.EACCES, errno.ESTALE}


def classify(exc: BaseException) -> MediaError:
    """Any exception raised while processing → a permanent or transient media error with a reason.

    Pillow reports corrupt data as ``OSError`` *without* an errno, ``SyntaxError``, ``ValueError`` or
    ``struct.error``; the operating system's errors carry an errno. That difference is the line
    between "this file is bad" and "try again".
    """
    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, TransientError):  # the object store slow or down (StoreUnavailable), and the like
        return MediaUnavailable(str(exc))
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return MediaUnavailable(f"I/O error: {exc.strerror or exc}")
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's outer bound (without importing Celery here)
        return MediaRejected("processing exceeded the worker's task time limit")
    if isinstance(exc, MemoryError):
        return MediaRejected("image needs more memory than allowed to decode")
    name = type(exc).__name__
    return MediaRejected(f"cannot decode image: {name}: {exc}" if str(exc) else f"cannot decode image: {name}")
