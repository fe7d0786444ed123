"""The local model (all-MiniLM-L6-v2): the ONNX Runtime backend agrees with sentence-transformers on every
text of the WordPress export, the backend is chosen as configured, and the tokenizer seam measures text
in the model's own tokens (Greek and Armenian included)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pipeline.embeddings import local_model
from pipeline.embeddings import text as T
from pipeline.embeddings.config import EmbeddingSettings
from pipeline.embeddings.embedders import LocalEmbedder, make_embedder
from pipeline.embeddings.local_model import LocalModelUnavailable, resolve_backend
from pipeline.importers.wxr_model import WxrItem
from pipeline.importers.wxr_reader import read_wxr
from tests.conftest import IN_CI, SHARED

WXR = SHARED / "testdata" / "cms" / "themeunittestdata.wordpress.xml"
WINDOW_WORDS = 120  # a window of this many words is one passage (what a chunk of a long item looks like)


def require_backend(name: str) -> None:
    """Skip without the backend on a laptop; under CI=true the test extras install both, so fail."""
    if getattr(local_model, f"{name}_available")():
        return
    extra = "local" if name == "onnx" else "torch"
    reason = f"the {name} backend of the local model is not installed (pip install '.[{extra}]')"
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run this test")
    pytest.skip(reason)


def wordpress_texts() -> list[str]:
    """Every text of the export a model could be asked to embed: each item's title, its whole text
    (title, body, excerpt: the model truncates it at 256 tokens) and each window of its body."""
    texts: dict[str, None] = {}
    for record in read_wxr(WXR):
        if not isinstance(record, WxrItem):
            continue
        body = T.plain(record.content)
        for value in (record.title, T.join([record.title, record.content, record.excerpt]), T.plain(record.excerpt)):
            if value.strip():
                texts.setdefault(value, None)
        words = body.split()
        for start in range(0, len(words), WINDOW_WORDS):
            texts.setdefault(" ".join(words[start:start + WINDOW_WORDS]), None)
    return list(texts)


def test_onnx_and_torch_vectors_agree_on_every_wordpress_text() -> None:
    require_backend("onnx")
    require_backend("torch")
    from pipeline.embeddings import onnx_embedder, torch_embedder

    texts = wordpress_texts()
    assert len(texts) > 300
    assert any(len(t.split()) > 400 for t in texts), "long items must be there: they hit the 256-token window"
    assert any("Ελληνικά" in t or "Հայերեն" in t or any("\u0530" <= c <= "\u058f" for c in t) for t in texts)
    ours = onnx_embedder.load().encode(texts)
    reference = torch_embedder.load().encode(texts)
    assert ours.shape == reference.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * reference).sum(axis=1)
    worst = int(cosine.argmin())
    assert cosine.min() >= 0.999, (float(cosine.min()), texts[worst][:120])


def test_onnx_vectors_do_not_depend_on_batching_or_order() -> None:
    require_backend("onnx")
    from pipeline.embeddings import onnx_embedder

    model = onnx_embedder.load()
    texts = ["short", "a somewhat longer sentence about the harbour at dawn " * 3, "Γειά σου κόσμε",
             "Բարեւ Ձեզ, աշխարհ", "long " * 400, ""]
    together = model.encode(texts, batch_size=4)
    alone = np.vstack([model.encode([t]) for t in texts])
    reversed_ = model.encode(texts[::-1], batch_size=2)[::-1]
    assert (together * alone).sum(axis=1).min() > 0.99999
    assert (together * reversed_).sum(axis=1).min() > 0.99999
    assert model.encode([]).shape == (0, 384)


def test_local_embedder_prefers_onnx_and_keeps_the_embedder_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    require_backend("onnx")
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "local")
    monkeypatch.delenv("CHRONICLE_LOCAL_BACKEND", raising=False)
    embedder = make_embedder(EmbeddingSettings())
    assert isinstance(embedder, LocalEmbedder)
    assert (embedder.provider, embedder.model, embedder.dimension, embedder.backend) == \
        ("local", "all-MiniLM-L6-v2", 384, "onnx")
    result = embedder.embed(["a paragraph about violins", "a paragraph about glaciers"])
    assert len(result.vectors) == 2 and all(len(v) == 384 for v in result.vectors)
    assert (result.tokens, result.requests) == (0, 0)  # a local model costs nothing


def test_backend_setting_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_EMBEDDER", "local")
    monkeypatch.setenv("CHRONICLE_LOCAL_BACKEND", "torch")
    embedder = make_embedder(EmbeddingSettings())
    assert isinstance(embedder, LocalEmbedder) and embedder._choice == "torch"
    monkeypatch.setenv("CHRONICLE_LOCAL_BACKEND", "cuda")
    with pytest.raises(ValueError, match="local_backend"):
        EmbeddingSettings()


def test_auto_falls_back_to_torch_and_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    installed = {"onnxruntime": True, "tokenizers": True, "torch": True, "sentence_transformers": True}
    monkeypatch.setattr(local_model, "_installed", lambda *names: all(installed[n] for n in names))
    monkeypatch.setattr(local_model, "torch_model_dir", lambda: tmp_path)
    monkeypatch.setenv(local_model.MODEL_DIR_ENV, str(tmp_path / "nothing-exported-here"))
    assert resolve_backend("auto") == "torch"  # no ONNX files: the fallback
    with pytest.raises(LocalModelUnavailable, match=r"\.\[local\]"):
        resolve_backend("onnx")
    installed["torch"] = False
    with pytest.raises(LocalModelUnavailable, match=r"no local model installed"):
        resolve_backend("auto")
    with pytest.raises(LocalModelUnavailable, match=r"\.\[torch\]"):
        resolve_backend("torch")
    with pytest.raises(LocalModelUnavailable, match="auto, onnx, torch"):
        resolve_backend("gpu")
    (tmp_path / "exported").mkdir()
    for name in (local_model.ONNX_FILE, local_model.TOKENIZER_FILE):
        (tmp_path / "exported" / name).write_bytes(b"")
    monkeypatch.setenv(local_model.MODEL_DIR_ENV, str(tmp_path / "exported"))
    assert resolve_backend("auto") == "onnx"
    assert local_model.onnx_model_dir() == tmp_path / "exported"


def test_a_missing_model_is_a_permanent_error_on_embed_not_on_construction(monkeypatch, tmp_path) -> None:
    from pipeline.errors import PermanentError

    monkeypatch.setattr(local_model, "_installed", lambda *names: False)
    embedder = LocalEmbedder()  # constructing (status, search --mode fts) never needs the model
    with pytest.raises(PermanentError, match="no local model installed"):
        embedder.embed(["x"])


def test_tokenizer_counts_and_offsets_in_model_tokens() -> None:
    pytest.importorskip("tokenizers")
    try:
        from pipeline.embeddings.tokenizer import WINDOW_TOKENS, local_tokenizer, token_count, token_offsets
        local_tokenizer()
    except LocalModelUnavailable as exc:
        require_backend("onnx")  # skips or fails with the reason
        raise AssertionError(exc) from exc
    assert WINDOW_TOKENS == 254
    text = "The bakery by the harbour — Γειά σου κόσμε — Բարեւ Ձեզ"
    offsets = token_offsets(text)
    assert token_count(text) == len(offsets) and token_count(text, special_tokens=True) == len(offsets) + 2
    pieces = [text[a:b] for a, b in offsets]
    assert pieces[:3] == ["The", "bakery", "by"]
    assert all(piece and piece in text for piece in pieces)
    assert offsets == sorted(offsets) and all(0 <= a < b <= len(text) for a, b in offsets)
    greek = "Γειά σου κόσμε"  # uncased WordPiece strips accents: still one token span per word piece
    assert 3 <= token_count(greek) <= 12
    long_text = "word " * 1000
    assert token_count(long_text) == 1000  # no truncation: chunking needs the whole text measured
    encoding = local_tokenizer().encode("hello")
    assert encoding.tokens == ["[CLS]", "hello", "[SEP]"] and encoding.attention_mask == [1, 1, 1]


def test_model_info_names_the_backend(data_dir) -> None:
    from tests.helpers import cli

    require_backend("onnx")
    done = cli("model", "info", "--json", env={"CHRONICLE_LOCAL_BACKEND": "auto"}, check=True)
    import orjson

    info = orjson.loads(done.stdout)
    assert info["backend"] == "onnx" and info["onnx"]["available"] and info["problem"] is None


def test_export_reproduces_the_shipped_model(tmp_path) -> None:
    """``chronicle model export`` from the torch weights gives the vectors of the file the repo ships."""
    require_backend("onnx")
    require_backend("torch")
    if importlib.util.find_spec("onnx") is None:
        reason = "the onnx package is not installed (pip install '.[export]')"
        if IN_CI:
            pytest.fail(f"{reason}, and CI=true: CI must run this test")
        pytest.skip(reason)
    from pipeline.embeddings import onnx_embedder
    from tests.helpers import cli

    out = tmp_path / "export"
    cli("model", "export", "--output", str(out), check=True)
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "tokenizer.json", "config.json", "export.json"}
    assert 40e6 < (out / "model.onnx").stat().st_size < 50e6  # fp16 storage: half of 90 MB
    texts = ["the bakery by the harbour", "Γειά σου κόσμε", "long " * 300]
    fresh = onnx_embedder.OnnxModel(out).encode(texts)
    shipped = onnx_embedder.load().encode(texts)
    assert (fresh * shipped).sum(axis=1).min() > 0.99999
