"""Gatys with the offline FID Inception-v3, with and without SWAG smoothing, against a random VGG-19:
what each gives on a generated content image and a colourful generated style (README, "Style transfer").

    python scripts/compare_style_backbones.py                       # 256 px, 100 steps, style "swirls"
    python scripts/compare_style_backbones.py --size 128 --steps 30 --style mosaic --out DIR

Each variant is one ``stylize.py`` run (L-BFGS from the content image, the backbone's default
layers and style weight). Then, for each result:

- ``style_own``: its style loss under the backbone it was optimised with, divided by the content
  image's (how far the optimisation got on its own objective; 1 = nothing);
- ``style_inception`` and ``style_vgg_random``: the same ratio under two fixed judges, the
  pretrained Inception without smoothing and a random VGG-19 (conv1_1 ... conv5_1), so that the
  variants are measured by one yardstick each;
- ``color``: the Fréchet distance between the RGB statistics (mean and covariance of the pixels) of
  the result and the style, divided by the content image's (lower: colours moved toward the style);
- ``ssim``: structural similarity of the result's and the content's luminance (content kept).

First it prints, for the content image and each Inception style layer, how peaky the activations
are before and after SWAG's softmax: the largest value over the mean, and the entropy of the
values taken as a distribution (F / ΣF before, the softmax after) over its maximum log(C·H·W).

Writes ``<out>/comparison.png`` (content | style | the results, labelled) and prints a table and a
``COMPARE_JSON {...}`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import stylize  # noqa: E402
from metrics.fid import feature_statistics, frechet_distance  # noqa: E402
from metrics.paired import ssim  # noqa: E402
from models.gatys import GATYS_STYLE_LAYERS, rgb_to_yiq  # noqa: E402
from models.networks.perceptual import FeatureExtractor, perceptual_backbone  # noqa: E402
from models.style_losses import activation_softmax, gram_matrix, smoothed_activations, style_loss  # noqa: E402
from scripts.make_demo_dataset import render, sample_scene, scene_rng  # noqa: E402
from scripts.style_demo import STYLES  # noqa: E402
from util.image import load_image_01  # noqa: E402

VARIANTS = {
    "vgg19 random": ["--backbone", "vgg19", "--random_backbone"],
    "inception_v3": ["--backbone", "inception_v3"],
    "inception_v3 --swag": ["--backbone", "inception_v3", "--swag"],
}


def style_distance(
    extractor: FeatureExtractor,
    layers: Sequence[str],
    image: torch.Tensor,
    style: torch.Tensor,
    swag: bool = False,
    temperature: float = 1.0,
) -> float:
    """stylize.py's style loss of ``image`` against ``style`` (unweighted: layers averaged)."""
    with torch.no_grad():
        features = extractor(torch.cat([image, style]), layers)
        if swag:
            features = {n: smoothed_activations(f, temperature) for n, f in features.items()}
        grams = {n: gram_matrix(f[1:]) for n, f in features.items()}
        return float(style_loss({n: f[:1] for n, f in features.items()}, grams, {n: 1 / len(layers) for n in layers}))


