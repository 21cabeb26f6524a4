"""Perceptual features: a pretrained CNN's activations by layer name, for the style-transfer
losses (``models.style_losses``) of Gatys et al., Johnson et al. and AdaIN.

    extractor = perceptual_backbone("vgg19", pooling="avg")          # weights from torchvision's cache
    extractor = perceptual_backbone("vgg16", weights="vgg16.pth")    # or a file (--vgg_weights)
    features = extractor(images, ["conv4_2", "relu1_1"])             # images in [0, 1]: {name: tensor}

Layers are named as the papers name them: ``conv<b>_<i>``, ``relu<b>_<i>`` for the i-th
convolution of block b, ``pool<b>`` for the pooling that ends it (VGG-19: conv1_1 ... conv5_4, 16
convolutions and 5 poolings; VGG-16: 13 and 5). Inputs are images in [0, 1], normalised here
with ImageNet's mean and std as the backbones were trained. The extractor stops after the
deepest layer asked for, holds no gradients of its own (frozen, eval mode), and passes
gradients to its input (Gatys optimises the image).

Any feature network works: ``FeatureExtractor(features, names, mean=..., std=...)`` takes an
``nn.Sequential``, one name per module and the input normalisation the network expects
(``stylize.py`` wraps the FID Inception-v3 of ``metrics.inception`` so). Backbones are
registered in ``BACKBONES`` with their spec: the torchvision builder and the file name of
torchvision's ImageNet weights (its cache name, whose ``-<hash>`` part is the start of the file's
SHA-256). No weights are downloaded here: without a file the error says where to put one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from util.errors import UserError
from util.fileio import file_sha256, name_hash_prefix
from util.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ("max", "avg")


@dataclass(frozen=True)
class BackboneSpec:
    weights_file: str  # torchvision's name for its ImageNet weights (in torch hub's cache)


BACKBONES = Registry("perceptual backbone", BackboneSpec)


# Output channels of each 3x3 convolution, "M" a 2x2 pooling (Simonyan & Zisserman, configurations
# E and D), in the order of torchvision's ``features`` so that its state dicts load by index.
VGG19_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg_features(layers: Sequence[int | str]) -> nn.Sequential:
    """VGG's convolutional part (no classifier: nothing to build or initialise for it). The
    ReLUs are not in place, so a convolution's output stays as it was when it is returned."""
    modules: list[nn.Module] = []
    channels = 3
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2, 2))
        else:
            modules += [nn.Conv2d(channels, int(layer), 3, padding=1), nn.ReLU()]
            channels = int(layer)
    return nn.Sequential(*modules)


@BACKBONES.register("vgg19", weights_file="vgg19-dcbb9e9d.pth")
def vgg19_features() -> nn.Sequential:
    return vgg_features(VGG19_LAYERS)


@BACKBONES.register("vgg16", weights_file="vgg16-397923af.pth")
def vgg16_features() -> nn.Sequential:
    return vgg_features(VGG16_LAYERS)


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """``conv<b>_<i>``, ``relu<b>_<i>``, ``pool<b>`` for each module of a VGG ``features``."""
    names, block, conv = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise ValueError(f"unexpected module in a VGG feature stack: {module}")
    return names


class FeatureExtractor(nn.Module):
    """The activations of named layers of a frozen feature network, for images in [0, 1]."""

    def __init__(
        self,
        features: nn.Sequential,
        names: Sequence[str],
        normalize: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        """``mean`` and ``std``: the input normalisation the network was trained with (ImageNet's
        for torchvision's VGGs; 0.5 and 0.5, i.e. 2x - 1, for the FID Inception)."""
        super().__init__()
        if len(names) != len(features):
            raise ValueError(f"{len(names)} names for {len(features)} modules")
        self.features = features
        self.names = list(names)
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # always eval: a fixed measuring instrument

    def forward(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        unknown = [name for name in layers if name not in self.names]
        if unknown:
            raise UserError(f"no layer {', '.join(unknown)} in this backbone (it has: {', '.join(self.names)})")
        wanted, last = set(layers), max(self.names.index(name) for name in layers)
        x = (images - self.mean) / self.std if self.normalize else images
        found = {}
        for name, module in zip(self.names[: last + 1], self.features, strict=False):
            x = module(x)
            if name in wanted:
                found[name] = x
        return {name: found[name] for name in layers}


def with_pooling(features: nn.Sequential, pooling: str) -> nn.Sequential:
    """``features`` with its max poolings replaced by average poolings of the same size for
    ``pooling="avg"`` (Gatys et al. prefer them: smoother gradients, better images)."""
    if pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, got '{pooling}'")
    if pooling == "max":
        return features
    return nn.Sequential(
        *(
            nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode) if isinstance(m, nn.MaxPool2d) else m
            for m in features
        )
    )


def default_weights_path(name: str) -> Path:
    """Where torchvision keeps ``name``'s ImageNet weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONES.spec(name).weights_file


def load_feature_weights(features: nn.Sequential, path: Path, name: str) -> None:
    """Load a VGG state dict (torchvision's whole-network file, or only its ``features``)
    strictly into ``features``; a one-line error for anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, pickled code
        raise UserError(f"cannot read {name} weights {path}: {str(e).strip().splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    own = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        features.load_state_dict(own, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:300]
        raise UserError(f"{path} is not a {name} state dict: {first}") from None


def perceptual_backbone(
    name: str = "vgg19",
    weights: str | Path | None = None,
    pooling: str = "max",
    random_init: bool = False,
    builder: Callable[[], nn.Sequential] | None = None,
) -> FeatureExtractor:
    """A frozen ``BACKBONES`` network with its layers named. ``weights``: a file (used as it
    is); None: torchvision's cache file, used only if its SHA-256 starts with the hash in its
    name (as ``torch.hub`` checks downloads); ``random_init``: no weights at all (tests, smoke
    runs: the features are then meaningless for style)."""
    features = (builder or BACKBONES.get(name))()
    if not random_init:
        path = Path(weights) if weights is not None else default_weights_path(name)
        if not path.is_file():
            raise UserError(
                f"no {name} weights: put torchvision's {BACKBONES.spec(name).weights_file} in "
                f"{default_weights_path(name).parent} or pass --vgg_weights PATH (nothing is downloaded)"
                if weights is None
                else f"{name} weights {path} do not exist"
            )
        expected = name_hash_prefix(path) or ""
        if weights is None and not file_sha256(path).startswith(expected):
            raise UserError(f"{path} is not torchvision's {name} file (its SHA-256 does not start with {expected})")
        load_feature_weights(features, path, name)
    names = vgg_layer_names(features)
    return FeatureExtractor(with_pooling(features, pooling), names)


def channel_mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: the mean and the standard deviation over the spatial positions,
    shaped (N, C, 1, 1) (the std from the unbiased variance plus ``eps``, as AdaIN's code)."""
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    return flat.mean(-1).view(n, c, 1, 1), (flat.var(-1) + eps).sqrt().view(n, c, 1, 1)


def normalize_channels(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each channel of each sample to zero mean and unit std over its positions (instance
    normalisation without affine terms; SANet's "norm", in its attention and content loss)."""
    mean, std = channel_mean_std(features, eps)
    return (features - mean) / std


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017): the content features with each
    channel's mean and std replaced by the style features'."""
    content_mean, content_std = channel_mean_std(content, eps)
    style_mean, style_std = channel_mean_std(style, eps)
    return (content - content_mean) / content_std * style_std + style_mean
