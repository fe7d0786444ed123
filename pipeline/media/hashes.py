"""Placeholders and fingerprints computed from pixels: BlurHash and a DCT perceptual hash.

Both are small, fully specified algorithms, written here with numpy instead of pulling two more
packages (one of which closes the image you pass it). ``tests/test_media_metadata.py`` checks them
against the reference packages when those are installed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _base83(value: int, length: int) -> str:
    return "".join(_B83[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    v = values / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(value: float) -> int:
    v = min(max(value, 0.0), 1.0)
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_pow(value: float, exp: float) -> float:
    return math.copysign(abs(value) ** exp, value)


def blurhash(im: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash (https://blurha.sh) of an RGB image; pass a small one (≤ 64 px): cost is w×h×components."""
    rgb = _srgb_to_linear(np.asarray(im.convert("RGB"), dtype=np.float64))
    height, width = rgb.shape[:2]
    xs, ys = np.arange(width), np.arange(height)
    factors = []
    for j in range(y_components):
        for i in range(x_components):
            basis = np.outer(np.cos(np.pi * j * ys / height), np.cos(np.pi * i * xs / width))
            norm = 1.0 if i == j == 0 else 2.0
            factors.append((basis[:, :, None] * rgb).sum(axis=(0, 1)) * norm / (width * height))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        actual_max = max(float(np.abs(f).max()) for f in ac)
        quantised = int(max(0, min(82, math.floor(actual_max * 166 - 0.5))))
        max_value = (quantised + 1) / 166
        out += _base83(quantised, 1)
    else:
        max_value = 1.0
        out += _base83(0, 1)
    r, g, b = (_linear_to_srgb(float(c)) for c in dc)
    out += _base83((r << 16) + (g << 8) + b, 4)
    for f in ac:
        q = [int(max(0, min(18, math.floor(_sign_pow(float(c) / max_value, 0.5) * 9 + 9.5)))) for c in f]
        out += _base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2)
    return out


def _dct_matrix(n: int) -> np.ndarray:
    k, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.cos(np.pi * k * (2 * x + 1) / (2 * n))


_DCT32 = _dct_matrix(32)


def phash(im: Image.Image, hash_size: int = 8) -> str:
    """64-bit perceptual hash (the ``imagehash.phash`` algorithm): near-duplicates differ in few bits.

    Grayscale 32×32 → 2-D DCT → the 8×8 lowest frequencies compared with their median → hex.
    """
    pixels = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    dct = _DCT32 @ pixels @ _DCT32.T
    low = dct[:hash_size, :hash_size]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{math.ceil(bits.size / 4)}x}"
