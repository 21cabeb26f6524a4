"""Fréchet Inception Distance (Heusel et al. 2017) from Inception pool3 features.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the Fréchet distance between Gaussians
fitted to the two feature sets. Computed in float64 with the same numerical steps as the
reference implementations (TTUR / pytorch-fid), so values are comparable with theirs:
``scipy.linalg.sqrtm`` of the product; if that is not finite (a singular product, e.g. fewer
images than feature dimensions), retry with 1e-6 added to both diagonals; drop an imaginary
part that rounding leaves behind, but refuse a large one.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from metrics.base import UnpairedMetric, register_metric
from util.errors import UserError


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, rows are samples) in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise UserError(f"FID needs at least 2 images per set, got features of shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # With fewer images than feature dimensions (120 test images, 2048-d) the product is always
    # singular and scipy warns on every call; the reference implementations silence that
    # warning (pytorch-fid passes disp=False) and so do we; the caller handles non-finite results.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2

    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))

    # The product of two PSD matrices has real, non-negative eigenvalues; rounding can still
    # leave a tiny imaginary part. A large one means the statistics are broken.
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real

    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(fake: np.ndarray, real: np.ndarray) -> float:
    """FID between two feature arrays of shape (N, D)."""
    mu1, sigma1 = feature_statistics(fake)
    mu2, sigma2 = feature_statistics(real)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


FID = register_metric(
    UnpairedMetric(
        name="fid",
        higher_is_better=False,
        compute=lambda fake, real: {"fid": fid_from_features(fake, real)},
        description="Fréchet Inception Distance (pool3, pytorch-fid protocol)",
    )
)
