"""``python -m benchmarks [--quick] [NAME…]``: run every ``bench_*`` module and print ratios."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys

from rich.console import Console
from rich.table import Table

import benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="bench module names (e.g. append); default all")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--smoke", action="store_true", help="the smallest inputs that still run every step "
                                                            "and check (for tests; benchmarks without it run --quick)")
    parser.add_argument("--backlog", action="store_true", help="latency: measure during a 10 000-text "
                                                              "embedding backlog (the local model)")
    parser.add_argument("--store", choices=("s3",), help="media: the job on object storage (a local moto server) "
                                                         "vs local disk, in the same run")
    args = parser.parse_args(argv)
    available = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    modules = [m for m in available if not m.endswith("_store")]
    if args.names:
        names = {n.replace("-", "_") for n in args.names}  # `search-http` names bench_search_http
        modules = [m for m in modules if m.removeprefix("bench_") in names or m in names]
    if args.store:  # `media --store s3`: the store comparison instead of the encoder benchmark
        modules = [f"{m}_store" if f"{m}_store" in available else m for m in modules]
    console = Console()
    table = Table("benchmark", "ours", "baseline", "ratio", "target", "ok")
    failed = False
    for name in modules:
        console.print(f"[bold]running {name}…[/bold]")
        module = importlib.import_module(f"benchmarks.{name}")
        accepted = inspect.signature(module.run).parameters
        options: dict[str, object] = {"backlog": True} if args.backlog and "backlog" in accepted else {}
        if args.smoke:
            options["smoke" if "smoke" in accepted else "quick"] = True
        if args.store and "store" in accepted:
            options["store"] = args.store
        for r in module.run(**{"quick": args.quick, **options}):
            verdict = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[r.ok]
            failed |= r.ok is False
            table.add_row(r.name, f"{r.ours:,.1f} {r.unit}", f"{r.baseline:,.1f} {r.unit}", f"{r.ratio:.2f}×",
                          f"≥ {r.target_ratio}×" if r.target_ratio else "-", verdict)
            for key, value in r.notes.items():
                console.print(f"  {r.name}: {key} = {value}")
            # One plain line per figure, comparable across runs (grep "ratio").
            target = f"target ≥ {r.target_ratio}×" if r.target_ratio else "no target"
            print(f"{r.name}: ratio {r.ratio:.2f}× ({target}) — ours {r.ours:,.2f} {r.unit}, "
                  f"baseline {r.baseline:,.2f} {r.unit}", flush=True)
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
