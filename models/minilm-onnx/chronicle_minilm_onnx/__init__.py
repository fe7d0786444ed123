"""all-MiniLM-L6-v2 as ONNX for Chronicle: ``FILES`` holds ``model.onnx``, ``tokenizer.json`` and ``export.json``."""

from pathlib import Path

FILES = Path(__file__).resolve().parent / "files"
__all__ = ["FILES"]
