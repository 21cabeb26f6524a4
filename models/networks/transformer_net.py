"""The image transformation network of real-time style transfer (Johnson, Alahi & Fei-Fei,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016,
supplementary material), registered as ``--netG transformer_net``.

    c9s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x 5, u(2 ngf), u(ngf), c9s1-output_nc, tanh

(ngf = 32 in the paper, the ``fast_style`` model's default): ``c9s1-k`` a 9x9 convolution with
stride 1 after a reflection padding of 4; ``dk`` a 3x3 convolution with stride 2 (reflection
padding 1); ``Rk`` a residual block of two 3x3 convolutions with k filters (norm and ReLU
after the first, norm after the second, no ReLU after the sum); ``uk`` an upsampling by 2:
nearest-neighbour upsampling then a 3x3 convolution (Odena, Dumoulin & Olah 2016), instead of the
paper's fractionally strided convolutions, whose uneven kernel overlap draws checkerboards. Each
convolution but the last is followed by a norm layer and a ReLU; the output is ``tanh``, images
in [-1, 1] as the datasets give them.

``--norm instance`` is instance normalisation *with* affine parameters (Ulyanov et al. 2016, the
fast-style-transfer codes' choice), unlike the reference ResNet generator's affine-free one;
``batch`` is the paper's batch norm; ``none`` leaves the convolutions alone. Dropout
(``use_dropout``) sits between the two convolutions of each residual block, as in the ResNet
generator (the paper has none; the ``fast_style`` model turns it off).

Any input size of at least ``MIN_SIDE`` pixels works: the input is reflection-padded at the
bottom and right to a multiple of 4 (the two stride-2 levels) and the output cropped back, so
the output has exactly the input's size (a 37x53 image gives a 37x53 image).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.networks.generators import GENERATORS

MULTIPLE = 4  # 2 ** (stride-2 levels)
MIN_SIDE = 5  # the 9x9 layer's reflection padding of 4 needs more than 4 pixels


def norm_2d(norm: str, channels: int) -> nn.Module:
    """This network's norm layers: instance norm with affine parameters (not ``NORM_TYPES``')."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{norm}' (choose from instance, batch, none)")


def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """A convolution after a reflection padding of half its kernel: the size stays (stride 1) or
    is halved, rounded up (stride 2)."""
    return nn.Sequential(
        nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size, stride)
    )


class UpsampleConv(nn.Module):
    """x2 nearest-neighbour upsampling, then a 3x3 convolution: no checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))), 3x3 convolutions of ``channels`` filters."""

    def __init__(self, channels: int, norm: str, use_dropout: bool = False) -> None:
        super().__init__()
        layers = [conv(channels, channels, 3), norm_2d(norm, channels), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [conv(channels, channels, 3), norm_2d(norm, channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class TransformerNet(nn.Module):
    """Johnson et al.'s transformation network (see the module's note)."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 32,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 5,
    ) -> None:
        super().__init__()

        def stage(module: nn.Module, channels: int) -> list[nn.Module]:
            return [module, norm_2d(norm, channels), nn.ReLU(True)]

        layers = [
            *stage(conv(input_nc, ngf, 9), ngf),
            *stage(conv(ngf, ngf * 2, 3, stride=2), ngf * 2),
            *stage(conv(ngf * 2, ngf * 4, 3, stride=2), ngf * 4),
            *(ResidualBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)),
            *stage(UpsampleConv(ngf * 4, ngf * 2), ngf * 2),
            *stage(UpsampleConv(ngf * 2, ngf), ngf),
            conv(ngf, output_nc, 9),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"the transformation network needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")
        pad_h, pad_w = -h % MULTIPLE, -w % MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.model(x)[..., :h, :w]


@GENERATORS.register("transformer_net", size_multiple=1)  # any size: it pads and crops itself
def transformer_net(input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool) -> nn.Module:
    return TransformerNet(input_nc, output_nc, ngf, norm, use_dropout)
