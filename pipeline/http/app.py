"""The application factory: one FastAPI app per server, wired to one ``Chronicle`` handle."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from .. import tracing
from ..api import Chronicle
from ..keys import KeyStore
from ..settings import Settings
from ..sites import SiteResolver
from . import problems
from .auth import Authenticator
from .config import HttpSettings
from .limits import BodyLimitMiddleware
from .ratelimit import buckets_for
from .readmodel import ReadModel
from .routers import admin, events, images, page
from .schemas import component_schemas

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None, *, chronicle: Chronicle | None = None) -> FastAPI:
    """Build the app. Pass ``chronicle`` to share a handle (tests); otherwise one is opened and closed
    with the app, and appends wake the workers through the broker."""
    http_settings = HttpSettings.from_core(settings or (chronicle.settings if chronicle else None))
    owns_handle = chronicle is None
    handle = chronicle or Chronicle(http_settings)
    read_model = ReadModel.open(http_settings.projection_db_path, http_settings.media_dir)
    keys = KeyStore.for_log(http_settings.resolved_event_store_url, http_settings.resolved_data_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        read_model.close()
        keys.close()
        for buckets in app.state.rate_limits.values():
            buckets.close()
        if owns_handle:
            handle.close()

    # /docs and /redoc with Swagger UI and ReDoc served from the fastapi-offline package under
    # /static-offline-docs, not a CDN: the docs render on a machine with no internet.
    # Traces (pipeline/tracing.py): FastAPI's own OpenTelemetry server spans, when a tracer provider is
    # installed, continue the caller's ``traceparent``; the append inside stamps the context on each event.
    app = FastAPIOffline(title="Chronicle", version="0.1.0", lifespan=lifespan, static_url="/static-offline-docs",
                         telemetry={"exclude": untraced, "operation_spans": False, "logs": False,
                                    "tracer_provider": tracing.provider() if tracing.enabled() else None},
                         description="Append CMS events (Chronicle envelopes or CloudEvents 1.0), read the log, "
                                     "upload images and watch what the pipeline did.")
    app.state.settings = http_settings
    app.state.chronicle = handle
    app.state.read_model = read_model
    app.state.authenticator = Authenticator(keys, http_settings.token, team_sites=read_model.sites_of_teams)
    app.state.sites = SiteResolver(handle.store)
    broker = http_settings.resolved_broker_url
    app.state.rate_limits = {"write": buckets_for(broker, "write", http_settings.write_rate, http_settings.write_burst),
                             "search": buckets_for(broker, "search", http_settings.search_rate,
                                                   http_settings.search_burst)}

    def limit_for(method: str, path: str) -> int:
        if method == "POST" and path.rstrip("/") == "/images":
            return http_settings.max_upload_bytes
        return http_settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    problems.install(app)
    for module in (events, images, admin, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


UNTRACED_PREFIXES = ("/metrics", "/healthz", "/readyz", "/static", "/docs", "/redoc", "/openapi.json", "/favicon")


def untraced(scope: MutableMapping[str, Any]) -> bool:
    """Scrapes, probes and assets make no trace: every second of them would bury the emits."""
    return str(scope.get("path", "")).startswith(UNTRACED_PREFIXES)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the models only referenced by hand-written request bodies."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            {k: v for k, v in component_schemas().items() if k not in schema["components"]["schemas"]})
        app.openapi_schema = schema
    return app.openapi_schema
