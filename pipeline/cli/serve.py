"""``chronicle serve``: the HTTP API and web page on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, err_console


def _say(message: str) -> None:
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind. Without CHRONICLE_API_TOKEN: localhost only.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (POST /events, CloudEvents, images, status, failures) and the page at /."""
    import uvicorn

    from .. import tracing
    from ..http import HttpSettings, create_app
    from ..http.config import safe_bind_host
    from ..keys import KeyStore

    if tracing.setup("chronicle-api"):
        _say("traces: on (OpenTelemetry, from the OTEL_* variables)")
    settings = HttpSettings()
    settings.ensure_dirs()
    store = KeyStore.for_log(settings.resolved_event_store_url, settings.resolved_data_dir)
    try:
        keys = store.any()
    finally:
        store.close()
    bind, warning = safe_bind_host(host, settings, keys=keys)
    if warning:
        _say(f"warning: {warning}")
    if settings.token is None and not keys:
        _say("auth: off (no CHRONICLE_API_TOKEN, no API key): everything is open to local clients only")
    else:
        _say("auth: on (every route but /healthz, /readyz and the page needs 'Authorization: Bearer <key>')")
    _say(f"serving on http://{bind}:{port}/  (API docs: /docs)")
    uvicorn.run(create_app(settings), host=bind, port=port, log_level=log_level, proxy_headers=False)
