"""Check that our FID equals pytorch-fid 0.3.0's on two image folders, with the same weights.

    python scripts/fid_agreement.py DIR1 DIR2 [--inception_weights PATH] [--batch_size 50]

Our weights are resolved as usual (``metrics.inception``); the very same state dict is then
saved as ``pt_inception-2015-12-05-6726825d.pth`` in a temporary TORCH_HOME's hub cache,
where pytorch-fid looks before it would download, so it runs offline on identical weights.
Prints both values and their relative difference; exits 1 if it is 1e-4 or more.

pytorch-fid lists only lower-case extensions (``*.png``, ...) and batches images without
resizing them first, so give it folders of same-size images with lower-case extensions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# a script run as `python scripts/x.py` has scripts/ on sys.path, not the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from metrics.evaluate import evaluate_dirs  # noqa: E402
from metrics.inception import CANONICAL_FILENAME, load_inception  # noqa: E402
from util.fileio import atomic_write  # noqa: E402

TOLERANCE = 1e-4


def pytorch_fid_value(dir1: Path, dir2: Path, state_dict: dict[str, torch.Tensor], batch_size: int) -> float:
    """FID from pytorch-fid itself, pointed at ``state_dict`` through a temporary TORCH_HOME."""
    from pytorch_fid.fid_score import calculate_fid_given_paths

    old_home = os.environ.get("TORCH_HOME")
    with tempfile.TemporaryDirectory(prefix="fid_agreement_") as torch_home:
        checkpoint = Path(torch_home) / "hub" / "checkpoints" / CANONICAL_FILENAME
        atomic_write(checkpoint, lambda f: torch.save(state_dict, f))
        os.environ["TORCH_HOME"] = torch_home  # torch.hub reads it at each call
        try:
            return float(calculate_fid_given_paths([str(dir1), str(dir2)], batch_size, "cpu", 2048, num_workers=0))
        finally:
            if old_home is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = old_home


def compare(dir1: Path, dir2: Path, inception_weights: str | None = None, batch_size: int = 50) -> dict[str, float]:
    """Our FID, pytorch-fid's FID and their relative difference, on the same weights."""
    net = load_inception(inception_weights)
    ours = evaluate_dirs(dir1, dir2, ["fid"], inception=net, batch_size=batch_size)["fid"]
    theirs = pytorch_fid_value(dir1, dir2, net.state_dict(), batch_size)
    return {"ours": ours, "pytorch_fid": theirs, "rel_diff": abs(ours - theirs) / max(abs(theirs), 1e-12)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir1", type=Path)
    parser.add_argument("dir2", type=Path)
    parser.add_argument("--inception_weights", default=None, help="FID Inception .pth (default: resolved)")
    parser.add_argument("--batch_size", type=int, default=50)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = compare(args.dir1, args.dir2, args.inception_weights, args.batch_size)
    print(f"FID ours        {result['ours']:.6f}")
    print(f"FID pytorch-fid {result['pytorch_fid']:.6f}")
    print(f"relative diff   {result['rel_diff']:.3e} (tolerance {TOLERANCE:g}; {time.perf_counter() - start:.0f} s)")
    return 0 if result["rel_diff"] < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
