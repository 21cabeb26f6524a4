"""Kernel Inception Distance (Bińkowski et al. 2018) from Inception pool3 features.

KID is the squared maximum mean discrepancy between the two feature distributions with the
cubic polynomial kernel k(x, y) = (x·y / d + 1)^3, estimated without bias (the U-statistic:
within-set kernel sums leave out the diagonal). Unlike FID it is unbiased in the number of
images, so small test sets (e.g. horse2zebra's 120/140) can be compared.

As in the reference implementations, the estimate is averaged over random subsets (default
100 subsets of 1000 images, clipped to the smaller set) and the standard deviation over
subsets is reported too. Subsets are drawn with a fixed seed, so the value is reproducible.
"""

from __future__ import annotations

import numpy as np

from metrics.base import UnpairedMetric, register_metric
from util.errors import UserError


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)^3 for all rows of x and y: shape (len(x), len(y))."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between samples x (m, d) and y (n, d), m, n >= 2."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # the diagonal k(x_i, x_i) would bias the within-set means upwards: leave it out
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    term_xy = k_xy.sum() / (m * n)
    return float(term_xx + term_yy - 2 * term_xy)


def kid_from_features(
    fake: np.ndarray,
    real: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``num_subsets`` random subsets, in float64."""
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    m = min(subset_size, len(fake), len(real))
    if m < 2:
        raise UserError(f"KID needs at least 2 images per set, got {len(fake)} and {len(real)}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def _compute(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    mean, std = kid_from_features(fake, real)
    return {"kid": mean, "kid_std": std}


KID = register_metric(
    UnpairedMetric(
        name="kid",
        higher_is_better=False,
        compute=_compute,
        description="Kernel Inception Distance: unbiased MMD^2, cubic kernel, 100 subsets of <=1000",
    )
)
