"""The media benchmark in its quickest mode, so it cannot rot: every step runs and every correctness
check holds (the same variant set from Chronicle, the Pillow script and the pyvips script; no quality
lost to a faster encoder setting). Its speed figures are printed, never asserted: timings on a shared
machine belong in ``python -m benchmarks media``, not in a test."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import IN_CI, REPO

RATIO_LINE = re.compile(r"^(?P<name>.+): ratio [\d.]+× \(target ≥ [\d.]+×\)")


def _pyvips_or_skip() -> None:
    try:
        import pyvips  # noqa: F401  (pyvips-binary ships libvips itself; see pyproject's test extra)
    except (ImportError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"pyvips is not importable ({exc}), and CI=true: `make venv-test` installs it")
        pytest.skip(f"pyvips is not importable ({exc}); `pip install -e '.[test]'` brings it with libvips")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_media_benchmark_runs_every_step_in_smoke_mode() -> None:
    _pyvips_or_skip()
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "media"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "COLUMNS": "200"}, timeout=880)
    # Exit code 1 alone means a speed target was missed (possible on a loaded machine); a failed
    # correctness check, like any other error, is a traceback.
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, output
    names = [m["name"] for line in proc.stdout.splitlines() if (m := RATIO_LINE.match(line))]
    assert names == ["media job, 1 process", "media job, 2 worker processes", "peak RSS, 12 MP JPEG"], output
    assert "identical for all three producers" in proc.stdout, output
    assert re.search(r"the faster script in this run: (pillow|pyvips)", proc.stdout), output
