"""Training-step speed: seconds per iteration of ``model.train_step`` on synthetic batches.

    python scripts/benchmark.py                          # reference defaults at crop 128 and 256
    python scripts/benchmark.py --crop_sizes 64 --train_args "--netG resnet_6blocks --ngf 32"

Data loading is excluded (it overlaps with compute in workers). Prints one line per crop size.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import create_model  # noqa: E402
from options import gpu_ids, parse_options  # noqa: E402
from util.device import select_device  # noqa: E402


def bench(crop: int, extra: list[str], iters: int, warmup: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        for sub in ("trainA", "trainB"):
            (Path(root) / sub).mkdir()
        opt = parse_options(
            ["--dataroot", root, "--crop_size", str(crop), "--load_size", str(crop), "--seed", "0", *extra]
        )
    device = select_device(gpu_ids(opt.gpu_ids), fixed_input_size=True)  # random batches of one size
    model = create_model(opt, device)
    model.train()
    batch = {
        "A": torch.rand(opt.batch_size, opt.input_nc, crop, crop) * 2 - 1,
        "B": torch.rand(opt.batch_size, opt.output_nc, crop, crop) * 2 - 1,
    }
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        losses = model.train_step(batch)
        float(sum(losses.values()))  # wait for the step to finish
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "mean": statistics.mean(times),
        "std": statistics.stdev(times) if len(times) > 1 else 0.0,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop_sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train_args", type=str, default="", help="extra train.py options, quoted")
    args = parser.parse_args(argv)
    extra = shlex.split(args.train_args)
    print(f"torch {torch.__version__}; train options: {' '.join(extra) or '(reference defaults)'}")
    for crop in args.crop_sizes:
        r = bench(crop, extra, args.iters, args.warmup)
        print(
            f"crop {crop}: {r['mean']:.3f} s/iter (std {r['std']:.3f}, {args.iters} iters after {args.warmup} "
            f"warm-up) = {1 / r['mean']:.2f} it/s on {r['device']} with {r['threads']} threads"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
