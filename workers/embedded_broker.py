"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, made fit for several processes.

Stock kombu passes every transport option to ``create_engine`` (so ``polling_interval`` cannot be set)
and opens SQLite in rollback-journal mode, where a publishing CMS and a polling worker trip over
``database is locked``. This subclass polls every 100 ms, and uses WAL plus a busy timeout, so the
no-server default behaves like a broker rather than a lock fight.
"""

from __future__ import annotations

from typing import Any

from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport
from sqlalchemy import create_engine, event

from .queues import SCHEME, register_transport

__all__ = ["SCHEME", "Channel", "Transport", "register_transport"]

_ENGINE_OPTIONS_WE_IGNORE = ("queue_tablename", "message_tablename", "callback", "errback", "max_retries",
                             "interval_start", "interval_step", "interval_max", "retry_errors",
                             "polling_interval", "visibility_timeout")


class Channel(_Channel):
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _ENGINE_OPTIONS_WE_IGNORE}
        url = conninfo.hostname
        if url.startswith("sqlite"):
            options.setdefault("connect_args", {"timeout": 60})
        engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()

        return engine


class Transport(_Transport):
    Channel = Channel
    polling_interval = 0.1
