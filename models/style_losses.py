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
- ``activation_softmax``: SWAG's activation smoothing (Wang, Li & Vasconcelos, "Rethinking and
  Improving the Robustness of Image Style Transfer", CVPR 2021), which the content and Gram
  losses then compare instead of the raw activations; ``smoothed_activations`` is it rescaled
  to mean 1, the form ``models.gatys`` uses.
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


def activation_softmax(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """SWAG's softmax transformation of one layer's activations, per sample: with F the (C, H·W)
    activation matrix of an image, σ(F)_ik = exp(F_ik / T) / Σ_mn exp(F_mn / T), a softmax over
    all its channels and positions at once (the paper's equation, with T = 1; its code's
    ``softmax3d`` flattens the whole tensor likewise and keeps T as a variable, set to 1). Every
    value becomes positive, the values of a sample sum to 1, their order is kept, and a constant
    added to every activation changes nothing. What it is for: the paper finds that networks
    other than VGG (ResNet above all, through its residual connections) give a few peaky
    activations of low entropy, which the squared Gram and content losses then chase while
    ignoring the rest. After the softmax the many small activations all weigh about
    e^(F_ik / T) ≈ 1 + F_ik / T and only those larger than about T·log(C·H·W) still stand out.
    Activations above that (the FID Inception's reach 10-15 at T = 1, against log(C·H·W) of
    10-12) come out *more* peaky: see the README's measurement."""
    n = features.shape[0]
    return torch.softmax(features.reshape(n, -1) / temperature, dim=1).view_as(features)


def smoothed_activations(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``activation_softmax`` times the number of values per sample (C·H·W): the mean becomes 1,
    whatever the layer's size. A constant factor per layer and image size, so only the loss
    weights change (values of about 1/(C·H·W), e.g. 4e-6, would square to a Gram loss of ~1e-22:
    the paper's code makes up for it with a style weight of 1e17, and L-BFGS's gradient
    tolerance would stop it at once here)."""
    return activation_softmax(features, temperature) * features[0].numel()
