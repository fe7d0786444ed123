"""``chronicle erase``: forget a data subject (``pipeline.erase``, docs/erasure.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app, console, errors_to_exit_codes, print_json


@app.command()
def erase(
    subject: Annotated[str, typer.Option(help="The data subject: the user id or author the events name.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in SubjectErased, e.g. a ticket id).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Destroy the subject's key: their personal fields read "[erased]" everywhere from now on; the read
    model is rebuilt, their vectors and cached embeddings deleted, and SubjectErased recorded."""
    from ..api import Chronicle
    from ..erase import erase_subject

    with errors_to_exit_codes(), Chronicle.open() as chronicle:
        outcome = erase_subject(chronicle, subject, reason=reason)
    if as_json:
        print_json(outcome)
        return
    console.print(f"erased subject {outcome['subject_ref']}: {outcome['events']} event(s), "
                  f"{len(outcome['items'])} search item(s), {outcome['vector_rows']} vector row(s), "
                  f"{outcome['cache_entries']} cache entr(ies); SubjectErased at position {outcome['position']}",
                  markup=False)
