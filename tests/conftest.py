"""Shared fixtures: isolated data dirs, real servers (Redis, PostgreSQL) with skip-or-fail policy.

Tests that need a server skip with a reason when it is unreachable on a laptop, and fail under
``CI=true``: CI machines run the servers, so a missing one is a broken CI, not a reason to pass.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.notify import NullNotifier

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_HOST, PG_PORT = "127.0.0.1", 5432
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true: CI must run this test")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _embeddings_off_unless_a_test_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that are not about embeddings assert exact log heads and must not load a model: the
    embedder is off unless a test (or the environment) chooses one. Subprocesses inherit this."""
    if "CHRONICLE_EMBEDDER" not in os.environ:
        monkeypatch.setenv("CHRONICLE_EMBEDDER", "off")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir, also exported so subprocesses (`chronicle …`, workers) use it."""
    path = tmp_path / "data"
    monkeypatch.setenv("CHRONICLE_DATA_DIR", str(path))
    for var in ("CHRONICLE_EVENT_STORE_URL", "CHRONICLE_BROKER_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
def chronicle(settings: Settings) -> Iterator[Chronicle]:
    """A Chronicle on the embedded defaults that never publishes to a broker."""
    handle = Chronicle(settings, notifier=NullNotifier())
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_db_url(redis_url: str) -> Iterator[str]:
    """A Redis database number of its own for this test, flushed before and after.

    The number is claimed with ``SET NX`` on database 0 so that test runs sharing one Redis (two
    checkouts, CI jobs on one host) never flush each other's database mid-test.
    """
    import redis

    admin = redis.Redis.from_url(redis_url)
    token = uuid.uuid4().hex
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    db = next((n for n in candidates if admin.set(f"chronicle-tests:db:{n}", token, nx=True, ex=3600)), None)
    if db is None:
        admin.close()
        pytest.fail("every Redis database 1-15 is claimed by another test run (chronicle-tests:db:* on db 0)")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        if admin.get(f"chronicle-tests:db:{db}") == token.encode():
            admin.delete(f"chronicle-tests:db:{db}")
        admin.close()


def rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """An ``amqp://`` URL on a fresh RabbitMQ vhost of its own (guest/guest), deleted afterwards."""
    require_server("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    import shutil

    if shutil.which("rabbitmqctl") is None:
        if IN_CI:
            pytest.fail("rabbitmqctl is not installed, and CI=true: CI must run this test")
        pytest.skip("rabbitmqctl is not installed (needed for a vhost per test)")
    vhost = f"t_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema, dropped afterwards."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{PG_HOST}:{PG_PORT}/test"
    try:
        conn = psycopg.connect(admin, autocommit=True, user=os.environ.get("PGUSER", "postgres"))
    except psycopg.OperationalError:
        conn = psycopg.connect(admin, autocommit=True)
    user = conn.info.user
    conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/test?options=-csearch_path%3D{schema}"
    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """Every event-log contract test runs against both backends."""
    if request.param == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{data_dir / 'events.db'}"
    return request.getfixturevalue("postgres_url")
