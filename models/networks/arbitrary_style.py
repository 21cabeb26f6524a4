"""The trained parts of arbitrary style transfer (``--model adain``): the decoder that turns
VGG-19 features back into an image (AdaIN, Huang & Belongie, ICCV 2017) and the style-attentional
network that fuses content and style features (SANet, Park & Lee, CVPR 2019). The frozen
encoder is ``models.networks.perceptual``'s VGG-19.

``Decoder``: the encoder's convolutions up to ``relu4_1`` mirrored: each 3x3 convolution
c_in -> c_out becomes c_out -> c_in, in reverse order, each pooling becomes a nearest-neighbour
2x upsampling; reflection padding, a ReLU after every convolution but the last, no normalisation::

    512->256, up, 256->256 x3, 256->128, up, 128->128, 128->64, up, 64->64, 64->3

(3,505,219 parameters). Features of h x w give an image of 8h x 8w in the encoder's input range
([0, 1]; not clamped: the losses see what the decoder makes).

``SAModule`` (the paper's SANet, Eq. 1-3): for content features F_c and style features F_s of C
channels, with norm() the channel-wise mean/std normalisation and f, g, h, o 1x1 convolutions,

    S = softmax_j( f(norm(F_c))_i · g(norm(F_s))_j )        (attention of content position i
    F_cs = F_c + o( Σ_j S_ij h(F_s)_j )                        over the style positions j)

so each content position takes the style features of the positions that resemble it (a
learned similarity), and the content features pass through the residual. Content and style may
differ in size, and a style of batch 1 serves a content batch of any size.

``StyleAttention``: the paper's two SANets on relu4_1 and relu5_1 and their merge,

    F_csc = conv3x3(SA_4(F_c^4, F_s^4) + up(SA_5(F_c^5, F_s^5)))

with ``up`` a nearest-neighbour upsampling to relu4_1's size (2x for inputs whose sides are
multiples of 16) and a reflection-padded 3x3 merge convolution (4,461,056 parameters at 512
channels). Its output goes to the same ``Decoder``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.networks.perceptual import VGG19_LAYERS, normalize_channels

# VGG-19's layers up to conv4_1 (the encoder of AdaIN, and the part SANet's decoder inverts).
VGG19_TO_RELU4_1 = VGG19_LAYERS[: VGG19_LAYERS.index(512) + 1]


def mirrored_decoder(layers: Sequence[int | str], in_channels: int = 3) -> nn.Sequential:
    """The decoder of an encoder given as VGG's layer list (``perceptual.VGG19_LAYERS`` style:
    output channels of each 3x3 convolution, ``"M"`` a pooling) fed ``in_channels`` channels."""
    convs: list[tuple[int, int] | str] = []  # the encoder's (in, out) channels, poolings as "M"
    channels = in_channels
    for layer in layers:
        if layer == "M":
            convs.append("M")
        else:
            convs.append((channels, int(layer)))
            channels = int(layer)
    modules: list[nn.Module] = []
    for i, conv in enumerate(reversed(convs)):
        if conv == "M":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        encoder_in, encoder_out = conv
        modules += [nn.ReflectionPad2d(1), nn.Conv2d(encoder_out, encoder_in, 3)]
        if i < len(convs) - 1:  # no ReLU after the last: the image may take any value
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class Decoder(nn.Module):
    """relu4_1 features (N, 512, h, w) -> images (N, 3, 8h, 8w) in [0, 1] (see the module's note)."""

    def __init__(self, layers: Sequence[int | str] = VGG19_TO_RELU4_1) -> None:
        super().__init__()
        self.layers = mirrored_decoder(layers)
        self.scale = 2 ** sum(layer == "M" for layer in layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class SAModule(nn.Module):
    """One style-attentional module on features of ``channels`` channels (see the module's note)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels, 1)  # the paper's f, on the normalised content
        self.key = nn.Conv2d(channels, channels, 1)  # g, on the normalised style
        self.value = nn.Conv2d(channels, channels, 1)  # h, on the style as it is
        self.out = nn.Conv2d(channels, channels, 1)  # W_cs, before the residual

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = content.shape
        query = self.query(normalize_channels(content)).flatten(2).transpose(1, 2)  # (N, HcWc, C)
        key = self.key(normalize_channels(style)).flatten(2)  # (Ns, C, HsWs)
        value = self.value(style).flatten(2)  # (Ns, C, HsWs)
        attention = torch.softmax(query @ key, dim=-1)  # (N, HcWc, HsWs): rows sum to 1
        attended = (value @ attention.transpose(1, 2)).view(n, c, h, w)  # (N, C, HcWc)
        return content + self.out(attended)


class StyleAttention(nn.Module):
    """SANets on relu4_1 and relu5_1 features, merged at relu4_1's size (see the module's note)."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.sa4 = SAModule(channels)
        self.sa5 = SAModule(channels)
        self.merge = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    def forward(
        self, content4: torch.Tensor, style4: torch.Tensor, content5: torch.Tensor, style5: torch.Tensor
    ) -> torch.Tensor:
        deep = F.interpolate(self.sa5(content5, style5), size=content4.shape[-2:], mode="nearest")
        return self.merge(self.sa4(content4, style4) + deep)


def pad_to_multiple(images: torch.Tensor, multiple: int, minimum: int = 1) -> torch.Tensor:
    """``images`` padded at the bottom and right so that both sides are multiples of ``multiple``
    and at least ``minimum`` (reflection, or replication where an image is too small to reflect);
    crop the result back with ``[..., :height, :width]``. Unchanged when the sides already fit."""
    height, width = images.shape[-2:]
    pad_h = max(-(-height // multiple) * multiple, minimum) - height
    pad_w = max(-(-width // multiple) * multiple, minimum) - width
    if not pad_h and not pad_w:
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
