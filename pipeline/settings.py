"""Configuration, 12-factor style: every knob is an environment variable prefixed ``CHRONICLE_``.

Defaults are the *embedded* deployment: everything lives under ``CHRONICLE_DATA_DIR`` and needs no
server. Pointing ``CHRONICLE_EVENT_STORE_URL`` at PostgreSQL or ``CHRONICLE_BROKER_URL`` at Redis
switches to the scaled-out deployment without touching code.

``Settings`` holds what the kernel needs; each subsystem declares its own section (``MediaSettings``,
``EmbeddingSettings``: their own classes, variables and validation, next to the code that reads them)
and asks for it with ``settings.section(MediaSettings)``. A section is read from the environment once
per ``Settings`` and then shared, so a job never re-reads ``os.environ`` per call, and a test that
builds its own ``Settings`` gets its own sections.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class Settings(BaseSettings):
    """All of Chronicle's configuration, read once from the environment."""

    model_config = SettingsConfigDict(env_prefix="CHRONICLE_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Where the log, projections and media live.")
    event_store_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the event log; default sqlite:///$DATA_DIR/events.db."
    )
    lancedb_url: str | None = Field(
        default=None,
        description="LanceDB location; default $DATA_DIR/lancedb. s3://bucket/prefix: tables on object storage "
        "(endpoint and credentials from the AWS_* variables); the writer lock stays in $DATA_DIR/lancedb.",
    )
    vector_cache: Literal["auto", "local", "postgres"] = Field(
        default="auto",
        description="Where the embedding vector cache lives: auto = in the log's PostgreSQL database when the log "
        "is on PostgreSQL (shared by every host), else $DATA_DIR/cache/embeddings/vectors.db; local/postgres force it.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default an embedded SQLite broker in $DATA_DIR/broker.db, no server.",
    )
    sweep_interval: float = Field(default=5.0, description="Seconds between catch-up sweeps (Celery beat).")
    task_slice_seconds: float = Field(
        default=10.0, gt=0, description="Longest slice of a catch-up or reindex task; the rest continues in a "
                                        "new message, so no task holds a pool slot for minutes.")
    slice_events: int = Field(default=2000, ge=1, description="Most log events one catch-up task reads.")
    lease_seconds: float = Field(
        default=30.0, gt=0, description="A running job's lease, renewed every third of it; the sweeper re-sends "
                                        "the job of a worker that stopped renewing (pipeline.jobs.leases).")
    projector_batch_size: int = Field(default=2000, ge=1, description="Events applied per transaction.")
    replay_batch_size: int = Field(default=200_000, ge=1, description="Events per transaction during a replay "
                                   "(read from the log 20 000 at a time).")
    replay_writer: Literal["auto", "process", "inline"] = Field(
        default="auto", description="Where a replay executes its SQL: 'process' in a second process while this "
                                    "one runs the handlers (two cores), 'inline' in this one; 'auto' uses the "
                                    "second process for logs of 50 000 events or more when two cores are free.")
    max_event_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted event payload.")
    job_modules: list[str] = Field(
        default_factory=list,
        description="Your own modules with a `register(registry)` for extra jobs and reactions (JSON list).",
    )
    notifier: str = Field(
        default="workers.notifier:CeleryNotifier",
        description="`module:Class` that wakes the workers after an append; `null` for none (in-process use).",
    )
    retry_backoff_base: float = Field(default=2.0, gt=0, description="First retry delay of a failing job (s).")
    retry_backoff_max: float = Field(default=300.0, gt=0, description="Cap on a retry delay (s).")
    subject_keys: str | None = Field(
        default=None, description="Keystore of the per-subject erasure keys: a directory or a postgresql URL; "
                                  "default a subject_keys table next to a PostgreSQL log, else $DATA_DIR/subject-keys.")
    log_synchronous: str = Field(
        default="FULL",
        pattern="^(FULL|NORMAL|EXTRA)$",
        description="SQLite `synchronous` level of the event log. FULL: an acknowledged append survives power loss.",
    )

    _sections: dict[type[Any], Any] = PrivateAttr(default_factory=dict)

    def section(self, kind: type[S]) -> S:
        """A subsystem's settings section, built from the environment once per ``Settings``."""
        if kind not in self._sections:
            self._sections[kind] = kind()
        section: S = self._sections[kind]
        return section

    def refresh_sections(self) -> None:
        """Read the subsystem sections from the environment again on next use (after a test or an
        embedding program changed ``CHRONICLE_*`` variables under a live handle)."""
        self._sections.clear()

    def with_section(self, section: BaseSettings) -> Settings:
        """Use ``section`` instead of reading it from the environment (tests, embedding programs)."""
        self._sections[type(section)] = section
        return self

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_event_store_url(self) -> str:
        return self.event_store_url or f"sqlite:///{self.resolved_data_dir / 'events.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"chronicle+sqlite:///{self.resolved_data_dir / 'broker.db'}"

    @property
    def projection_db_path(self) -> Path:
        return self.resolved_data_dir / "sqlite.db"

    @property
    def lancedb_dir(self) -> Path:
        return self.resolved_data_dir / "lancedb"

    @property
    def lancedb_uri(self) -> str:
        """Where the vector tables live: ``CHRONICLE_LANCEDB_URL`` (``s3://…``) or the local directory."""
        return self.lancedb_url or str(self.lancedb_dir)

    @property
    def lancedb_remote(self) -> bool:
        """The tables are on object storage (hosts share them), not in a local directory."""
        return "://" in (self.lancedb_url or "")

    @property
    def media_dir(self) -> Path:
        return self.resolved_data_dir / "media"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith(("chronicle+", "sqla+"))

    def ensure_dirs(self) -> None:
        """Create the data directory tree; cheap and idempotent, so every entry point may call it."""
        for path in (self.resolved_data_dir, self.media_dir):
            path.mkdir(parents=True, exist_ok=True)
