"""Neural style transfer by optimisation (Gatys et al.): one content image, one or more styles.

    python stylize.py --content photo.jpg --style starry_night.jpg --output out.png
    python stylize.py --content photo.jpg --style a.jpg b.jpg --style_weights 0.7 0.3 --size 768 --scales 2
    python stylize.py --content photo.jpg --style s.jpg --preserve_color --snapshot_every 50 --display_id 1

Needs VGG-19 ImageNet weights: torchvision's ``vgg19-dcbb9e9d.pth`` in its cache
(``$TORCH_HOME/hub/checkpoints``) or ``--vgg_weights PATH``; nothing is downloaded.
``--random_backbone`` runs without weights (a smoke test: the result is not a stylisation).
The output is a PNG; ``--snapshot_every N`` also writes ``<output>_s<scale>_<step>.png``.
Exit status: 0 done, 2 bad input, 130 interrupted (Ctrl-C; snapshots already written stay).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from models.gatys import INITS, OPTIMIZERS, GatysConfig, check_config, scale_sizes, stylize
from models.networks.perceptual import BACKBONES, POOLINGS, perceptual_backbone
from monitor import LogRecord
from monitor.visdom_backend import VisdomBackend
from options import gpu_ids
from util.device import seed_everything, select_device
from util.errors import UserError, one_line
from util.image import load_image_01, save_image

MIN_SIDE = 16  # conv5_1 comes after 4 poolings by 2


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
    add("--style_weight", type=float, default=1e6, help="on Gram matrices normalised by C*H*W")
    add("--tv_weight", type=float, default=0.0, help="total variation (smoothness)")
    add("--preserve_color", action="store_true", help="luminance-only transfer: keep the content's colours")
    add("--backbone", default="vgg19", choices=BACKBONES.names())
    add("--vgg_weights", default=None, help="the backbone's ImageNet weights (default: torchvision's cache)")
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
    config = GatysConfig(
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        init=args.init,
        preserve_color=args.preserve_color,
        scales=args.scales,
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
    if coarsest < MIN_SIDE:
        raise UserError(
            f"the coarsest scale is {coarsest} pixels on its shorter side; the style layers need at least "
            f"{MIN_SIDE}: use fewer --scales or a larger --size"
        )
    styles = [load(path, device) for path in args.style]
    extractor = perceptual_backbone(args.backbone, args.vgg_weights, args.pooling, args.random_backbone).to(device)
    display = VisdomBackend(args.display_server, args.display_port, env="stylize") if args.display_id > 0 else None
    bar = tqdm(total=config.steps * config.scales, unit="step", dynamic_ncols=True, disable=None)
    started = time.perf_counter()

    def on_step(scale: int, step: int, image: torch.Tensor, losses: dict[str, float]) -> None:
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
    print(f"wrote {output} ({result.shape[-1]}x{result.shape[-2]}): {steps} steps in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
