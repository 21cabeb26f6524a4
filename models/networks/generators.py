"""Generators: ResNet (Johnson et al.) and U-Net, with the reference's exact module layout.

The layout (which module sits at which index of ``self.model``) is part of the checkpoint
format: it fixes the state-dict keys, so reference checkpoints such as
``latest_net_G_A.pth`` load strictly. Norm layers are therefore always present, as
``nn.Identity`` for ``--norm none``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from models.networks.layers import BlurDownsample, BlurUpsample, conv_bias, init_weights, norm_layer, norm_tied
from util.registry import Registry


@dataclass(frozen=True)
class GeneratorSpec:
    """What generic code needs to know about a generator."""

    size_multiple: int = 4  # input sides must be multiples of this (2 ** downsamplings)
    # takes ``upsample="resize_conv"`` (``--upsample``); the others have one way to upsample
    resize_conv: bool = False


# --upsample: how generators double the resolution. ``transpose``: a 3x3 (ResNet) or 4x4 (U-Net)
# transposed conv of stride 2, the reference's. ``resize_conv``: nearest-neighbour x2 resize, then a
# stride-1 3x3 conv with the same channels (Odena, Dumoulin, Olah, "Deconvolution and checkerboard
# artifacts", Distill 2016): every output pixel gets the same number of kernel taps, so the
# transposed conv's uneven overlap, and the checkerboard it paints, cannot arise.
UPSAMPLE_MODES = ("transpose", "resize_conv")


def resize_conv(c_in: int, c_out: int, bias: bool) -> nn.Sequential:
    """Nearest x2, then a 3x3 conv (zero padding 1): ``--upsample resize_conv``'s upsampling layer."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))


def check_upsample(upsample: str) -> None:
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample '{upsample}' (choose from {', '.join(UPSAMPLE_MODES)})")


GENERATORS = Registry("generator", GeneratorSpec)


