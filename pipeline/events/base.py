"""The machinery every event type shares: the base model, the registry and the field types.

An event type is a pydantic model registered under its name with ``@event(...)``. The registry is the
catalogue: the store validates against it before writing, the projector looks handlers up by the same
names, and ``chronicle events catalogue`` prints it. Keeping one registry means a type cannot be
accepted by the log yet unknown to the read model without a test noticing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints


def _id_from_int(value: Any) -> Any:
    # CMSs use integer keys as often as UUIDs; both become text so joins never compare 1 with "1".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The constraints come first so pydantic-core checks them in Rust on the str schema; listed after the
# BeforeValidator they would run as two Python validators per id (a third of a small event's cost).
Id = Annotated[str, StringConstraints(min_length=1, max_length=200), BeforeValidator(_id_from_int)]
Slug = Annotated[str, StringConstraints(max_length=500)]
Title = Annotated[str, StringConstraints(max_length=2000)]
LongText = Annotated[str, StringConstraints(max_length=2_000_000)]
Json = dict[str, Any]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class EventData(BaseModel):
    """Base of every event payload.

    ``partial`` events (updates) store only the fields the sender set, so a missing field means
    "unchanged" and an explicit ``null`` means "clear it"; other events store every field with its
    default filled in, so the log reads on its own without knowing today's defaults.
    """

    # defer_build: the validator is built when a type is first validated, not when the catalogue loads:
    # a command that validates one event type (or none: `chronicle status`) builds one, not ~50.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    stream_prefix: ClassVar[str] = ""
    stream_key: ClassVar[str] = "id"
    partial: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    #: The payload field naming the event's site (``pipeline.sites``); absent or null: look further.
    site_field: ClassVar[str] = "site_id"
    #: Payload fields that point at another stream whose site this event shares: field → stream prefix.
    site_via: ClassVar[dict[str, str]] = {}
    #: Payload fields carrying personal data: stored encrypted under their subject's key (``pipeline.shredding``).
    personal: ClassVar[tuple[str, ...]] = ()
    #: The payload field naming the data subject (a user id…); absent: ``metadata.subject``, else the stream's.
    subject_field: ClassVar[str | None] = None

    @classmethod
    def default_stream(cls, data: dict[str, Any]) -> str | None:
        key = data.get(cls.stream_key)
        return f"{cls.stream_prefix}-{key}" if key is not None and cls.stream_prefix else None

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=self.partial)


CATALOGUE: dict[str, type[EventData]] = {}
#: The catalogue's types with personal fields: what sealing looks at (most events have none, and a
#: dict lookup tells so without reading a model's class attributes).
PERSONAL: dict[str, type[EventData]] = {}

E = TypeVar("E", bound=type[EventData])


def event(name: str, *, stream: str, key: str = "id", version: int = 1, partial: bool = False,
          summary: str = "", site: str = "site_id", site_via: dict[str, str] | None = None,
          personal: tuple[str, ...] = (), subject: str | None = None) -> Callable[[E], E]:
    """Register an event type under ``name``; ``stream``-``data[key]`` is its default stream.

    ``site`` names the payload field holding the site id and ``site_via`` the fields pointing at a stream
    of the same site (``pipeline.sites`` derives an event's site for site-restricted API keys).
    ``personal`` marks the fields erasure must reach and ``subject`` the field naming whose they are."""

    def register(cls: E) -> E:
        if name in CATALOGUE:
            raise ValueError(f"event type {name!r} registered twice")
        cls.event_type = name
        cls.schema_version = version
        cls.stream_prefix = stream
        cls.stream_key = key
        cls.partial = partial
        cls.site_field = site
        cls.site_via = dict(site_via or {})
        cls.personal = tuple(personal)
        cls.subject_field = subject
        cls.summary = summary or (cls.__doc__ or "").strip().splitlines()[0]
        CATALOGUE[name] = cls
        if cls.personal:
            PERSONAL[name] = cls
        return cls

    return register
