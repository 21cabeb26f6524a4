"""Neural style transfer by optimisation (Gatys, Ecker & Bethge, CVPR 2016): an image whose
content features match one image's and whose Gram matrices match a blend of style images'.

``stylize`` does the optimisation on images in [0, 1]; ``stylize.py`` is its command line.

- Loss: content_weight · MSE(conv4_2) + style_weight · Σ_l MSE(Gram_l) / |layers| +
  tv_weight · TV, with Grams normalised by C·H·W (``models.style_losses``) and the style
  layers conv1_1 ... conv5_1 weighted equally. Several styles: their Grams blended with the
  given weights (normalised to sum 1).
- Optimisers (``OPTIMIZERS``): L-BFGS (the paper's; one iteration per step) or Adam.
- Start from the content image or from uniform noise; the image is clipped to [0, 1] after
  each step.
- ``preserve_color``: luminance-only transfer (Gatys et al. 2017, "Controlling perceptual
  factors"): content and styles become their luminance (YIQ's Y, the styles' matched to the
  content's mean and std), the optimised luminance gets the content's I and Q back.
- ``scales`` > 1: coarse to fine, each scale twice the previous' size, the result of one
  upsampled as the start of the next (large outputs without the large images' poor minima).
- ``swag``: SWAG activation smoothing (Wang et al., CVPR 2021): both losses compare each
  layer's activations after a softmax over all its values (``models.style_losses``
  ``smoothed_activations``), which the paper finds makes non-VGG backbones stylise.
- Layers: any of the extractor's, by name (``content_layers``, ``style_layers``); the defaults
  are the paper's VGG-19 ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.networks.perceptual import FeatureExtractor
from models.style_losses import content_loss, gram_matrix, smoothed_activations, style_loss, total_variation
from util.errors import UserError
from util.registry import Registry

GATYS_CONTENT_LAYERS = ("conv4_2",)
GATYS_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
INITS = ("content", "noise")

# RGB -> YIQ (NTSC), rows Y, I, Q
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class GatysConfig:
    steps: int = 300
    optimizer: str = "lbfgs"
    lr: float = 0.02  # Adam only (images in [0, 1])
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    init: str = "content"
    preserve_color: bool = False
    scales: int = 1
    swag: bool = False  # compare softmax-smoothed activations (SWAG)
    swag_temperature: float = 1.0  # the softmax's T (the paper's: 1)
    content_layers: tuple[str, ...] = GATYS_CONTENT_LAYERS
    style_layers: tuple[str, ...] = GATYS_STYLE_LAYERS


OPTIMIZERS = Registry("stylize optimizer")


@OPTIMIZERS.register("lbfgs")
def lbfgs(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.LBFGS(params, lr=1.0, max_iter=1, history_size=50)


@OPTIMIZERS.register("adam")
def adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


StepCallback = Callable[[int, int, torch.Tensor, dict[str, float]], None]  # (scale, step, image, losses)


def check_config(config: GatysConfig) -> None:
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"--optimizer must be one of {', '.join(OPTIMIZERS.names())}, got '{config.optimizer}'")
    if config.init not in INITS:
        raise UserError(f"--init must be one of {', '.join(INITS)}, got '{config.init}'")
    if config.steps < 1 or config.scales < 1:
        raise UserError(f"--steps and --scales must be at least 1, got {config.steps} and {config.scales}")


def rgb_to_yiq(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", RGB_TO_YIQ.to(images), images)


def yiq_to_rgb(images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(RGB_TO_YIQ).to(images), images)


def luminance_image(images: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """The Y channel repeated to 3 channels; with ``like``, its mean and std matched to ``like``'s
    luminance (how a style's luminance is brought to the content's)."""
    y = rgb_to_yiq(images)[:, :1]
    if like is not None:
        target = rgb_to_yiq(like)[:, :1]
        y = (y - y.mean()) / (y.std() + 1e-8) * target.std() + target.mean()
    return y.clamp(0, 1).repeat(1, 3, 1, 1)


def with_content_color(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of ``result`` (its channels' mean: it is grey) with ``content``'s I and Q."""
    yiq = rgb_to_yiq(content)
    yiq[:, :1] = result.mean(1, keepdim=True)
    return yiq_to_rgb(yiq).clamp(0, 1)


