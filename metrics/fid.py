"""Fréchet Inception Distance (Heusel et al. 2017) from Inception pool3 features.

FID = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), the Fréchet distance between
Gaussians fitted to the two feature sets (mean and unbiased covariance, rows are images), in
float64. Only the trace of the square root is needed, and it is computed exactly, without a
matrix square root and without changing the covariances:

- **from statistics** (``frechet_distance``): Tr((S1 S2)^(1/2)) is the sum of the square roots of
  the eigenvalues of S1 S2, which equal those of the symmetric positive semi-definite matrix
  S1^(1/2) S2 S1^(1/2). With S1 = V diag(w) V^T (``eigh``), that matrix is similar to
  diag(sqrt w) V^T S2 V diag(sqrt w), whose eigenvalues ``eigvalsh`` returns, real by
  construction. Eigenvalues of S1 below rounding level (w <= D * machine eps * max w) are dropped
  and negative eigenvalues left by rounding are set to 0.
- **from features** (``fid_from_features``, when it is cheaper: fewer images than dimensions, as
  for any test set against 2048-d features): with A, B the centred features divided by
  sqrt(n - 1), S1 = A^T A and S2 = B^T B, and the non-zero eigenvalues of S1 S2 are the squared
  singular values of the small n1 x n2 matrix A B^T, so Tr((S1 S2)^(1/2)) is the sum of its
  singular values; no D x D matrix is formed.

Both routes give the same number. Unlike TTUR / pytorch-fid (``scipy.linalg.sqrtm`` of the
product, retried with 1e-6 added to both diagonals when that is not finite, and an error when an
imaginary part remains), nothing is added to the covariances and nothing can come out complex, so
a finite set of at least 2 images per side always gives a finite value. Where pytorch-fid 0.3.0
succeeds the two agree to about 1e-6 relative (``tests/test_metrics_fid_kid.py``). Rounding can
leave a result a hair below 0 for identical sets; it is reported as 0, as FID cannot be negative.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import linalg

from metrics.base import UnpairedMetric, register_metric
from util.errors import UserError

Route = Literal["auto", "features", "statistics"]


def _as_features(features: np.ndarray, what: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise UserError(f"FID needs at least 2 images per set, got features of shape {features.shape}")
    if not np.isfinite(features).all():
        # NaN features come from broken weights or images; a NaN FID would only look like a bad score
        raise UserError(f"FID: the {what} features contain NaN or inf (broken Inception weights or images?)")
    return features


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, rows are samples) in float64."""
    features = _as_features(features, "input")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _clipped_sqrt_sum(eigenvalues: np.ndarray) -> float:
    # the matrices are PSD: a negative eigenvalue is rounding around 0
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) of two covariance matrices, via symmetric eigendecompositions only."""
    w, v = linalg.eigh(sigma1, check_finite=False)
    # Eigenvalues at rounding level are zeros of a rank-deficient S1 (fewer images than
    # dimensions); keeping them would only add square roots of rounding noise.
    keep = w > max(w.max(), 0.0) * len(w) * np.finfo(np.float64).eps
    if not keep.any():
        return 0.0  # S1 = 0: the product is 0
    v, root_w = v[:, keep], np.sqrt(w[keep])
    inner = (v.T @ sigma2 @ v) * root_w[:, None] * root_w[None, :]
    inner = (inner + inner.T) / 2  # symmetric up to rounding; eigvalsh reads one triangle
    return _clipped_sqrt_sum(linalg.eigvalsh(inner, check_finite=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (see the module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        raise UserError("FID: the feature statistics contain NaN or inf")
    # np.cov is symmetric only up to rounding; eigh would read just one triangle of it
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def _features_route_is_cheaper(n1: int, n2: int, dim: int) -> bool:
    # Rough flop counts: A B^T and its singular values vs two covariances and a D x D eigh
    # (a few D^3). Both routes are exact; this only picks the faster.
    small, large = sorted((n1, n2))
    return n1 * n2 * dim + 4 * small * small * large < (n1 + n2) * dim * dim + 4 * dim**3


def fid_from_features(fake: np.ndarray, real: np.ndarray, *, route: Route = "auto") -> float:
    """FID between two feature arrays of shape (N, D).

    ``route``: ``"features"`` (singular values of the n1 x n2 cross product), ``"statistics"``
    (``frechet_distance`` of the means and covariances) or ``"auto"``, the cheaper of the two.
    """
    fake, real = _as_features(fake, "translated"), _as_features(real, "real")
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"features differ in dimension: {fake.shape} vs {real.shape}")
    if route == "auto":
        route = "features" if _features_route_is_cheaper(len(fake), len(real), fake.shape[1]) else "statistics"
    if route == "statistics":
        mu1, sigma1 = fake.mean(axis=0), np.cov(fake, rowvar=False)
        mu2, sigma2 = real.mean(axis=0), np.cov(real, rowvar=False)
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    if route != "features":
        raise ValueError(f"unknown route {route!r}")
    mu1, mu2 = fake.mean(axis=0), real.mean(axis=0)
    a = (fake - mu1) / np.sqrt(len(fake) - 1)
    b = (real - mu2) / np.sqrt(len(real) - 1)
    # gesvd (QR iterations) rather than the default divide-and-conquer gesdd, which can fail to converge
    singular_values = linalg.svd(a @ b.T, compute_uv=False, check_finite=False, lapack_driver="gesvd")
    diff = mu1 - mu2
    value = diff @ diff + np.sum(a * a) + np.sum(b * b) - 2 * singular_values.sum()
    return max(float(value), 0.0)


FID = register_metric(
    UnpairedMetric(
        name="fid",
        higher_is_better=False,
        compute=lambda fake, real: {"fid": fid_from_features(fake, real)},
        description="Fréchet Inception Distance (pool3, pytorch-fid features, exact trace of the square root)",
    )
)
