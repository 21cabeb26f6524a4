"""Style metrics: ``content_loss`` and ``style_loss`` of stylised images (lower is better).

They score a style model's outputs as ``fid`` scores a CycleGAN's: ``test.py --metrics
content_loss,style_loss`` (one checkpoint or ``--epoch all``) and ``train.py --eval_freq``.
Each output is compared with the two images it was made from, carried by the test dataset's
items: its content input (``"A"``) and its style image(s) (``"style"``, with ``"style_paths"``
and ``"style_weights"`` for a blend of several).

Protocol (recorded with the values, ``StyleMetric.protocol``):

- **Features**: VGG-19 (torchvision's ImageNet weights, max pooling as trained) on RGB images in
  [0, 1], normalised with ImageNet's mean and std. The output is taken as it is saved (8-bit);
  the content and style images as the dataset gives them to the model.
- **content_loss**: mean squared difference of the relu4_1 features of the output and of its
  content input, per image. relu4_1 rather than Gatys' conv4_2: it is the content layer of
  AdaIN's loss and the deepest layer the arbitrary-style models here encode with, so one number
  serves every style model; Gatys' nets were Caffe's, whose in-place ReLU made his "conv4_2"
  a rectified activation too, one convolution further. (fast_style trains on VGG-16's relu2_2:
  this metric is not its training loss echoed back.)
- **style_loss**: the sum over relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (Gatys' five
  layers, equal weights) of the mean squared difference between the output's Gram matrix and
  the style's, each Gram G = F Fᵀ / (C·H·W) over the H·W positions of the (C, H·W) features F
  (Johnson et al.'s normalisation: layers of any size weigh alike, and so do style images of any
  size). A blend of styles s_k with weights w_k (summing to 1) is compared with the blended Gram
  Σ_k w_k G(s_k), as ``models/gatys.py`` blends them. Its zero is an output with exactly the
  blend's statistics, and it differs from the weighted sum of the per-style losses only by a
  term that does not depend on the output: Σ_k w_k ||G - G(s_k)||² = ||G - Ḡ||² + Σ_k w_k ||G(s_k) - Ḡ||².
  With weights (1, 0) it is the loss against the first style alone.
- Both are computed per image and averaged over the images of the test set. Images need sides
  of at least 16 pixels (relu5_1 is at 1/16 resolution).

The values depend on the weights: with ``--random_backbone`` (tests, smoke runs) they are well
defined but say nothing about style. The feature network is not built here: ``metrics`` may not
import ``models`` (DESIGN.md, layers), so the caller passes any ``LayerFeatures`` (the engine
builds ``models.networks.perceptual.perceptual_backbone("vgg19")``, once per process).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import torch

from metrics.base import StyleMetric, StyleSample, compute_metric, register_metric
from util.errors import UserError

BACKBONE = "vgg19"
CONTENT_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
FEATURES = "VGG-19 (ImageNet weights, max pooling), RGB in [0, 1] normalised by ImageNet's mean and std"
WEIGHT_TOLERANCE = 1e-4  # style weights must sum to 1 within this
GRAM_CACHE_SIZE = 16  # style images whose Gram matrices are kept


class LayerFeatures(Protocol):
    """A feature network by layer name (``models.networks.perceptual.FeatureExtractor`` is one):
    images (N, 3, H, W) in [0, 1] -> {layer: features (N, C, h, w)}, normalising them itself."""

    def __call__(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]: ...


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) features -> (N, C, C) Gram matrices over the H·W positions, divided by C·H·W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Per image (shape (N,)): the mean squared difference of two feature maps of equal shape."""
    if output.shape != content.shape:
        raise ValueError(
            f"the output's features are {tuple(output.shape)} but its content input's {tuple(content.shape)}: "
            "content_loss compares an output with an input of its own size"
        )
    return (output - content).pow(2).flatten(1).mean(1)


def style_loss(
    output: Mapping[str, torch.Tensor],
    style_grams: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float],
    layers: Iterable[str] = STYLE_LAYERS,
) -> torch.Tensor:
    """Per image (shape (N,)): Σ over ``layers`` of the mean squared difference between the Gram
    matrix of the ``output`` features and the blend Σ_k weights[k] · style_grams[k] (see the
    module's note)."""
    if len(style_grams) != len(weights) or not style_grams:
        raise ValueError(f"{len(style_grams)} style image(s) but {len(weights)} weight(s)")
    total = None
    for layer in layers:
        gram = gram_matrix(output[layer])
        target = sum(weight * grams[layer] for weight, grams in zip(weights, style_grams, strict=True))
        loss = (gram - target).pow(2).flatten(1).mean(1)
        total = loss if total is None else total + loss
    assert total is not None, "no style layers"
    return total


