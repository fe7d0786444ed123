"""Bearer-token auth for writes and admin endpoints.

Reads stay open (the page, other consumers of the log); anything that appends to the log or starts
work needs ``Authorization: Bearer $CHRONICLE_API_TOKEN``. Without a token configured the server only
listens on localhost (see ``config.safe_bind_host``), so open writes never leave the machine.
The comparison is constant-time so the token cannot be guessed byte by byte from response timings.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .problems import ApiError

bearer = HTTPBearer(auto_error=False, description="CHRONICLE_API_TOKEN; required when one is configured.")


def tokens_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_token(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """FastAPI dependency: 401 without credentials, 403 with wrong ones, pass when no token is set."""
    expected = request.app.state.settings.token
    if expected is None:
        return
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": "Bearer"})
    if not tokens_match(credentials.credentials, expected):
        raise ApiError(403, "forbidden", "the bearer token is not valid",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
