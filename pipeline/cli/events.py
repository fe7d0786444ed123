"""``chronicle events …``: the catalogue."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from .app import app, console, errors_to_exit_codes, print_json

events_app = typer.Typer(help="Inspect the event catalogue.", no_args_is_help=True)
app.add_typer(events_app, name="events")


def describe() -> dict[str, Any]:
    """Each event type: schema version, default stream, and its fields from the pydantic schema."""
    from ..events import CATALOGUE
    from ..subsystems import load_catalogue

    load_catalogue()  # the event types live with their subsystems
    out: dict[str, Any] = {}
    for name, model in sorted(CATALOGUE.items()):
        schema = model.model_json_schema(by_alias=True)
        required = set(schema.get("required", []))
        fields = {}
        for field, spec in schema.get("properties", {}).items():
            kind = spec.get("type") or " | ".join(s.get("type", "?") for s in spec.get("anyOf", [])) or "json"
            fields[field] = {"type": kind, "required": field in required}
        out[name] = {"schema_version": model.schema_version, "summary": model.summary,
                     "stream": f"{model.stream_prefix}-<{model.stream_key}>", "partial": model.partial,
                     "fields": fields, "personal": list(model.personal), "subject": model.subject_field}
    return out


@events_app.command("catalogue")
def catalogue(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every event type Chronicle accepts, with its fields."""
    from rich.table import Table

    info = describe()
    if as_json:
        print_json(info)
        return
    table = Table("type", "v", "stream", "fields (* required)", "meaning", show_lines=True)
    for name, entry in info.items():
        fields = ", ".join(f"{f}{'*' if s['required'] else ''}: {s['type']}" for f, s in entry["fields"].items())
        table.add_row(name, str(entry["schema_version"]), entry["stream"], fields, entry["summary"])
    console.print(table)


@events_app.command("check")
def check(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Read the whole log; report every event that no longer loads, with its position (exit 1 if any)."""
    from ..api import Chronicle
    from ..check import Problem, check_log

    problems: list[Problem] = []
    checked = 0
    with (errors_to_exit_codes(), Chronicle.open(notify=False) as chronicle,
          console.status("checking the log…") as spinner):
        for item in check_log(chronicle.store):
            if isinstance(item, Problem):
                problems.append(item)
            else:
                checked = item
                spinner.update(f"checked up to position {checked:,}…")
    if as_json:
        print_json({"checked": checked, "problems": [asdict(p) for p in problems]})
    else:
        for p in problems:
            console.print(f"position {p.position} ({p.type}): {p.reason}", markup=False, highlight=False)
        console.print(f"checked {checked:,} events: {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)
