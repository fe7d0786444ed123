"""Benchmarks. Each ``bench_*.py`` module exposes ``run(quick: bool) -> list[Result]``; every result
carries the baseline measured in the same run, so the printed ratio is meaningful on any machine."""
