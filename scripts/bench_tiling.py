"""Peak memory and time of tiled vs untiled inference with a generator (random weights).

    OMP_NUM_THREADS=1 python scripts/bench_tiling.py --size 2048 --tile 256 --tile_overlap 64
    OMP_NUM_THREADS=1 python scripts/bench_tiling.py --size 1024 --tile 0
    python scripts/bench_tiling.py --size 512 --tile 128 --picture artifacts/tiling.png
    python scripts/bench_tiling.py --run checkpoints/demo_day2night --image scene.png --tile 256 --picture t.png

One translation per process, so the peak resident set size (``ru_maxrss``) is that run's. With
``--picture``: untiled, tiled and their difference (amplified) side by side, and the difference
statistics of tiles normalised with full-size vs downscaled (``--tile_stats_size``) statistics.
With ``--run`` a trained run's generator (its ``latest.pth`` and ``opt.yaml``) replaces the random
one, and ``--image`` a real picture the smooth random one; the picture then also shows the input
and the naive tiles (each tile normalised on its own), whose seams are what shared statistics avoid.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from torchvision.transforms.functional import to_tensor  # noqa: E402

from engine.checkpoint import load_checkpoint  # noqa: E402
from models.networks import GENERATORS, define_G  # noqa: E402
from models.tiling import run_generator, run_tiled  # noqa: E402
from util.image import load_image  # noqa: E402


def smooth_picture(width: int, height: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    array = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.float32)
    array += rng.normal(0, 8, array.shape).astype(np.float32)  # some texture at the pixel scale
    return torch.from_numpy(np.clip(array / 127.5 - 1, -1, 1).transpose(2, 0, 1).copy())[None]


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def trained_generator(run: Path, key: str) -> tuple[torch.nn.Module, str]:
    """Generator ``key`` of a run's ``latest.pth``, built as its ``opt.yaml`` says; and its netG."""
    opt = yaml.safe_load((run / "opt.yaml").read_text())
    nets = load_checkpoint(run / "latest.pth")["nets"]
    if key not in nets:
        raise SystemExit(f"bench_tiling.py: error: {run}/latest.pth has no {key} (it has {', '.join(nets)})")
    net = define_G(
        opt["netG"],
        opt["input_nc"],
        opt["output_nc"],
        opt["ngf"],
        opt["norm"],
        not opt["no_dropout"],
        upsample=opt.get("upsample", "transpose"),
    )
    net.load_state_dict(nets[key])
    return net.eval(), opt["netG"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs="+", default=[1024], help="width [height]")
    parser.add_argument("--netG", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--tile_overlap", type=int, default=64)
    parser.add_argument("--tile_stats_size", type=int, default=0)
    parser.add_argument("--picture", type=Path, default=None)
    parser.add_argument("--run", type=Path, default=None, help="a run folder: its latest.pth's generator")
    parser.add_argument("--net", default="G_A", help="which generator of --run")
    parser.add_argument("--image", type=Path, default=None, help="translate this picture (else a random smooth one)")
    args = parser.parse_args()
    width, height = args.size[0], args.size[-1]
    torch.manual_seed(0)
    if args.run:
        net, args.netG = trained_generator(args.run, args.net)
    else:
        net = define_G(args.netG, 3, 3, args.ngf, "instance", False, "normal", 0.02).eval()
    multiple = GENERATORS.spec(args.netG).size_multiple
    if args.image:
        x = to_tensor(load_image(args.image))[None] * 2 - 1
        height, width = x.shape[-2:]
    else:
        x = smooth_picture(width, height)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        out = run_generator(net, x, multiple, args.tile, args.tile_overlap, args.tile_stats_size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        "size": f"{width}x{height}",
        "tile": args.tile,
        "overlap": args.tile_overlap,
        "seconds": round(seconds, 2),
        "s_per_megapixel": round(seconds / (width * height / 1e6), 2),
        "peak_rss_mib": round(peak / 1024),
        "rss_before_mib": round(base / 1024),
        "threads": torch.get_num_threads(),
    }
    if args.picture:
        with torch.inference_mode():
            tiled = run_tiled(net, x, multiple, args.tile, args.tile_overlap)
            naive = run_tiled(net, x, multiple, args.tile, args.tile_overlap, shared_stats=False)
            small_stats = run_tiled(net, x, multiple, args.tile, args.tile_overlap, stats_size=max(width, height) // 4)
        untiled = out if not args.tile else run_generator(net, x, multiple)
        for name, value in (("shared", tiled), ("naive", naive), ("stats_at_quarter_size", small_stats)):
            error = (value - untiled).abs()
            report[f"{name}_max"] = round(error.max().item(), 4)
            report[f"{name}_mean"] = round(error.mean().item(), 5)
        difference = ((tiled - untiled).abs() * 10 - 1).clamp(-1, 1)  # x10 amplified, 0 is black
        panels = [untiled, tiled, difference]
        if args.run or args.image:  # input | untiled | shared statistics | naive tiles | difference x10
            panels = [x, untiled, tiled, naive, difference]
        strip = np.concatenate([as_uint8(p) for p in panels], axis=1)
        args.picture.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(strip).save(args.picture)
        report["picture"] = str(args.picture)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
