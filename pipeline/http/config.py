"""The HTTP server's own knobs, on top of the core ``Settings`` (same ``CHRONICLE_`` prefix).

Kept apart from ``pipeline.settings`` so the core never learns about tokens or body limits, and so a
process that only emits events in Python does not carry HTTP configuration around.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr

from ..settings import Settings

LOOPBACK = "127.0.0.1"


class HttpSettings(Settings):
    """Everything ``chronicle serve`` reads from the environment."""

    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for writes and admin endpoints. Unset: localhost only."
    )
    public: list[Literal["media", "search"]] = Field(
        default_factory=list,
        description="What answers without a key when auth is on (JSON list): \"media\" (files under /media/), "
                    "\"search\" (GET /search over published content only). Default: nothing.")
    write_rate: float = Field(default=20.0, ge=0, description="Writes per second per key, sustained (0: no limit).")
    write_burst: int = Field(default=100, ge=1, description="Writes per key in a burst above the rate.")
    search_rate: float = Field(default=5.0, ge=0, description="Searches per second per key, sustained (0: no limit).")
    search_burst: int = Field(default=20, ge=1, description="Searches per key in a burst above the rate.")
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body for POST /events (413 above)."
    )
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest multipart body for POST /images (413 above)."
    )

    @classmethod
    def from_core(cls, settings: Settings | None) -> HttpSettings:
        """Lift core settings into HTTP settings; HTTP-only fields still come from the environment."""
        if settings is None:
            return cls()
        if isinstance(settings, HttpSettings):
            return settings
        return cls(**settings.model_dump(exclude_unset=False))

    @property
    def token(self) -> str | None:
        value = self.api_token.get_secret_value() if self.api_token else ""
        return value or None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost`` included)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_bind_host(host: str, settings: HttpSettings, *, keys: bool = False) -> tuple[str, str | None]:
    """The host to bind and, when we overrode the caller, a message saying why.

    Without a token or an API key (``keys``: one was ever created) every endpoint is open, so the
    server refuses to listen beyond this machine.
    """
    if settings.token or keys or is_loopback(host):
        return host, None
    return LOOPBACK, (
        f"no CHRONICLE_API_TOKEN or API key configured: binding to {LOOPBACK} instead of {host} "
        "(set a token to accept connections from other machines)"
    )
