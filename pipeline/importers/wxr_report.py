"""The import's honest account: what was mapped to which events, what was skipped and why.

One ``Outcome`` per decision (an item, a comment count, a duplicate menu entry…), tallied into a
``ImportReport`` the CLI prints as a table and as JSON. Skips are first-class rows, so an export that
"imports fine" while quietly dropping half its content cannot happen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["mapped", "skipped"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """``count`` things of kind ``what`` were ``verdict`` (mapped → ``detail`` names the events; skipped →
    ``detail`` says why)."""

    verdict: Verdict
    what: str
    detail: str
    count: int = 1


def mapped(what: str, detail: str, count: int = 1) -> Outcome:
    return Outcome("mapped", what, detail, count)


def skipped(what: str, detail: str, count: int = 1) -> Outcome:
    return Outcome("skipped", what, detail, count)


@dataclass(slots=True)
class ImportReport:
    """Tallies of outcomes plus what the log said about the appended events."""

    tally: Counter[tuple[Verdict, str, str]] = field(default_factory=Counter)
    events: int = 0
    appended: int = 0
    duplicates: int = 0

    def add(self, *outcomes: Outcome) -> None:
        for o in outcomes:
            if o.count:
                self.tally[(o.verdict, o.what, o.detail)] += o.count

    def count(self, verdict: Verdict, what: str) -> int:
        """How many ``what`` were mapped (or skipped), whatever the detail."""
        return sum(n for (v, w, _), n in self.tally.items() if v == verdict and w == what)

    def rows(self) -> list[tuple[Verdict, str, str, int]]:
        """Mapped rows first, then skipped ones, each sorted by kind and detail."""
        order = {"mapped": 0, "skipped": 1}
        return [(v, w, d, n) for (v, w, d), n in sorted(self.tally.items(), key=lambda kv: (order[kv[0][0]], kv[0]))]

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events, "appended": self.appended, "duplicates": self.duplicates,
            "mapped": [{"what": w, "as": d, "count": n} for v, w, d, n in self.rows() if v == "mapped"],
            "skipped": [{"what": w, "why": d, "count": n} for v, w, d, n in self.rows() if v == "skipped"],
        }
