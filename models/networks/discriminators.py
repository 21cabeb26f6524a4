"""Discriminators: PatchGAN (70x70 ``basic``, ``n_layers``) and the 1x1 ``pixel`` GAN.

Module layouts follow the reference so reference checkpoints load strictly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils import parametrizations

from models.networks.layers import conv_bias, init_weights, norm_layer, norm_tied
from util.registry import Registry


def patchgan_min_input(n_layers: int) -> int:
    """The smallest input side a PatchGAN takes: each stride-2 4x4 conv halves the side, and the
    last two stride-1 4x4 convs (one followed by a norm layer, which needs more than one value)
    take 2 more pixels each at that scale: 3 * 2**n_layers."""
    return 3 * 2**n_layers


@dataclass(frozen=True)
class DiscriminatorSpec:
    """What generic code needs to know about a discriminator."""

    # the smallest input side it accepts, given --n_layers_D
    min_input: Callable[[int], int] = lambda n_layers_D: 1


DISCRIMINATORS = Registry("discriminator", DiscriminatorSpec)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs with strides 2 (``n_layers`` times) then 1, 1; LeakyReLU 0.2;
    no norm on the first layer. With n_layers=3 each output sees a 70x70 input patch."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        kw, padw = 4, 1
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                norm_tied(nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=stride, padding=padw, bias=bias)),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: classifies every pixel independently (colour statistics only)."""

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            norm_tied(nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=bias)),
            make_norm(ndf * 2),
            nn.LeakyReLU(0.2, True),
            # the reference ties this bias to the norm type; kept for checkpoint compatibility
            norm_tied(nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=bias)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@DISCRIMINATORS.register("basic", min_input=lambda n_layers_D: patchgan_min_input(3))
def basic(input_nc: int, ndf: int, n_layers_D: int, norm: str) -> nn.Module:
    return NLayerDiscriminator(input_nc, ndf, n_layers=3, norm=norm)


@DISCRIMINATORS.register("n_layers", min_input=patchgan_min_input)
def n_layers(input_nc: int, ndf: int, n_layers_D: int, norm: str) -> nn.Module:
    return NLayerDiscriminator(input_nc, ndf, n_layers=n_layers_D, norm=norm)


@DISCRIMINATORS.register("pixel", min_input=lambda n_layers_D: 2)  # instance norm needs 2 values
def pixel(input_nc: int, ndf: int, n_layers_D: int, norm: str) -> nn.Module:
    return PixelDiscriminator(input_nc, ndf, norm=norm)


def define_D(
    name: str,
    input_nc: int = 3,
    ndf: int = 64,
    n_layers_D: int = 3,
    norm: str = "instance",
    init_type: str = "normal",
    init_gain: float = 0.02,
    spectral_norm: bool = False,
) -> nn.Module:
    """Build and initialise a registered discriminator (on the CPU; the caller moves it);
    ``spectral_norm``: see ``add_spectral_norm``."""
    net = init_weights(
        DISCRIMINATORS.get(name)(input_nc=input_nc, ndf=ndf, n_layers_D=n_layers_D, norm=norm), init_type, init_gain
    )
    return add_spectral_norm(net) if spectral_norm else net


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., ICLR 2018) on every conv of ``net``, in place: each
    weight W is used as W / sigma(W), sigma the largest singular value of W reshaped to
    (out_channels, -1), estimated by one power iteration per forward in train mode (its vectors
    ``u``, ``v`` are buffers, saved in checkpoints). It bounds each conv's Lipschitz constant by 1;
    the norm layers ``--norm`` puts between the convs stay (their rescaling is not bounded: the
    usual SN discriminator has none, i.e. ``--norm none``, which also applies to the generators).

    torch's parametrization API: the state dict holds ``<conv>.parametrizations.weight.original``
    (the free weight, initialised as without SN) and ``...weight.0._u`` / ``._v`` in place of
    ``<conv>.weight``: a checkpoint with SN loads only into a network with SN."""
    for module in list(net.modules()):
        if isinstance(module, nn.Conv2d):
            parametrizations.spectral_norm(module)
    return net