class ResnetBlock(nn.Module):
    """x + F(x) with F = pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm."""

    def __init__(self, dim: int, norm: str, use_dropout: bool, padding_type: str = "reflect") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)

        def padded_conv() -> list[nn.Module]:
            if padding_type == "reflect":
                return [nn.ReflectionPad2d(1), norm_tied(nn.Conv2d(dim, dim, 3, padding=0, bias=bias))]
            if padding_type == "replicate":
                return [nn.ReplicationPad2d(1), norm_tied(nn.Conv2d(dim, dim, 3, padding=0, bias=bias))]
            if padding_type == "zero":
                # keep a placeholder so the conv keeps the same index as with explicit padding
                return [nn.Identity(), norm_tied(nn.Conv2d(dim, dim, 3, padding=1, bias=bias))]
            raise ValueError(f"unknown padding_type '{padding_type}'")

        layers = [*padded_conv(), make_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*padded_conv(), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two transposed-conv
    upsamplings, c7s1-output_nc, tanh. Any input whose sides are multiples of 4 works.

    ``upsample="resize_conv"``: each upsampling is ``resize_conv`` (one module, a Sequential, in
    the transposed conv's slot: the other modules keep their indices), then the same norm and
    ReLU. ``antialias_up`` (CUT) already upsamples without a transposed conv (blur-upsample, then
    a 3x3 conv), so it does not combine with ``resize_conv`` (a ValueError)."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        antialias: bool = False,
        antialias_up: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        check_upsample(upsample)
        if antialias_up and upsample != "transpose":
            raise ValueError("antialias_up upsamples by a blur then a conv already: it takes no upsample mode")
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            norm_tied(nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias)),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        n_downsampling = 2
        for i in range(n_downsampling):
            c_in, c_out = ngf * 2**i, ngf * 2 ** (i + 1)
            # anti-aliased (CUT): a stride-1 conv, then a blurred stride-2 subsampling
            conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1 if antialias else 2, padding=1, bias=bias)
            layers += [norm_tied(conv), make_norm(c_out), nn.ReLU(True)]
            if antialias:
                layers.append(BlurDownsample(c_out))
        mult = 2**n_downsampling
        layers += [ResnetBlock(ngf * mult, norm, use_dropout, padding_type) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c_in, c_out = ngf * 2 ** (n_downsampling - i), ngf * 2 ** (n_downsampling - i - 1)
            if antialias_up:  # a blurred upsampling, then a stride-1 conv
                conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=bias)
                layers += [BlurUpsample(c_in), norm_tied(conv), make_norm(c_out), nn.ReLU(True)]
            elif upsample == "resize_conv":
                up = resize_conv(c_in, c_out, bias)
                norm_tied(up[1])
                layers += [up, make_norm(c_out), nn.ReLU(True)]
            else:
                conv = nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias)
                layers += [norm_tied(conv), make_norm(c_out), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of modules ``layers`` of ``self.model`` (ascending), running only as far as
        the last of them (CUT's PatchNCE features)."""
        wanted, feats = set(layers), []
        for index, module in enumerate(self.model):
            x = module(x)
            if index in wanted:
                feats.append(x)
            if index == layers[-1]:
                break
        return feats


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down (LeakyReLU, conv s2, norm) -> submodule -> up (ReLU, convT s2, norm),
    with the level's input concatenated to its output (except at the outermost level).

    The down LeakyReLU is in-place, as in the reference, so the skip connection carries the
    activated input; the outputs (and the reference fixtures) depend on it.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        check_upsample(upsample)
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = norm_tied(nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias))

        def up(c_in: int, bias: bool) -> nn.Module:
            """The level's x2 upsampling to ``outer_nc`` channels (its conv marked norm-tied by the caller)."""
            if upsample == "resize_conv":
                return resize_conv(c_in, outer_nc, bias)
            return nn.ConvTranspose2d(c_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)

        def tied(upconv: nn.Module) -> nn.Module:
            norm_tied(upconv[1] if isinstance(upconv, nn.Sequential) else upconv)
            return upconv

        if outermost:
            upconv = up(inner_nc * 2, True)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = tied(up(inner_nc, bias))
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(outer_nc)]
        else:
            upconv = tied(up(inner_nc * 2, bias))
            layers = [
                nn.LeakyReLU(0.2, True),
                downconv,
                make_norm(inner_nc),
                submodule,
                nn.ReLU(True),
                upconv,
                make_norm(outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # evaluate the submodule first: its in-place LeakyReLU rewrites x, as in the reference
        y = self.model(x)
        return torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels; input sides must be multiples of 2**num_downs."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        num_downs: int,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs at least 5 downsamplings")
        level = functools.partial(UnetSkipConnectionBlock, norm=norm, upsample=upsample)
        block = level(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = level(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout)
        block = level(ngf * 4, ngf * 8, submodule=block)
        block = level(ngf * 2, ngf * 4, submodule=block)
        block = level(ngf, ngf * 2, submodule=block)
        self.model = level(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)
        self.size_multiple = 2**num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"this U-Net needs image sides divisible by {self.size_multiple}, got {h}x{w}: "
                f"use --crop_size {self.size_multiple * max(1, round(min(h, w) / self.size_multiple))} "
                "or a resnet generator"
            )
        return self.model(x)


@GENERATORS.register("resnet_9blocks", size_multiple=4, resize_conv=True)
def resnet_9blocks(
    input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool, upsample: str = "transpose"
) -> nn.Module:
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=9, upsample=upsample)


@GENERATORS.register("resnet_6blocks", size_multiple=4, resize_conv=True)
def resnet_6blocks(
    input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool, upsample: str = "transpose"
) -> nn.Module:
    return ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=6, upsample=upsample)


@GENERATORS.register("unet_128", size_multiple=2**7, resize_conv=True)
def unet_128(
    input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool, upsample: str = "transpose"
) -> nn.Module:
    return UnetGenerator(input_nc, output_nc, 7, ngf, norm, use_dropout, upsample=upsample)


@GENERATORS.register("unet_256", size_multiple=2**8, resize_conv=True)
def unet_256(
    input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool, upsample: str = "transpose"
) -> nn.Module:
    return UnetGenerator(input_nc, output_nc, 8, ngf, norm, use_dropout, upsample=upsample)


def define_G(
    name: str,
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
    norm: str = "instance",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    upsample: str = "transpose",
) -> nn.Module:
    """Build and initialise a registered generator (on the CPU; the caller moves it). ``upsample``
    other than ``transpose`` only for generators whose spec says ``resize_conv`` (a ValueError else)."""
    check_upsample(upsample)
    extra = {}
    if upsample != "transpose":
        if not GENERATORS.spec(name).resize_conv:
            raise ValueError(f"generator '{name}' has one way to upsample: it takes no upsample='{upsample}'")
        extra["upsample"] = upsample
    builder = GENERATORS.get(name)
    net = builder(input_nc=input_nc, output_nc=output_nc, ngf=ngf, norm=norm, use_dropout=use_dropout, **extra)
    return init_weights(net, init_type, init_gain)