def check_blend(paths: Sequence[str], weights: Sequence[float], count: int) -> None:
    """A one-line ``UserError`` unless there is one path and one non-negative weight per style
    image and the weights sum to 1 (the agreed item keys ``style``, ``style_paths``, ``style_weights``)."""
    if count == 0 or not (count == len(paths) == len(weights)):
        raise UserError(f"{count} style image(s), {len(paths)} style path(s) and {len(weights)} style weight(s)")
    if min(weights) < 0 or abs(sum(weights) - 1) > WEIGHT_TOLERANCE:
        raise UserError(f"style weights {list(weights)} of {', '.join(paths)} must be non-negative and sum to 1")


class StyleScorer:
    """The chosen style metrics on one feature network ``net`` (on ``device``): ``score`` gives the
    values of each image of a batch. The features of every image are extracted once for all the
    metrics; the Gram matrices of each style image are computed once and kept (for the
    ``GRAM_CACHE_SIZE`` latest style files; a file whose pixels changed is recomputed)."""

    def __init__(self, metrics: Sequence[StyleMetric], net: LayerFeatures, device: torch.device | str) -> None:
        self.metrics = list(metrics)
        self.net = net
        self.device = torch.device(device)
        self.content_layers = list(dict.fromkeys(layer for m in self.metrics for layer in m.content_layers))
        self.style_layers = list(dict.fromkeys(layer for m in self.metrics for layer in m.style_layers))
        self.output_layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self._grams: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def features(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        if not layers:
            return {}
        return {name: f.float() for name, f in self.net(images.to(self.device, torch.float32), layers).items()}

    def style_grams(self, style: torch.Tensor, path: str) -> dict[str, torch.Tensor]:
        """The Gram matrices of one style image (3, H, W) in [0, 1] at the style layers."""
        kept = self._grams.get(path)
        if kept is not None and torch.equal(kept[0], style):
            return kept[1]
        grams = {name: gram_matrix(f) for name, f in self.features(style[None], self.style_layers).items()}
        self._grams.pop(path, None)
        self._grams[path] = (style.detach().clone(), grams)
        while len(self._grams) > GRAM_CACHE_SIZE:
            self._grams.pop(next(iter(self._grams)))
        return grams

    @torch.inference_mode()
    def score(
        self,
        outputs: torch.Tensor,
        contents: torch.Tensor,
        styles: Sequence[Sequence[torch.Tensor]],
        style_paths: Sequence[Sequence[str]],
        style_weights: Sequence[Sequence[float]],
    ) -> list[dict[str, float]]:
        """The metrics of each of the N images: ``outputs`` and ``contents`` (N, 3, H, W) in
        [0, 1]; per image its style images (each (3, h, w) in [0, 1]), their paths and weights."""
        if not len(outputs) == len(contents) == len(styles) == len(style_paths) == len(style_weights):
            raise ValueError("one content image, one list of styles, paths and weights per output")
        for images, paths, weights in zip(styles, style_paths, style_weights, strict=True):
            check_blend(paths, weights, len(images))
        output_features = self.features(outputs, self.output_layers)
        content_features = self.features(contents, self.content_layers)
        values = []
        for i in range(len(outputs)):
            sample = StyleSample(
                output={name: f[i : i + 1] for name, f in output_features.items()},
                content={name: f[i : i + 1] for name, f in content_features.items()},
                style_grams=[self.style_grams(s.float(), p) for s, p in zip(styles[i], style_paths[i], strict=True)]
                if self.style_layers
                else [],
                weights=[float(w) for w in style_weights[i]],
            )
            image_values: dict[str, float] = {}
            for metric in self.metrics:
                image_values.update(compute_metric(metric, sample))
            values.append(image_values)
        return values


def _content_loss(sample: StyleSample) -> dict[str, float]:
    return {"content_loss": content_loss(sample.output[CONTENT_LAYER], sample.content[CONTENT_LAYER]).item()}


def _style_loss(sample: StyleSample) -> dict[str, float]:
    return {"style_loss": style_loss(sample.output, sample.style_grams, sample.weights).item()}


CONTENT_LOSS = register_metric(
    StyleMetric(
        "content_loss",
        higher_is_better=False,
        compute=_content_loss,
        backbone=BACKBONE,
        content_layers=(CONTENT_LAYER,),
        description="MSE of VGG-19 relu4_1 features, output vs its content image",
        protocol=f"mean squared difference of {CONTENT_LAYER} features, output (8-bit, as saved) vs its content "
        f"input; {FEATURES}; per image, averaged over images",
    )
)
STYLE_LOSS = register_metric(
    StyleMetric(
        "style_loss",
        higher_is_better=False,
        compute=_style_loss,
        backbone=BACKBONE,
        style_layers=STYLE_LAYERS,
        description="Σ of Gram-matrix MSEs at VGG-19 relu1_1..relu5_1, output vs its style image(s)",
        protocol=f"sum over {', '.join(STYLE_LAYERS)} of the mean squared difference of Gram matrices "
        "G = F F^T / (C*H*W), output (8-bit, as saved) vs its style image; a blend of styles vs the weighted sum of "
        f"their Grams; {FEATURES}; per image, averaged over images",
    )
)
