"""``chronicle keys …``: scoped API keys for ``chronicle serve`` (see ``pipeline.keys``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json

if TYPE_CHECKING:
    from ..keys import ApiKey, KeyStore

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _store() -> KeyStore:
    from ..keys import KeyStore
    from ..settings import Settings

    settings = Settings()
    settings.ensure_dirs()
    return KeyStore.for_log(settings.resolved_event_store_url, settings.resolved_data_dir)


def _where(key: ApiKey) -> str:
    parts = list(key.sites) + [f"team {t}" for t in key.teams]
    return ", ".join(parts) or "all"


@keys_app.command("create")
def create(
    scope: Annotated[str, typer.Option(help="read, write (includes read) or admin (everything).")],
    site: Annotated[list[str] | None, typer.Option(help="Restrict the key to this site id (repeatable).")] = None,
    team: Annotated[list[str] | None, typer.Option(help="Restrict the key to this team's sites (repeatable).")]
    = None,
    label: Annotated[str | None, typer.Option(help="A note for `keys list` (who holds it).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": …, "key": …}.')] = False,
) -> None:
    """Create a key and print it once: only its SHA-256 is stored, it cannot be shown again."""
    with errors_to_exit_codes():
        store = _store()
        try:
            key, secret = store.create(scope, sites=site or [], teams=team or [], label=label)
        finally:
            store.close()
    if as_json:
        print_json({"id": key.id, "key": secret, "scope": key.scope, "sites": list(key.sites),
                    "teams": list(key.teams)})
        return
    console.print(f"id:    {key.id}\nscope: {key.scope}\nsites: {_where(key)}", markup=False)
    console.print(f"key:   {secret}", markup=False, soft_wrap=True)
    console.print("(shown once: store it now)", style="dim")


@keys_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key ever created (never its secret): scope, sites, created, last used, revoked."""
    from rich.table import Table

    with errors_to_exit_codes():
        store = _store()
        try:
            keys = store.list()
        finally:
            store.close()
    if as_json:
        print_json([k.to_json() for k in keys])
        return
    table = Table("id", "scope", "sites", "label", "created", "last used", "revoked")
    for k in keys:
        table.add_row(k.id, k.scope, _where(k), k.label or "", k.created_at,
                      k.last_used_at or "never", k.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke a key: refused by every API process from its next request on."""
    with errors_to_exit_codes():
        store = _store()
        try:
            key = store.revoke(key_id)
        finally:
            store.close()
    print_json(key.to_json())
