"""SSIM on luma, numpy only: enough to show that a faster encoder setting did not buy speed with quality.

The classic Wang et al. index with a uniform 7×7 window (scikit-image's default), computed with summed
area tables so a 2 MP variant costs tens of milliseconds. Absolute values are not comparable with
other tools' SSIM; differences between encoders on the same reference are what the benchmark reports.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WINDOW = 7
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _mean_filter(a: np.ndarray, k: int = WINDOW) -> np.ndarray:
    """Mean over every k×k window that fits ("valid" mode), via a summed-area table."""
    s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.float64)


def ssim(reference: np.ndarray, other: np.ndarray) -> float:
    if reference.shape != other.shape:
        raise ValueError(f"SSIM of different sizes: {reference.shape} vs {other.shape}")
    mu_a, mu_b = _mean_filter(reference), _mean_filter(other)
    var_a = _mean_filter(reference * reference) - mu_a**2
    var_b = _mean_filter(other * other) - mu_b**2
    cov = _mean_filter(reference * other) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
    return float(index.mean())
