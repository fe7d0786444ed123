"""The wake-up the notifier publishes with kombu is the message Celery's ``send_task`` would publish.

``workers.notifier`` writes the Celery protocol-2 message itself so that appending processes never
import Celery; a drift from Celery's format would silently stop waking the workers. Both messages go
to the same Redis queue and are compared field by field (ids, times and the publisher's own reply
queue aside). That a real worker runs it, on every broker, is tests/test_worker_e2e.py.
"""

from __future__ import annotations

import base64
import json
import time

import redis

from pipeline.notify import CATCH_UP_TASK
from pipeline.settings import Settings
from pipeline.status import SENT_AT_HEADER
from workers.notifier import CeleryNotifier

VARYING_HEADERS = {"id", "root_id", "origin", SENT_AT_HEADER}


def test_the_wakeup_is_the_message_celery_would_send(redis_db_url: str, data_dir) -> None:
    from workers.app import create_app

    settings = Settings(data_dir=data_dir, broker_url=redis_db_url)
    before = time.time()
    CeleryNotifier(settings)._send(CATCH_UP_TASK, {"position": 42})
    create_app(settings).send_task(CATCH_UP_TASK, kwargs={"position": 42}, queue="projections", retry=False)
    client = redis.Redis.from_url(redis_db_url)
    try:
        celery_raw, ours_raw = client.lrange("projections", 0, -1)  # LPUSH: the newest first
    finally:
        client.close()
    ours, theirs = json.loads(ours_raw), json.loads(celery_raw)

    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])
    assert (ours["content-type"], ours["content-encoding"]) == (theirs["content-type"], theirs["content-encoding"])
    assert {k: v for k, v in ours["headers"].items() if k not in VARYING_HEADERS} == \
        {k: v for k, v in theirs["headers"].items() if k not in VARYING_HEADERS}
    assert ours["headers"]["root_id"] == ours["headers"]["id"] == ours["properties"]["correlation_id"]
    assert before <= ours["headers"][SENT_AT_HEADER] <= time.time()  # `status` ages the queue from it
    for key in ("delivery_mode", "priority", "body_encoding"):
        assert ours["properties"][key] == theirs["properties"][key], key
    assert ours["properties"]["delivery_info"]["routing_key"] == "projections"


def test_the_embedded_broker_row_is_the_row_kombu_would_write(data_dir) -> None:
    """The embedded broker gets its row by ``sqlite3`` (no SQLAlchemy ORM in an appending process): the
    same queue, the same payload as kombu's SQLAlchemy transport stores for Celery's ``send_task``."""
    import sqlite3

    from workers.app import create_app

    settings = Settings(data_dir=data_dir)
    assert settings.uses_embedded_broker
    CeleryNotifier(settings)._send(CATCH_UP_TASK, {"position": 7})  # first: it creates the tables too
    create_app(settings).send_task(CATCH_UP_TASK, kwargs={"position": 7}, queue="projections", retry=False)
    conn = sqlite3.connect(settings.resolved_broker_url.split(":///", 1)[1])
    try:
        rows = conn.execute("SELECT q.name, m.visible, m.version, m.payload FROM kombu_message m "
                            "JOIN kombu_queue q ON q.id = m.queue_id ORDER BY m.id").fetchall()
        assert conn.execute("SELECT count(*) FROM kombu_queue").fetchone()[0] == 1
    finally:
        conn.close()
    (ours_queue, *ours_flags, ours_raw), (their_queue, *their_flags, their_raw) = rows
    assert ours_queue == their_queue == "projections" and ours_flags == their_flags
    ours, theirs = json.loads(ours_raw), json.loads(their_raw)
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))
    assert {k: v for k, v in ours["headers"].items() if k not in VARYING_HEADERS} == \
        {k: v for k, v in theirs["headers"].items() if k not in VARYING_HEADERS}
    assert set(ours["properties"]) == set(theirs["properties"])
    for key in ("delivery_mode", "priority", "body_encoding"):
        assert ours["properties"][key] == theirs["properties"][key], key
    assert ours["properties"]["delivery_info"]["routing_key"] == "projections"
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == \
        {k: v for k, v in theirs.items() if k not in ("body", "headers", "properties")}
