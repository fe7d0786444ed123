"""The read model's canonical values (Unix seconds, canonical JSON text), as plain functions.

Apart from ``db.types`` (the SQLAlchemy column types that use them) so that the projector's hot path
and the command line can convert values without importing SQLAlchemy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def to_unix(value: Any) -> int | None:
    """A timestamp as whole Unix seconds (floor), from an int, a float or a datetime (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() // 1)
    if isinstance(value, bool):
        raise TypeError("a timestamp cannot be a boolean")
    return int(value // 1)


def to_json_text(value: Any) -> str | None:
    """Any JSON value (a string too: it is stored quoted) as canonical JSON text; None is SQL NULL."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
