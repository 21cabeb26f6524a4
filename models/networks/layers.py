"""Normalisation layers and weight initialisation shared by all networks."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

# Instance norm as in the reference: no affine parameters, no running statistics, so it adds
# no state-dict keys. Batch norm: affine with running statistics.
NORM_TYPES: dict[str, Callable[[int], nn.Module]] = {
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    "none": lambda num_features: nn.Identity(),
}


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    try:
        return NORM_TYPES[norm]
    except KeyError:
        raise ValueError(f"unknown norm '{norm}' (choose from {', '.join(NORM_TYPES)})") from None


def conv_bias(norm: str) -> bool:
    """Whether a conv followed by ``norm`` needs its own bias.

    Batch norm's affine shift makes a conv bias redundant. Instance norm without affine
    parameters removes the bias' effect, but the reference keeps it, so checkpoints stay
    loadable. Unlike the reference, ``none`` keeps the bias: without a norm the conv bias
    is the only shift the layer has.
    """
    return norm != "batch"


# Attribute set on convs whose bias exists or not by ``conv_bias(norm)``: the reference builds them
# with ``bias=use_bias`` (True only for instance norm), the others (e.g. a network's last conv)
# always with a bias. ``compat.reference_bias_free_keys`` reads it to know the reference's
# ``--norm none`` layout, which lacks exactly these biases.
NORM_TIED = "bias_tied_to_norm"


def norm_tied(conv: nn.Module) -> nn.Module:
    """Mark ``conv`` as one whose bias follows the norm choice (see ``NORM_TIED``)."""
    setattr(conv, NORM_TIED, True)
    return conv


def _init_normal(weight, gain: float) -> None:
    init.normal_(weight, 0.0, gain)


def _init_xavier(weight, gain: float) -> None:
    init.xavier_normal_(weight, gain=gain)


def _init_kaiming(weight, gain: float) -> None:
    init.kaiming_normal_(weight, a=0, mode="fan_in")


def _init_orthogonal(weight, gain: float) -> None:
    init.orthogonal_(weight, gain=gain)


INIT_TYPES: dict[str, Callable] = {
    "normal": _init_normal,
    "xavier": _init_xavier,
    "kaiming": _init_kaiming,
    "orthogonal": _init_orthogonal,
}


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Reference initialisation: conv/linear weights by ``init_type``, their biases 0;
    batch-norm weights N(1, init_gain), biases 0. Modules are visited in registration order,
    so the same seed gives the reference's weights."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type '{init_type}' (choose from {', '.join(INIT_TYPES)})")
    init_fn = INIT_TYPES[init_type]

    def visit(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init_fn(module.weight.data, init_gain)
            if module.bias is not None:
                init.constant_(module.bias.data, 0.0)
        elif isinstance(module, nn.BatchNorm2d):
            init.normal_(module.weight.data, 1.0, init_gain)
            init.constant_(module.bias.data, 0.0)

    net.apply(visit)
    return net


# ---- anti-aliased resampling (Zhang, ICML 2019), as CUT's code builds it -------------------------

BINOMIAL = {3: (1.0, 2.0, 1.0), 4: (1.0, 3.0, 3.0, 1.0)}


def blur_kernel(size: int) -> torch.Tensor:
    """The normalised outer product of the binomial row of ``size`` taps."""
    row = torch.tensor(BINOMIAL[size])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Blur with [1, 2, 1]^T [1, 2, 1] / 16 and keep every second pixel (reflection padding 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        # a buffer, not a parameter: the paper's code stores it (state key "filt") and never trains it
        self.register_buffer("filt", blur_kernel(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Double the size with a transposed [1, 3, 3, 1]^T [1, 3, 3, 1] / 64 * 4 blur (replicate padding 1,
    then the paper's crop: one row/column off the start and one off the end)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", (blur_kernel(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        out = F.conv_transpose2d(padded, self.filt, stride=2, padding=2, groups=self.channels)
        return out[:, :, 1:-1, 1:-1]
