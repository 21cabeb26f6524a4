"""Time FID Inception feature extraction: seconds per 1000 images on this machine.

    python scripts/bench_inception.py [--images 200] [--size 256] [--batch_size 50] [--device cpu]

Writes ``--images`` synthetic PNGs of ``--size`` pixels (CycleGAN's test size is 256) to a
temporary folder, runs one warm-up batch, then times ``extract_features`` over all of them
(decoding + resizing to 299 + the network) and scales to 1000 images. Network loading is
not included: it is paid once per evaluation, not per image.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python scripts/...`

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from metrics.features import extract_features, list_images  # noqa: E402
from metrics.inception import load_inception  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inception_weights", default=None)
    args = parser.parse_args(argv)

    net = load_inception(args.inception_weights, args.device)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_inception_") as tmp:
        for i in range(args.images):
            pixels = rng.integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(Path(tmp) / f"{i:04d}.png")
        files = list_images(tmp)
        extract_features(files[: min(len(files), args.batch_size)], net, device=args.device, batch_size=args.batch_size)
        if str(args.device).startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        extract_features(files, net, device=args.device, batch_size=args.batch_size)
        if str(args.device).startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start

    per_1000 = elapsed / args.images * 1000
    print(
        f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, device {args.device}, "
        f"{torch.get_num_threads()} threads: {elapsed:.1f} s -> {per_1000:.1f} s per 1000 images"
    )


if __name__ == "__main__":
    main()
