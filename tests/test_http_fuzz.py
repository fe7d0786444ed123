"""Fuzz the OpenAPI schema with schemathesis over real HTTP: whatever it sends, never a 500.

The schemathesis CLI runs in a subprocess against the server on a real socket (as a client in another
language would), bounded by examples per operation and a fixed seed so a failure reproduces.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Chronicle
from pipeline.http import HttpSettings, create_app
from pipeline.http.testing import running_server
from pipeline.notify import NullNotifier

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "schemathesis"
TOKEN = "fuzz-token"


@pytest.fixture
def base_url(data_dir: Path) -> Iterator[str]:
    # synchronous=NORMAL: thousands of fuzzed appends need no fsync each; durability is not under test here.
    settings = HttpSettings(data_dir=data_dir, api_token=TOKEN, max_body_bytes=256 * 1024,
                            max_upload_bytes=1024 * 1024, log_synchronous="NORMAL")
    with Chronicle(settings, notifier=NullNotifier()) as chronicle, \
            running_server(create_app(settings, chronicle=chronicle)) as url:
        yield url


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if not found:
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.slow
def test_fuzzing_the_openapi_schema_finds_no_server_errors(base_url: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    command = [
        _schemathesis(), "run", f"{base_url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "12",
        "--seed", "8",
        "--workers", "1",  # one thread: CPython 3.11's ast is not thread-safe inside hypothesis
        "--request-timeout", "20",
        "--no-shrink",
        "--suppress-health-check", "all",
        "-H", f"Authorization: Bearer {TOKEN}",
        "--report", "junit",
        "--report-junit-path", str(ARTIFACTS / "junit.xml"),
    ]
    # cwd: schemathesis keeps its example database in ./.schemathesis; keep it out of the repo root.
    result = subprocess.run(command, capture_output=True, text=True, timeout=150, check=False, cwd=ARTIFACTS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "not_a_server_error" in output or "passed" in output.lower(), output[-3000:]
