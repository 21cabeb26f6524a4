"""The losses of neural style transfer, on features from ``models.networks.perceptual``.

- ``gram_matrix``: G = F Fᵀ of the (C, H·W) feature matrix F, divided by C·H·W (Johnson et al.'s
  normalisation, which makes style weights independent of the layer's size). For
  F = [[1, 2], [3, 4]] the unnormalised Gram is [[10, 14], [14, 20]].
- ``content_loss``: mean squared difference of features (Gatys: conv4_2; Johnson: relu2_2).
- ``style_loss``: Σ_l w_l · mean squared difference of Gram matrices (Gatys: conv1_1..conv5_1;
  Johnson: relu1_2..relu4_3).
- ``mean_std_loss``: Σ_l squared differences of the channel means plus of the channel stds,
  averaged (AdaIN's style loss, relu1_1..relu4_1).
- ``total_variation``: the mean absolute difference between neighbouring pixels, vertically
  plus horizontally (anisotropic TV: it penalises noise, not edges as much as a squared TV).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from models.networks.perceptual import channel_mean_std


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """(N, C, H, W) features -> (N, C, C) Gram matrices (over the H·W positions), divided by
    C·H·W when ``normalize``."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    return gram / (c * h * w) if normalize else gram


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features, target)


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Σ over the layers of ``target_grams`` of weight × MSE(Gram(features), target Gram). A
    target Gram of batch 1 applies to every image of the batch (one style image)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, target in target_grams.items():
        gram = gram_matrix(features[name])
        total = total + (weights or {}).get(name, 1.0) * F.mse_loss(gram, target.expand_as(gram))
    return total


def mean_std_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Σ over the layers of MSE(channel means) + MSE(channel stds), features against ``targets``."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, target in targets.items():
        mean, std = channel_mean_std(features[name])
        target_mean, target_std = channel_mean_std(target)
        total = total + F.mse_loss(mean, target_mean.expand_as(mean)) + F.mse_loss(std, target_std.expand_as(std))
    return total


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean |vertical neighbour difference| + mean |horizontal neighbour difference|."""
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return vertical + horizontal
