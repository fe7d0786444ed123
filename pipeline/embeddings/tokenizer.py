"""The local model's own tokenizer (all-MiniLM-L6-v2's ``tokenizer.json``, via the ``tokenizers`` package).

For measuring text in the model's tokens (chunking) and for the ONNX embedder. ``local_tokenizer()``
is the plain WordPiece tokenizer: no truncation and no padding (the file itself asks for 128-token
truncation and padding, which suits neither use), special tokens added by ``encode`` unless
``add_special_tokens=False``. Offsets are character offsets into the text given.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from .local_model import MAX_SEQ_LENGTH, tokenizer_file

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Content tokens that fit the model's window next to [CLS] and [SEP].
WINDOW_TOKENS = MAX_SEQ_LENGTH - 2

_lock = threading.Lock()


@functools.cache
def _load() -> Tokenizer:
    from tokenizers import Tokenizer  # imported on first use: most processes never tokenize

    tokenizer = Tokenizer.from_file(str(tokenizer_file()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def local_tokenizer() -> Tokenizer:
    """The shared tokenizer (loaded once per process, ~50 ms). Do not change its truncation or padding:
    take a copy (``Tokenizer.from_str(local_tokenizer().to_str())``) to configure your own."""
    with _lock:
        return _load()


def token_count(text: str, *, special_tokens: bool = False) -> int:
    """How many model tokens ``text`` is (without [CLS]/[SEP] unless ``special_tokens``)."""
    return len(local_tokenizer().encode(text, add_special_tokens=special_tokens).ids)


def token_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets in ``text`` of each of its tokens, special tokens left out."""
    return list(local_tokenizer().encode(text, add_special_tokens=False).offsets)
