"""One exception hierarchy for everything a caller can get wrong or run into.

Like httpx, the boundaries (CLI, HTTP, Celery tasks) map these to exit codes, status codes and task
outcomes in one place each; nothing inside the pipeline catches bare ``Exception`` to guess.
"""

from __future__ import annotations


class ChronicleError(Exception):
    """Base of every error Chronicle raises on purpose."""


class InvalidEvent(ChronicleError):
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


class ConcurrencyConflict(ChronicleError):
    """``expected_version`` did not match the stream's version: somebody else wrote first."""

    def __init__(self, stream: str, expected: int, actual: int, *, index: int | None = None) -> None:
        self.stream, self.expected, self.actual, self.index = stream, expected, actual, index
        at = f"event #{index}: " if index is not None else ""
        super().__init__(
            f"{at}version conflict on stream '{stream}': expected version {expected}, stream is at {actual}"
        )


class CorruptEvent(ChronicleError):
    """A recorded event cannot be decoded. Projectors stop here rather than silently skip it."""

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        super().__init__(f"event at position {position} cannot be decoded: {reason}")


class ProjectionError(ChronicleError):
    """A handler failed on an event; the batch is rolled back and the checkpoint stays put."""

    def __init__(self, projection: str, position: int, reason: str) -> None:
        self.projection, self.position = projection, position
        super().__init__(f"projection '{projection}' failed at position {position}: {reason}")
