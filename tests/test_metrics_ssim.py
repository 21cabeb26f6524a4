"""Our SSIM against an independent implementation: scikit-image's structural_similarity with
the settings of Wang et al. 2004 (Gaussian weights, sigma 1.5, population covariance), which is
what metrics/paired.py implements; L1 and PSNR against their formulas in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from metrics.paired import l1, psnr, ssim


def image_pairs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in ((32, 32), (48, 40), (11, 64)):
        clean = rng.random((h, w, 3))
        noisy = np.clip(clean + rng.normal(0, rng.uniform(0.02, 0.3), clean.shape), 0, 1)
        pairs.append((clean, noisy))
    flat = np.full((20, 20, 3), 0.5)
    pairs.append((flat, np.clip(flat + 0.1 * rng.random(flat.shape), 0, 1)))  # a flat reference
    pairs.append((pairs[0][0], pairs[0][0]))  # identical: SSIM 1
    return pairs


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.transpose(2, 0, 1)[None].copy()).float()


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_agrees_with_scikit_image(seed: int) -> None:
    for reference, other in image_pairs(seed):
        expected = structural_similarity(
            reference,
            other,
            channel_axis=2,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        got = ssim(as_tensor(other), as_tensor(reference)).item()
        assert got == pytest.approx(expected, abs=2e-5), (reference.shape, got, expected)


def test_l1_and_psnr_agree_with_their_formulas() -> None:
    for reference, other in image_pairs(2)[:-1]:
        pred, target = as_tensor(other), as_tensor(reference)
        assert l1(pred, target).item() == pytest.approx(np.abs(other - reference).mean(), rel=1e-5)
        expected = peak_signal_noise_ratio(reference, other, data_range=1.0)
        assert psnr(pred, target).item() == pytest.approx(expected, rel=1e-5)
