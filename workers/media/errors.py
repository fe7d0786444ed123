"""The two kinds of failure the media pipeline distinguishes, because they are handled oppositely.

``PermanentError``: the input itself is the problem (not an image, a bomb, a lie about its type);
retrying cannot help, so the image fails at once with the message as the reason an editor reads.
``TransientError``: the world is the problem (I/O, a busy API, a crashed helper); retry with backoff.
"""

from __future__ import annotations

import errno


class MediaError(Exception):
    """Base of media failures; ``str(exc)`` is the human-readable reason recorded in the event."""


class PermanentError(MediaError):
    permanent = True


class TransientError(MediaError):
    permanent = False


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
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"I/O error: {exc.strerror or exc}")
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's outer bound (without importing Celery here)
        return PermanentError("processing exceeded the worker's task time limit")
    if isinstance(exc, MemoryError):
        return PermanentError("image needs more memory than allowed to decode")
    name = type(exc).__name__
    return PermanentError(f"cannot decode image: {name}: {exc}" if str(exc) else f"cannot decode image: {name}")