def scale_sizes(height: int, width: int, scales: int) -> list[tuple[int, int]]:
    """Coarse to fine: each scale half the next one's size, the last (height, width)."""
    return [(max(1, round(height / 2**k)), max(1, round(width / 2**k))) for k in reversed(range(scales))]


def resized(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def stylize(
    extractor: FeatureExtractor,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    style_weights: Sequence[float],
    config: GatysConfig,
    generator: torch.Generator | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """The stylised image (1, 3, H, W) in [0, 1] of ``content`` (1, 3, H, W) in [0, 1], with the
    ``styles`` (each (1, 3, h, w), resized to the content's size at each scale) blended by
    ``style_weights``. ``on_step(scale, step, image, losses)`` after every step."""
    check_config(config)
    if len(styles) != len(style_weights) or not styles:
        raise UserError(f"{len(styles)} style image(s) but {len(style_weights)} style weight(s)")
    if min(style_weights) < 0 or sum(style_weights) <= 0:
        raise UserError(f"style weights must be non-negative and not all 0, got {list(style_weights)}")
    blend = [w / sum(style_weights) for w in style_weights]
    original = content
    if config.preserve_color:
        styles = [luminance_image(style, like=content) for style in styles]
        content = luminance_image(content)
    image = None
    for scale, size in enumerate(scale_sizes(*content.shape[-2:], config.scales)):
        target = resized(content, size)
        if image is None:
            noise = torch.rand(target.shape, generator=generator).to(target)
            image = target.clone() if config.init == "content" else noise
        else:
            image = resized(image, size)
        image = optimise(extractor, image, target, [resized(s, size) for s in styles], blend, config, scale, on_step)
    return with_content_color(image, original) if config.preserve_color else image


def optimise(
    extractor: FeatureExtractor,
    start: torch.Tensor,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    blend: Sequence[float],
    config: GatysConfig,
    scale: int,
    on_step: StepCallback | None,
) -> torch.Tensor:
    """``config.steps`` optimiser steps at one scale, from ``start``."""
    layers = list(dict.fromkeys([*config.content_layers, *config.style_layers]))

    def compared(image: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """What the losses compare: the activations, or with ``swag`` their smoothed form."""
        features = extractor(image, names)
        if not config.swag:
            return features
        return {n: smoothed_activations(f, config.swag_temperature) for n, f in features.items()}

    with torch.no_grad():
        content_targets = compared(content, config.content_layers)
        grams = {name: torch.zeros(()) for name in config.style_layers}
        for style, weight in zip(styles, blend, strict=True):
            for name, features in compared(style, config.style_layers).items():
                grams[name] = grams[name] + weight * gram_matrix(features)
    per_layer = {name: 1 / len(config.style_layers) for name in config.style_layers}
    # contiguous: L-BFGS views the gradient flat, which fails for a permuted (channels-last) start
    image = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    optimizer = OPTIMIZERS.get(config.optimizer)([image], config.lr)
    latest: dict[str, float] = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        features = compared(image, layers)
        c = sum(content_loss(features[n], content_targets[n]) for n in config.content_layers)
        s = style_loss(features, grams, per_layer)
        tv = total_variation(image)
        total = config.content_weight * c + config.style_weight * s + config.tv_weight * tv
        total.backward()
        latest.update({k: float(v.detach()) for k, v in (("content", c), ("style", s), ("tv", tv), ("total", total))})
        return total

    for step in range(1, config.steps + 1):
        optimizer.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        if on_step is not None:
            on_step(scale, step, image.detach(), dict(latest))
    return image.detach()
