"""Style-transfer speed on this machine, next to the papers' figures.

    python scripts/bench_style.py            # 256 and 512 px; Gatys at 256 px (minutes on 2 CPU cores)
    python scripts/bench_style.py --quick    # 64 and 128 px, few runs and steps: a smoke run

Prints milliseconds per image (batch 1, ``torch.inference_mode``, the median of several runs after
warm-up runs) for

- fast style: Johnson et al.'s transformation network (``transformer_net``, ngf 32, the
  ``fast_style`` model's default);
- AdaIN and SANet (``--model adain``, ``--attention none|sanet``): content encoding, fusion and
  decoding with the style's features computed beforehand (the papers' timing without style
  encoding), and with the style encoded too (content and style at the same size);

and seconds per 100 L-BFGS steps of Gatys et al.'s optimisation (``models.gatys.stylize``) at
256 px, with VGG-19 (random weights: the cost is the same as with trained ones) and, as
stylize.py's offline option, the FID Inception-v3 up to Mixed_6a (random weights too). The
papers' figures ran on GPUs (Johnson: Maxwell Titan X; AdaIN: Pascal Titan X; Gatys: Johnson's
table, same GPU), so the ratio says how far this CPU is from them, not which method is faster.
The last line is ``BENCH_JSON {...}`` for tools. Run it on a quiet machine: two torch processes on
2 cores slow each other down several times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from models import create_model  # noqa: E402
from models.gatys import GatysConfig, stylize  # noqa: E402
from models.networks import define_G  # noqa: E402
from models.networks.perceptual import perceptual_backbone  # noqa: E402
from options import parse_options  # noqa: E402
from stylize import DEFAULTS, INCEPTION, inception_backbone  # noqa: E402

# Published figures: seconds per image (fast style, AdaIN) or per 100 L-BFGS steps (Gatys).
PUBLISHED = {
    "fast_style": {"256": 0.015, "512": 0.05, "source": "Johnson et al. 2016, Table 1, Maxwell Titan X"},
    "adain": {
        "256": 0.018,
        "512": 0.065,
        "with_style_256": 0.027,
        "with_style_512": 0.098,
        "source": "Huang & Belongie 2017, Table 1, Pascal Titan X (without / with style encoding)",
    },
    "gatys_per_100_steps": {"256": 3.17, "512": 10.97, "source": "Johnson et al. 2016, Table 1, Maxwell Titan X"},
}


def median_ms(run: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def image(size: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def fast_style_ms(sizes: Sequence[int], repeats: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = define_G("transformer_net", 3, 3, ngf=32, norm="instance").eval()
    found = {}
    with torch.inference_mode():
        for size in sizes:
            x = image(size, 1) * 2 - 1
            found[str(size)] = median_ms(lambda x=x: net(x), repeats, warmup)
    return found


def adain_model(attention: str, folder: Path):
    """The ``adain`` model as train.py builds it (random encoder: no VGG weights needed for speed)."""
    argv = ["--model", "adain", "--attention", attention, "--random_backbone", "--dataroot", str(folder)]
    argv += ["--name", "bench", "--checkpoints_dir", str(folder), "--gpu_ids", "-1"]
    torch.manual_seed(0)
    model = create_model(parse_options(argv, is_train=True), torch.device("cpu"))
    for net in model.nets.values():
        net.eval()
    return model


def adain_ms(attention: str, sizes: Sequence[int], repeats: int, warmup: int) -> dict[str, float]:
    """ms per image without style encoding (the style's features computed once) and with it."""
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        model = adain_model(attention, Path(folder))
    layers = model.variant.content_layers
    with torch.inference_mode():
        for size in sizes:
            content, style = image(size, 2) * 2 - 1, image(size, 3) * 2 - 1
            style_features = model.encode(style, layers)

            def cached(content=content, style_features=style_features) -> torch.Tensor:
                return model.decode(model.fuse(model.encode(content, layers), [style_features], [1.0]))

            found[str(size)] = median_ms(cached, repeats, warmup)
            found[f"with_style_{size}"] = median_ms(
                lambda content=content, style=style: model.stylize(content, [style]), repeats, warmup
            )
    return found


def gatys_s_per_100(backbone: str, size: int, steps: int) -> float:
    """Seconds per 100 L-BFGS steps (after one warm-up step), stylize.py's default layers."""
    torch.manual_seed(0)
    if backbone == INCEPTION:
        extractor = inception_backbone(pooling="avg", random_init=True)
    else:
        extractor = perceptual_backbone(backbone, pooling="avg", random_init=True)
    defaults = DEFAULTS[backbone]
    layers = {"content_layers": defaults.content_layers, "style_layers": defaults.style_layers}
    content, style = image(size, 4), image(size, 5)
    stylize(extractor, content, [style], [1.0], GatysConfig(steps=1, **layers))  # warm-up
    started = time.perf_counter()
    stylize(extractor, content, [style], [1.0], GatysConfig(steps=steps, **layers))
    return (time.perf_counter() - started) / steps * 100


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Style-transfer speed on this machine, next to the papers'.")
    parser.add_argument("--quick", action="store_true", help="64 and 128 px, 2 runs, 3 Gatys steps: a smoke run")
    opt = parser.parse_args(argv)
    sizes = (64, 128) if opt.quick else (256, 512)
    repeats, warmup = (2, 1) if opt.quick else (7, 2)
    gatys_size, gatys_steps = (64, 3) if opt.quick else (256, 20)

    results: dict[str, object] = {
        "quick": opt.quick,
        "sizes": list(sizes),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "published_s": PUBLISHED,
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, median of {repeats} runs")
    results["fast_style_ms"] = fast = fast_style_ms(sizes, repeats, warmup)
    results["adain_ms"] = adain = adain_ms("none", sizes, repeats, warmup)
    results["sanet_ms"] = sanet = adain_ms("sanet", sizes, repeats, warmup)
    results["gatys_s_per_100_steps"] = gatys = {
        "vgg19": {str(gatys_size): gatys_s_per_100("vgg19", gatys_size, gatys_steps)},
        INCEPTION: {str(gatys_size): gatys_s_per_100(INCEPTION, gatys_size, gatys_steps)},
    }

    def published(kind: str, key: str, scale: float = 1000) -> str:
        value = PUBLISHED[kind].get(key)
        return f"{value * scale:8.1f}" if value is not None else "       -"

    print(f"{'what':<34}{'size':>6}{'this CPU':>12}{'published':>12}")
    for size in sizes:
        s = str(size)
        print(f"{'fast style (ms/image)':<34}{size:>6}{fast[s]:>12.1f}{published('fast_style', s):>12}")
        print(f"{'AdaIN (ms/image)':<34}{size:>6}{adain[s]:>12.1f}{published('adain', s):>12}")
        print(
            f"{'AdaIN with style encoding':<34}{size:>6}{adain[f'with_style_{s}']:>12.1f}"
            f"{published('adain', f'with_style_{s}'):>12}"
        )
        print(f"{'SANet (ms/image)':<34}{size:>6}{sanet[s]:>12.1f}{'-':>12}")
        print(f"{'SANet with style encoding':<34}{size:>6}{sanet[f'with_style_{s}']:>12.1f}{'-':>12}")
    g = str(gatys_size)
    for backbone, figures in gatys.items():
        label = f"Gatys {backbone} (s/100 steps)"
        print(f"{label:<34}{gatys_size:>6}{figures[g]:>12.2f}{published('gatys_per_100_steps', g, 1):>12}")
    print("published: " + "; ".join(f"{k}: {v['source']}" for k, v in PUBLISHED.items()))
    print("BENCH_JSON " + json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
