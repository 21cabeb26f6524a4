"""CUT's networks (Park, Efros, Zhang, Zhu, ECCV 2020): the anti-aliased ResNet generator and the
PatchNCE head.

The generator is the ResNet generator with, by default, blurred resampling (Zhang, "Making
convolutional networks shift-invariant again", ICML 2019), as the paper's code builds it: each
downsampling is a stride-1 3x3 conv, norm, ReLU, then a [1, 2, 1] x [1, 2, 1] blur with stride 2
(reflection padding); each upsampling is a transposed blur [1, 3, 3, 1] x [1, 3, 3, 1] (times 4,
replicate padding) with stride 2, then a stride-1 3x3 conv, norm, ReLU. ``antialias=False`` /
``antialias_up=False`` give the plain strided conv / transposed conv. The switches are
``generators.ResnetGenerator``'s own, off there by default, so the reference's layout (its
checkpoint format) is unchanged; the blur layers are in ``layers``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.networks.discriminators import DISCRIMINATORS
from models.networks.generators import GENERATORS, ResnetGenerator
from models.networks.layers import BlurDownsample, conv_bias, norm_layer, norm_tied


class AntialiasResnetGenerator(ResnetGenerator):
    """CUT's ResNet generator: ``generators.ResnetGenerator`` with anti-aliased down- and
    upsampling on by default. ``encode`` returns the features after chosen layers of
    ``self.model`` (the paper's ``--nce_layers`` count modules of this sequence: with
    anti-aliasing, 0 is the padded input, 4 the first downsampling conv, 8 the second, 12 and 16
    the outputs of residual blocks 1 and 5)."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        antialias: bool = True,
        antialias_up: bool = True,
        upsample: str = "transpose",
    ) -> None:
        super().__init__(
            input_nc,
            output_nc,
            ngf,
            norm,
            use_dropout,
            n_blocks,
            antialias=antialias,
            antialias_up=antialias_up,
            upsample=upsample,
        )


@GENERATORS.register("resnet_9blocks_aa", size_multiple=4)
def resnet_9blocks_aa(input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool) -> nn.Module:
    return AntialiasResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=9)


@GENERATORS.register("resnet_6blocks_aa", size_multiple=4)
def resnet_6blocks_aa(input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool) -> nn.Module:
    return AntialiasResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, n_blocks=6)


class AntialiasNLayerDiscriminator(nn.Module):
    """The paper's PatchGAN: each stride-2 4x4 conv of ``discriminators.NLayerDiscriminator``
    becomes a stride-1 4x4 conv, (norm,) LeakyReLU 0.2, then ``BlurDownsample``; the last two
    convs are as there."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=1, padding=1),
            nn.LeakyReLU(0.2, True),
            BlurDownsample(ndf),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            conv = norm_tied(nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias))
            layers += [conv, make_norm(ndf * mult), nn.LeakyReLU(0.2, True), BlurDownsample(ndf * mult)]
        prev, mult = mult, min(2**n_layers, 8)
        conv = norm_tied(nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias))
        layers += [conv, make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def antialias_patchgan_min_input(n_layers: int) -> int:
    """The smallest input side ``AntialiasNLayerDiscriminator`` takes: each 4x4 conv (padding 1)
    takes one pixel, each blur-pool (reflection padding 1 needs a side of 2) maps s to
    (s - 1) // 2 + 1; the last norm needs more than one value and the last conv one pixel."""

    def fits(side: int) -> bool:
        for _ in range(n_layers):
            side -= 1
            if side < 2:
                return False
            side = (side - 1) // 2 + 1
        return side - 1 >= 2  # the norm after the next conv sees more than 1 value; the last conv keeps 1 pixel

    return next(side for side in range(1, 4096) if fits(side))


@DISCRIMINATORS.register("basic_aa", min_input=lambda n_layers_D: antialias_patchgan_min_input(3))
def basic_aa(input_nc: int, ndf: int, n_layers_D: int, norm: str) -> nn.Module:
    return AntialiasNLayerDiscriminator(input_nc, ndf, n_layers=3, norm=norm)


@DISCRIMINATORS.register("n_layers_aa", min_input=antialias_patchgan_min_input)
def n_layers_aa(input_nc: int, ndf: int, n_layers_D: int, norm: str) -> nn.Module:
    return AntialiasNLayerDiscriminator(input_nc, ndf, n_layers=n_layers_D, norm=norm)


class PatchSampleMLP(nn.Module):
    """The PatchNCE head H (``--netF mlp_sample``): for feature map l, one Linear-ReLU-Linear MLP
    (``in_channels[l]`` -> ``nc`` -> ``nc``) applied to sampled spatial positions, then L2
    normalisation. Built from known channel counts (not lazily on the first batch, as the paper's
    code does), so it is saved, loaded and wrapped like every other network."""

    def __init__(self, in_channels: Sequence[int], nc: int = 256) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in in_channels)

    def forward(
        self, feats: Sequence[torch.Tensor], num_patches: int, patch_ids: Sequence[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer: (batch * patches, nc) L2-normalised embeddings, and the positions sampled
        (the same positions for every image of the batch, as the paper). Without ``patch_ids`` the
        positions are a random permutation's first ``num_patches``, drawn from the global torch
        stream (which checkpoints save, so a resumed run draws the same ones)."""
        out, ids = [], []
        for index, (feat, mlp) in enumerate(zip(feats, self.mlps, strict=True)):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C)
            if patch_ids is not None:
                chosen = patch_ids[index]
            else:
                chosen = torch.randperm(flat.shape[1], device=feat.device)[: min(num_patches, flat.shape[1])]
            sample = mlp(flat[:, chosen, :].flatten(0, 1))
            norm = sample.pow(2).sum(1, keepdim=True).pow(0.5)
            out.append(sample / (norm + 1e-7))  # the paper's Normalize(2), with its epsilon
            ids.append(chosen)
        return out, ids


def patch_nce_loss(
    feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, temperature: float = 0.07, all_negatives: bool = False
) -> torch.Tensor:
    """PatchNCE for one layer, per query patch (no reduction), as the paper's code computes it.

    ``feat_q``, ``feat_k``: (batch * P, C) embeddings of the output's and the input's patches at
    the same positions; the keys are detached. Logits of query i: its positive q_i . k_i, then its
    dot products with every key of the same image (``all_negatives``: of the whole batch), where
    the entry of its own key is masked to -10; all divided by ``temperature``; loss = cross
    entropy with the positive (index 0) as the target.
    """
    n, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = (feat_q * feat_k).sum(1, keepdim=True)  # (n, 1)
    groups = 1 if all_negatives else batch_size
    q = feat_q.reshape(groups, -1, dim)
    k = feat_k.reshape(groups, -1, dim)
    patches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(1, 2))
    own = torch.eye(patches, dtype=torch.bool, device=feat_q.device)[None]
    l_neg = l_neg.masked_fill(own, -10.0).reshape(-1, patches)
    logits = torch.cat([l_pos, l_neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=feat_q.device), reduction="none")
