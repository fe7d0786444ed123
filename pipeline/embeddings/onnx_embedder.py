"""all-MiniLM-L6-v2 through ONNX Runtime and ``tokenizers``: sentence-transformers' vectors without torch.

The same computation as ``SentenceTransformer(all-MiniLM-L6-v2).encode(..., normalize_embeddings=True)``:
WordPiece with [CLS]/[SEP], truncation to 256 tokens, the BERT encoder, mean pooling over the attention
mask, L2 normalisation. Texts are tokenized once, then run in batches of similar length (sorted by
token count, as sentence-transformers does): padding a 20-token section to a 256-token page's length
costs ~3× the compute, and that is where a naive loop loses to torch.

The session is opened once per process and model directory, lazily, and shared by every embedder
instance and thread (``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .local_model import MAX_SEQ_LENGTH, ONNX_FILE, TOKENIZER_FILE, LocalModelUnavailable, onnx_model_dir

BATCH_SIZE = 32


class OnnxModel:
    """The loaded tokenizer and session for one model directory."""

    def __init__(self, directory: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()  # batches are padded here, per batch, after sorting by length
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1  # one chain of ops; intra-op threads default to the cores
        options.log_severity_level = 3  # the exporter's harmless shape warnings are not the user's concern
        self.session = ort.InferenceSession(str(directory / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            vectors = self._run([encodings[i].ids for i in rows])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        feeds: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self.session.run(None, feeds)[0]
        return mean_pool_normalise(hidden, mask)


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling (padding excluded) followed by L2 normalisation."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_lock = threading.Lock()
_models: dict[Path, OnnxModel] = {}


def load(directory: Path | None = None) -> OnnxModel:
    """The process-wide model for ``directory`` (default: the installed ONNX files)."""
    directory = directory or onnx_model_dir()
    if directory is None:
        raise LocalModelUnavailable("the exported all-MiniLM-L6-v2 ONNX files are not installed: "
                                    "pip install '.[local]' ./models/minilm-onnx")
    with _lock:
        model = _models.get(directory)
        if model is None:
            model = _models[directory] = OnnxModel(directory)
        return model
