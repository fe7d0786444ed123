"""Publishing to the embedded broker with ``sqlite3`` alone: the row kombu's SQLAlchemy transport would write.

The embedded broker (``workers.embedded_broker``) is kombu's SQLAlchemy transport on a SQLite file.
Publishing through it loads SQLAlchemy's ORM and kombu's models and checks the schema: most of a
one-event ``chronicle emit``. A wake-up is one INSERT, so the notifier writes it here instead: the
``kombu_message`` row (kombu's virtual-transport message: base64 body, headers, properties with the
delivery info) in the ``kombu_queue`` of the queue's name, exactly as
``kombu.transport.sqlalchemy.Channel._put`` stores it, and as the workers' consumer reads it.
tests/test_notifier.py compares the row with kombu's own; tests/test_worker_e2e.py has a worker run it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

# kombu.transport.sqlalchemy.models as SQLAlchemy creates them on SQLite: for a broker file no worker
# has opened yet (kombu's own create_all finds them and leaves them be).
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kombu_queue (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "name VARCHAR(200), UNIQUE (name))",
    "CREATE TABLE IF NOT EXISTS kombu_message (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, visible BOOLEAN, "
    "timestamp DATETIME, payload TEXT NOT NULL, version SMALLINT NOT NULL, queue_id INTEGER, "
    'CONSTRAINT "FK_kombu_message_queue" FOREIGN KEY(queue_id) REFERENCES kombu_queue (id))',
    "CREATE INDEX IF NOT EXISTS ix_kombu_message_timestamp ON kombu_message (timestamp)",
    "CREATE INDEX IF NOT EXISTS ix_kombu_message_visible ON kombu_message (visible)",
    "CREATE INDEX IF NOT EXISTS ix_kombu_message_timestamp_id ON kombu_message (timestamp, id)",
)


def database_path(url: str) -> str:
    """``chronicle+sqlite:///PATH`` (or ``sqla+sqlite:///PATH``) → ``PATH``."""
    scheme, _, rest = url.partition("://")
    if not scheme.endswith("sqlite") or not rest.startswith("/"):
        raise ValueError(f"not an embedded SQLite broker URL: {url}")
    return rest[1:]


def connect(path: str, busy_timeout: float = 60.0) -> sqlite3.Connection:
    """WAL and a busy timeout, as ``workers.embedded_broker`` opens it for the workers."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def payload(body: Any, headers: dict[str, Any], properties: dict[str, Any], *, exchange: str,
            routing_key: str) -> str:
    """What kombu's virtual transport stores for ``Producer.publish(body, serializer="json", …)``."""
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps({"body": encoded, "content-encoding": "utf-8", "content-type": "application/json",
                       "headers": headers,
                       "properties": {**properties, "delivery_mode": 2,
                                      "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                                      "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}})


def put(conn: sqlite3.Connection, queue: str, message: str) -> None:
    """One message, visible at once, in ``queue`` (created if new), in one write transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT id FROM kombu_queue WHERE name = ?", (queue,)).fetchone()
        if row is None:
            row = conn.execute("INSERT INTO kombu_queue (name) VALUES (?) RETURNING id", (queue,)).fetchone()
        conn.execute("INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) "
                     "VALUES (1, NULL, ?, 1, ?)", (message, row[0]))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def ensure_schema(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        conn.execute(statement)
