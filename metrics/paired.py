"""Paired metrics between translations and ground truth: L1, PSNR, SSIM.

All functions take float tensors in [0, 1] of shape (N, C, H, W) and return one value per
image (shape (N,)), so callers can average however their protocol says. Images are compared
after 8-bit quantisation when they come from files, which is what a viewer sees.

The bottom of the file registers ``l1``, ``psnr`` and ``ssim`` in ``METRICS``: each scores one
(prediction, ground truth) pair made by ``load_pair``; ``evaluate_dirs`` averages over images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from metrics.base import PairedMetric, register_metric
from metrics.features import load_image


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, in [0, 1] units."""
    return (pred - target).abs().flatten(1).mean(1)


def psnr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, data range 1."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(eps))


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = g[:, None] * g[None, :]
    return window.expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004): Gaussian 11x11 window, sigma 1.5, K1 0.01,
    K2 0.03, data range 1, 'valid' filtering, averaged over pixels and channels. Computed in
    float64: the variances are differences of nearly equal means (E[x^2] - E[x]^2), which float32
    gets wrong by ~1e-5 on flat images (the scikit-image agreement test found it)."""
    dtype = pred.dtype
    pred, target = pred.double(), target.double()
    channels = pred.shape[1]
    window = _gaussian_window(window_size, sigma, channels, pred.device)
    c1, c2 = 0.01**2, 0.03**2

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_x, mu_y = filt(pred), filt(target)
    var_x = filt(pred * pred) - mu_x**2
    var_y = filt(target * target) - mu_y**2
    cov = filt(pred * target) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1).to(dtype)


def load_unit(path: str | Path) -> torch.Tensor:
    """An image file as a 1x3xHxW float tensor in [0, 1] (decoded as for FID features)."""
    return load_image(path).unsqueeze(0)


def load_pair(pred_path: str | Path, gt_path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A (prediction, ground truth) pair of 1x3xHxW tensors in [0, 1] of the same size."""
    pred, gt = load_unit(pred_path), load_unit(gt_path)
    if pred.shape != gt.shape:
        # ground truth at another resolution: compare at the prediction's size
        gt = F.interpolate(gt, size=pred.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return pred, gt


def _per_pair(
    name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor, torch.Tensor], dict[str, float]]:
    """A registry ``compute``: ``fn`` on one pair; the caller (``score_pairs``) averages over images."""

    def compute(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        return {name: fn(pred, gt).item()}

    return compute


L1 = register_metric(
    PairedMetric("l1", higher_is_better=False, compute=_per_pair("l1", l1), description="mean absolute error")
)
PSNR = register_metric(
    PairedMetric("psnr", higher_is_better=True, compute=_per_pair("psnr", psnr), description="PSNR in dB")
)
SSIM = register_metric(
    PairedMetric("ssim", higher_is_better=True, compute=_per_pair("ssim", ssim), description="SSIM, 11x11 Gaussian")
)
