"""The append and replay benchmarks run, in their quickest mode, so they cannot rot.

No timing is asserted (the figures of a smoke run mean nothing, and tests never time anything): the
benchmarks' own correctness checks run (the replay asserts the raw loop and Chronicle built the same
checksum), and every figure prints its ``ratio … (target …)`` line. ``python -m benchmarks`` (``make
bench``) measures for real.
"""

from __future__ import annotations

import re

import pytest

from benchmarks.__main__ import main


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["append", "replay"])
def test_benchmark_runs_in_smoke_mode(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--smoke", name])  # the exit status says whether targets were met: meaningless on tiny inputs
    out = capsys.readouterr().out
    ratios = re.findall(r"^(.+): ratio [\d.]+× \((?:target ≥ [\d.]+×|no target)\) — ours ", out, flags=re.MULTILINE)
    assert len(ratios) == {"append": 5, "replay": 3}[name], out
    if name == "replay":
        assert "same checksum as raw loop = True" in out
