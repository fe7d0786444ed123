"""One exception hierarchy for everything a caller can get wrong or run into.

The tree (every error Chronicle raises on purpose is in it)::

    ChronicleError
    ├── PermanentError ·························· retrying cannot help: fix the input or the setup
    │   ├── InvalidEvent ························ an envelope or payload that can never be accepted
    │   │   └── UnknownEventType
    │   ├── ConcurrencyConflict ················· expected_version did not match
    │   ├── CorruptEvent ························ a recorded row that cannot be decoded
    │   ├── ProjectionError ····················· a handler failed; batch rolled back
    │   ├── NotFound ···························· no such failure, item, image…
    │   ├── RegistrationError ··················· two subsystems claimed one name
    │   ├── MediaRejected (pipeline.media) ······ not an image, a bomb, a lie about its type
    │   ├── EmbeddingRefused (pipeline.embeddings) the provider refused a text, or retries ran out
    │   └── WxrError (pipeline.importers) ······· an import file that cannot be read
    └── TransientError ·························· the world is the problem: a later attempt may pass
        ├── StoreUnavailable ···················· the log or read model: locked past the timeout,
        │                                         disk full, disk I/O error, PostgreSQL down
        ├── MediaUnavailable (pipeline.media) ··· I/O while processing, a crashed helper
        └── ProviderUnavailable ················· an API (embeddings, vision) answered 429/5xx or timed out

Permanent versus transient is a *class*, not an attribute: ``is_permanent`` answers from the class, and
foreign exceptions are translated into this tree where they enter (the SQL drivers in the stores, openai
in the embedder, Pillow and the OS in the media sandbox). Like httpx, the boundaries map classes to
outcomes in one place each: the CLI to exit codes (``pipeline.cli.app``), HTTP to status codes
(``pipeline.http.problems``), the job runner to retry or dead letter (``pipeline.jobs.execution``).
"""

from __future__ import annotations

from pydantic import ValidationError


class ChronicleError(Exception):
    """Base of every error Chronicle raises on purpose."""


class PermanentError(ChronicleError):
    """Retrying the same thing cannot succeed: the input or the configuration is the problem."""


class TransientError(ChronicleError):
    """Something outside Chronicle failed for now (a lock, a disk, a server); a later attempt may pass."""


class InvalidEvent(PermanentError):
    """An envelope or payload that can never be accepted: fix the input, do not retry.

    ``index`` is the event's position in the submitted batch (0-based) and ``field`` the offending field
    path, so a CMS developer can find the mistake without reading our code.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        self.index = index
        self.field = field
        where = []
        if index is not None:
            where.append(f"event #{index}")
        if field:
            where.append(f"field '{field}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.reason = message


class UnknownEventType(InvalidEvent):
    """The ``type`` is not in the catalogue."""


class ConcurrencyConflict(PermanentError):
    """``expected_version`` did not match the stream's version: somebody else wrote first."""

    def __init__(self, stream: str, expected: int, actual: int, *, index: int | None = None) -> None:
        self.stream, self.expected, self.actual, self.index = stream, expected, actual, index
        at = f"event #{index}: " if index is not None else ""
        super().__init__(
            f"{at}version conflict on stream '{stream}': expected version {expected}, stream is at {actual}"
        )


class CorruptEvent(PermanentError):
    """A recorded event cannot be decoded. Projectors stop here rather than silently skip it."""

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        super().__init__(f"event at position {position} cannot be decoded: {reason}")


class ProjectionError(PermanentError):
    """A handler failed on an event; the batch is rolled back and the checkpoint stays put."""

    def __init__(self, projection: str, position: int, reason: str) -> None:
        self.projection, self.position = projection, position
        super().__init__(f"projection '{projection}' failed at position {position}: {reason}")


class NotFound(PermanentError):
    """The thing asked for does not exist (a failure id, an image, an item)."""


class AccessDenied(PermanentError):
    """The credentials are valid but do not allow this: a scope too low, or a site outside the key's
    restriction (an event whose site cannot be derived needs an unrestricted key)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


class StoreUnavailable(TransientError):
    """The event log or the read model cannot be used right now: a lock held past the busy timeout, a
    full disk, a disk I/O error, the PostgreSQL server down. Nothing was written by the failed call (a
    batch is refused whole), so the same call succeeds once the store is back."""

    def __init__(self, store: str, reason: str) -> None:
        self.store, self.reason = store, reason
        super().__init__(f"{store} unavailable: {reason}")


class ProviderUnavailable(TransientError):
    """An API Chronicle calls (embeddings, vision) answered 429/5xx, timed out or was unreachable."""


#: Foreign exceptions that mean a bug or bad input wherever they surface: retrying changes nothing.
_PERMANENT_FOREIGN: tuple[type[BaseException], ...] = (TypeError, KeyError, ValidationError)


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying ``exc`` is pointless, decided by its class.

    Chronicle's own errors say so by their base. Other exceptions are transient unless they are bad
    input or a programming error (pydantic's ``ValidationError``, ``TypeError``, ``KeyError``): I/O,
    timeouts and servers may recover.
    """
    if isinstance(exc, PermanentError):
        return True
    if isinstance(exc, TransientError):
        return False
    return isinstance(exc, _PERMANENT_FOREIGN)
