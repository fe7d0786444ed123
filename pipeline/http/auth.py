"""Who is asking: scoped API keys (``pipeline.keys``), the ``CHRONICLE_API_TOKEN`` admin key, public access.

**Auth is on** when ``CHRONICLE_API_TOKEN`` is set or a key was ever created (a revoked one counts, so
revoking the last key never reopens the server). Then every route needs a key whose scope and sites
allow it (the matrix is in docs/http.md), except what ``CHRONICLE_PUBLIC`` opens. **Auth off** (no
token, no key): everything is open, and ``chronicle serve`` binds to localhost only
(``config.safe_bind_host``).

Credentials: ``Authorization: Bearer <key>``; the page (only ``GET /``) also reads the
``chronicle_key`` cookie its key field sets, so a server-rendered page can show what the key allows.
The API routes never read the cookie, so a forged cross-site request carries no credentials.
Comparisons are constant-time: the token by ``hmac.compare_digest``, keys by their digests.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..keys import SCOPES, KeyStore
from .problems import ApiError

bearer = HTTPBearer(auto_error=False, description="An API key (`chronicle keys create`) or CHRONICLE_API_TOKEN.")
PAGE_COOKIE = "chronicle_key"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``scope`` None: anonymous (auth on, no key). ``restricted``: only ``sites`` (which may
    be empty: a key of a team that has no site yet sees nothing)."""

    id: str | None
    scope: str | None
    sites: tuple[str, ...] = ()
    public: bool = False  #: anonymous, let in by ``CHRONICLE_PUBLIC``
    restricted: bool = False

    @property
    def unrestricted(self) -> bool:
        return not self.restricted

    @property
    def actor(self) -> str | None:
        """What the log records as ``metadata.actor`` for this caller's appends."""
        return None if self.id is None else f"key:{self.id}"

    def allows(self, scope: str) -> bool:
        return self.scope is not None and SCOPES.index(self.scope) >= SCOPES.index(scope)

    def sees(self, site: str | None) -> bool:
        """Whether a row, event or hit of ``site`` (None: underivable) is visible to this caller."""
        return self.unrestricted or (site is not None and site in self.sites)


LOCAL = Principal(id=None, scope="admin")  # auth off
ANONYMOUS = Principal(id=None, scope=None)
TOKEN = Principal(id="token", scope="admin")


def tokens_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Authenticator:
    """One per app: the key store, the token, and the sites of a team (``team_sites``: from the read
    model, asked per request so a team's new site counts as soon as it is projected)."""

    def __init__(self, keys: KeyStore, token: str | None,
                 team_sites: Callable[[tuple[str, ...]], set[str]] | None = None) -> None:
        self.keys = keys
        self.token = token
        self.team_sites = team_sites
        self._keys_seen = False

    def auth_on(self) -> bool:
        if self.token is not None or self._keys_seen:
            return True
        self._keys_seen = self.keys.any()  # keys are never deleted: once true, true for good
        return self._keys_seen

    def identify(self, presented: str | None) -> Principal:
        """``presented``'s principal; 403 for credentials that are no (longer a) key."""
        if not self.auth_on():
            return LOCAL
        if not presented:
            return ANONYMOUS
        if self.token is not None and tokens_match(presented, self.token):
            return TOKEN
        key = self.keys.authenticate(presented)
        if key is None:
            raise ApiError(403, "forbidden", "the bearer token is not a valid API key (unknown or revoked)",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if key.unrestricted:
            return Principal(id=key.id, scope=key.scope)
        sites = set(key.sites)
        if key.teams and self.team_sites is not None:
            sites |= self.team_sites(key.teams)
        return Principal(id=key.id, scope=key.scope, sites=tuple(sorted(sites)), restricted=True)


def authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


async def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                    ) -> Principal:
    """The caller, from the Authorization header (a non-Bearer scheme counts as none)."""
    presented = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    return await run_in_threadpool(authenticator(request).identify, presented)


async def page_principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                         ) -> Principal:
    """For ``GET /`` and ``GET /media/…`` (reads with no side effect, what a browser loads by itself):
    the header, else the page's cookie; a stale cookie is simply anonymous."""
    presented = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    presented = presented or request.cookies.get(PAGE_COOKIE) or None
    try:
        return await run_in_threadpool(authenticator(request).identify, presented)
    except ApiError:
        return ANONYMOUS


def require(scope: str, *, unrestricted: bool = False, public: str | None = None, cookie: bool = False,
            ) -> Callable[..., object]:
    """A dependency answering 401 (no key), 403 (scope too low, or a site-restricted key where every
    site is involved) or the caller. ``public``: the ``CHRONICLE_PUBLIC`` entry that opens the route;
    ``cookie``: the page's cookie counts too (``page_principal``)."""

    async def dependency(request: Request,
                         caller: Principal = Depends(page_principal if cookie else principal)) -> Principal:
        if caller.scope is None:
            if public is not None and public in request.app.state.settings.public:
                return Principal(id=None, scope="read", public=True)
            raise ApiError(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <API key>'",
                           headers={"WWW-Authenticate": "Bearer"})
        if not caller.allows(scope):
            raise ApiError(403, "forbidden", f"this endpoint needs a key with scope '{scope}' "
                                             f"(this one has '{caller.scope}')")
        if unrestricted and not caller.unrestricted:
            raise ApiError(403, "forbidden", "this endpoint covers every site: it needs a key that is not "
                                             "restricted to sites")
        return caller

    return dependency


READ = require("read")
WRITE = require("write")
ADMIN = require("admin", unrestricted=True)
READ_ALL = require("read", unrestricted=True)


def limited(base: Callable[..., object], kind: str) -> Callable[..., object]:
    """``base``, then one token from the caller's ``kind`` bucket (``ratelimit``): 429 when empty."""

    async def dependency(request: Request, caller: Principal = Depends(base)) -> Principal:
        who = caller.id or f"ip:{request.client.host if request.client else 'unknown'}"
        request.app.state.rate_limits[kind].check(who, kind)
        return caller

    return dependency


WRITE_LIMITED = limited(WRITE, "write")
