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


def test_the_scripts_plan_the_same_widths_as_chronicle() -> None:
    """The scripts are standalone (no Chronicle import), so their width rule is checked against the plan."""
    from benchmarks.media_scripts import widths_for
    from pipeline.media.plan import target_sizes

    configured = [320, 640, 1024, 1920]
    for width in (1, 100, 320, 321, 1200, 1800, 1920, 1921, 4000, 8660):
        assert widths_for(width, configured) == [w for w, _ in target_sizes(width, 100, configured)], width


def test_ssim_is_one_for_identical_images_and_drops_with_noise() -> None:
    import numpy as np

    from benchmarks.quality import ssim

    rng = np.random.default_rng(3)
    image = np.kron(rng.uniform(0, 255, (20, 30)), np.ones((8, 8)))  # smooth blocks, 160×240
    assert ssim(image, image) == pytest.approx(1.0)
    slightly, badly = (np.clip(image + rng.normal(0, sigma, image.shape), 0, 255) for sigma in (2, 20))
    assert 1.0 > ssim(image, slightly) > ssim(image, badly) > 0
    with pytest.raises(ValueError):
        ssim(image, image[:-1])