def peakiness(extractor: FeatureExtractor, layers: Sequence[str], image: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per layer: max / mean and entropy / log N of the activations as they are and after the softmax."""

    def entropy(p: torch.Tensor) -> float:
        p = p[p > 0]
        return float(-(p * p.log()).sum())

    found = {}
    with torch.no_grad():
        for name, f in extractor(image, layers).items():
            raw, soft = f[0].flatten().double(), activation_softmax(f)[0].flatten().double()
            log_n = torch.log(torch.tensor(float(raw.numel()))).item()
            found[name] = {
                "max": float(raw.max()),
                "log_n": log_n,
                "peak_raw": float(raw.max() / raw.mean()),
                "peak_softmax": float(soft.max() / soft.mean()),
                "entropy_raw": entropy(raw / raw.sum()) / log_n,
                "entropy_softmax": entropy(soft) / log_n,
            }
    return found


def rgb_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the pixels' RGB values of two images (FID's
    distance, ``metrics.fid``, on the (H·W, 3) pixels instead of Inception features)."""
    pixels = [t[0].reshape(3, -1).T.double().numpy() for t in (a, b)]
    return frechet_distance(*feature_statistics(pixels[0]), *feature_statistics(pixels[1]))


def labelled_strip(images: Sequence[tuple[str, Path]], size: int) -> Image.Image:
    strip = Image.new("RGB", (size * len(images), size + 18), "white")
    draw = ImageDraw.Draw(strip)
    for i, (label, path) in enumerate(images):
        strip.paste(Image.open(path).convert("RGB").resize((size, size)), (i * size, 18))
        draw.text((i * size + 4, 3), label, fill="black")
    return strip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gatys on the FID Inception-v3 with and without SWAG vs random VGG")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "style_backbones")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--style", default="swirls", choices=list(STYLES))
    parser.add_argument("--scene", type=int, default=0, help="which generated scene is the content")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more stylize.py flags for every run")
    opt = parser.parse_args(argv)
    opt.out.mkdir(parents=True, exist_ok=True)
    content_path, style_path = opt.out / "content.png", opt.out / f"style_{opt.style}.png"
    render(sample_scene(scene_rng(0, "testA", opt.scene)), False, opt.size).save(content_path)
    STYLES[opt.style](opt.size, 0).save(style_path)
    content, style = (load_image_01(p).unsqueeze(0) for p in (content_path, style_path))

    torch.manual_seed(0)
    judges = {
        "style_inception": (stylize.inception_backbone(pooling="avg"), stylize.DEFAULTS["inception_v3"].style_layers),
        "style_vgg_random": (perceptual_backbone("vgg19", pooling="avg", random_init=True), GATYS_STYLE_LAYERS),
    }
    inception, inception_layers = judges["style_inception"]
    peaks = peakiness(inception, inception_layers, content)
    print(f"{'layer':<16}{'max':>8}{'log N':>8}{'max/mean':>10}{'softmax':>10}{'entropy':>10}{'softmax':>10}")
    for name, v in peaks.items():
        print(
            f"{name:<16}{v['max']:>8.2f}{v['log_n']:>8.2f}{v['peak_raw']:>10.1f}{v['peak_softmax']:>10.1f}"
            f"{v['entropy_raw']:>10.3f}{v['entropy_softmax']:>10.3f}"
        )
    rows: dict[str, dict[str, float]] = {}
    for name, flags in ((n, VARIANTS[n]) for n in opt.variants):
        result_path = opt.out / f"{name.replace(' ', '_').replace('--', '')}.png"
        argv_run = ["--content", str(content_path), "--style", str(style_path), "--output", str(result_path)]
        argv_run += ["--size", str(opt.size), "--steps", str(opt.steps), *flags, *opt.extra]
        buffer = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            status = stylize.main(argv_run)
        seconds = time.perf_counter() - started
        if status != 0:
            print(buffer.getvalue(), file=sys.stderr)
            return status
        result = load_image_01(result_path).unsqueeze(0)
        args = stylize.build_parser().parse_args(argv_run)
        torch.manual_seed(0)
        own = stylize.build_backbone(args)
        layers, smoothing = stylize.config_from(args).style_layers, (args.swag, args.swag_temperature)
        row = {
            "style_own": style_distance(own, layers, result, style, *smoothing)
            / style_distance(own, layers, content, style, *smoothing),
        }
        for judge, (extractor, judge_layers) in judges.items():
            row[judge] = style_distance(extractor, judge_layers, result, style) / style_distance(
                extractor, judge_layers, content, style
            )
        row["color"] = rgb_frechet(result, style) / rgb_frechet(content, style)
        row["ssim"] = float(ssim(rgb_to_yiq(result)[:, :1], rgb_to_yiq(content)[:, :1]))
        row["seconds"] = seconds
        rows[name] = row
        print(f"{name}: {buffer.getvalue().strip().splitlines()[-1]}", flush=True)

    columns = ["style_own", "style_inception", "style_vgg_random", "color", "ssim", "seconds"]
    print(f"{'variant':<22}" + "".join(f"{c:>18}" for c in columns))
    for name, row in rows.items():
        print(f"{name:<22}" + "".join(f"{row[c]:>18.4g}" for c in columns))
    strip = [("content", content_path), (f"style: {opt.style}", style_path)]
    strip += [(name, opt.out / f"{name.replace(' ', '_').replace('--', '')}.png") for name in rows]
    labelled_strip(strip, opt.size).save(opt.out / "comparison.png")
    print(f"wrote {opt.out / 'comparison.png'}")
    settings = {"size": opt.size, "steps": opt.steps, "style": opt.style, "scene": opt.scene, "extra": opt.extra}
    print("COMPARE_JSON " + json.dumps({"settings": settings, "results": rows, "peakiness": peaks}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
