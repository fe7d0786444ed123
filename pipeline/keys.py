"""Scoped API keys: created, listed and revoked by ``chronicle keys``, checked on every HTTP request.

A key is ``chk_<id>_<secret>``: 16 hex digits of id (shown by ``keys list``, used to revoke) and 256
bits of randomness. Only its SHA-256 is stored: for a high-entropy random secret a fast hash is the
standard (GitHub, Stripe); slow password hashes exist for guessable passwords. The id in the key finds
the row, and the digests are compared with ``hmac.compare_digest`` so timing reveals nothing.

**Where they live: next to the log** (table ``api_keys`` in the event store's database, or
``$DATA_DIR/keys.db`` for a ``memory://`` log). Every API process of an installation shares the log,
while the read model is per host and rebuilt from the log at will; keys are not events (a key's hash
would then stay in the log forever). Each request reads its key's row — a primary-key lookup — with no
cache, so a revocation is effective on every process at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Column, Engine, MetaData, String, Table, Text, create_engine, func, select, update
from sqlalchemy import exc as sa_exc

from .errors import InvalidEvent, NotFound, StoreUnavailable

SCOPES = ("read", "write", "admin")  #: each includes the ones before it
PREFIX = "chk_"
TOUCH_EVERY = timedelta(seconds=60)  #: ``last_used_at`` is written at most this often per key

metadata = MetaData()
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("sites", Text, nullable=False),  # JSON list; [] = every site (unless teams restrict)
    Column("teams", Text, nullable=False, server_default="[]"),  # JSON list: every site of these teams
    Column("label", String(200), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32), nullable=True),
    Column("last_used_at", String(32), nullable=True),
)


class UnknownKey(NotFound):
    """No key has this id."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored (never its secret)."""

    id: str
    scope: str
    sites: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    label: str | None = None
    created_at: str = ""
    revoked_at: str | None = None
    last_used_at: str | None = None

    @property
    def unrestricted(self) -> bool:
        return not self.sites and not self.teams

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "scope": self.scope, "sites": list(self.sites), "teams": list(self.teams),
                "label": self.label,
                "created_at": self.created_at, "revoked_at": self.revoked_at, "last_used_at": self.last_used_at}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of a presented key, or None when it is not shaped like one of ours."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    return key_id if sep and secret and len(key_id) == 16 else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _row_to_key(row: object) -> ApiKey:
    r = row._mapping  # type: ignore[attr-defined]
    return ApiKey(id=r["id"], scope=r["scope"], sites=tuple(orjson.loads(r["sites"])),
                  teams=tuple(orjson.loads(r["teams"] or "[]")), label=r["label"],
                  created_at=r["created_at"], revoked_at=r["revoked_at"], last_used_at=r["last_used_at"])


class KeyStore:
    """The ``api_keys`` table on its own small engine (the log's hot path is not touched)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine: Engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
        with self._errors():
            metadata.create_all(self.engine)

    @classmethod
    def for_log(cls, event_store_url: str, data_dir: Path) -> KeyStore:
        if event_store_url.startswith("memory"):
            return cls(f"sqlite:///{data_dir / 'keys.db'}")
        return cls(event_store_url)

    def close(self) -> None:
        self.engine.dispose()

    def _errors(self) -> _KeyStoreErrors:
        return _KeyStoreErrors()

    def create(self, scope: str, *, sites: list[str] | tuple[str, ...] = (), teams: list[str] | tuple[str, ...] = (),
               label: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists outside the client). ``sites`` and
        ``teams`` restrict it (a team: every site of the team, as the read model knows them)."""
        if scope not in SCOPES:
            raise InvalidEvent(f"scope must be one of {', '.join(SCOPES)}, not '{scope}'", field="scope")
        clean = tuple(dict.fromkeys(s.strip() for s in sites if s.strip()))
        clean_teams = tuple(dict.fromkeys(t.strip() for t in teams if t.strip()))
        if any(len(s) > 200 for s in clean + clean_teams):
            raise InvalidEvent("a site or team id is at most 200 characters", field="site")
        key_id = secrets.token_hex(8)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(id=key_id, scope=scope, sites=clean, teams=clean_teams, label=label, created_at=_now())
        with self._errors(), self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(
                id=key.id, digest=digest(secret), scope=scope, sites=orjson.dumps(list(clean)).decode(),
                teams=orjson.dumps(list(clean_teams)).decode(), label=label, created_at=key.created_at))
        return key, secret

    def list(self) -> list[ApiKey]:
        with self._errors(), self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).all()
        return [_row_to_key(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke (idempotent); the row stays, so ``keys list`` shows when and the audit trail holds."""
        with self._errors(), self.engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=_now()))
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise UnknownKey(f"no API key '{key_id}'")
        return _row_to_key(row)

    def any(self) -> bool:
        """Whether a key was ever created (revoked ones count: revoking the last key must not open the
        server again)."""
        with self._errors(), self.engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(api_keys)).scalar_one())

    def authenticate(self, presented: str) -> ApiKey | None:
        """The live key ``presented`` is, or None (unknown, wrong secret, revoked). Records last use."""
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        with self._errors(), self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or not hmac.compare_digest(row._mapping["digest"], digest(presented)):
            return None
        key = _row_to_key(row)
        if key.revoked_at is not None:
            return None
        self._touch(key)
        return key

    def _touch(self, key: ApiKey) -> None:
        now = datetime.now(UTC)
        if key.last_used_at and now - datetime.fromisoformat(key.last_used_at) < TOUCH_EVERY:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(last_used_at=_now()))
        except sa_exc.OperationalError:
            pass  # a busy log must not fail a request over bookkeeping; the next request tries again


class _KeyStoreErrors:
    """Driver errors → ``StoreUnavailable`` (the API answers 503, the CLI exits 4)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            raise StoreUnavailable("key store", str(exc.orig or exc).splitlines()[0]) from exc
