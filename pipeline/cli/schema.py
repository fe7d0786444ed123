"""``chronicle schema …``: the read model's schema for other languages (Drizzle ``schema.ts``, SQL DDL)."""

from __future__ import annotations

import sys

import typer

from .app import app

schema_app = typer.Typer(help="Print the read model's schema (generated from its tables).", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("drizzle")
def drizzle() -> None:
    """A Drizzle ORM schema.ts (drizzle-orm/sqlite-core) for every table of data/sqlite.db."""
    from db.schema import drizzle_schema

    sys.stdout.write(drizzle_schema())


@schema_app.command("sql")
def sql() -> None:
    """The SQLite DDL (CREATE TABLE / CREATE INDEX) of the read model."""
    from db.schema import ddl

    sys.stdout.write(ddl())
