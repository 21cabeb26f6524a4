"""Disk used by a run's checkpoints, ours against the reference's, at the reference's defaults.

    python scripts/checkpoint_disk.py                                # 200 epochs, save every 5
    python scripts/checkpoint_disk.py --train_args "--ngf 32" --epochs 50

Builds the model, takes one training step (so Adam's moments exist), fills both image pools to
``--pool_size`` with images of ``--crop_size`` and writes each kind of file with the project's own
save code: ``latest.pth`` (full state), an epoch file (lean, or full with ``--full_checkpoints``),
and the reference's four bare state dicts per save. Prints the sizes and the run totals.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.checkpoint import save_checkpoint  # noqa: E402
from models import create_model  # noqa: E402
from options import parse_options  # noqa: E402
from train import lean_state  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_args", default="", help="train.py options, e.g. '--ngf 32'")
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the run (n_epochs + n_epochs_decay)")
    parser.add_argument("--save_epoch_freq", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("trainA", "trainB"):
            (root / "data" / sub).mkdir(parents=True)
        opt = parse_options(
            ["--dataroot", str(root / "data"), "--gpu_ids", "-1", "--seed", "0", *shlex.split(args.train_args)]
        )
        model = create_model(opt, torch.device("cpu"))
        step = 64  # any size gives Adam's full state; the pools get images of the training size
        model.train_step({side: torch.zeros(1, 3, step, step) for side in ("A", "B")})
        for pool in model.pools.values():
            pool.images = [torch.zeros(1, opt.output_nc, opt.crop_size, opt.crop_size) for _ in range(pool.size)]
        state = {"epoch": 1, "epoch_samples": 0, "total_iters": 1, "options": opt.to_dict(), **model.state_dict()}
        sizes = {
            "latest": save_checkpoint(root / "latest.pth", state).stat().st_size,
            "epoch": save_checkpoint(root / "1.pth", lean_state(state)).stat().st_size,
            "epoch_full": save_checkpoint(root / "1f.pth", state).stat().st_size,
        }
        reference = 0
        for key, net_state in state["nets"].items():
            torch.save(net_state, root / f"latest_net_{key}.pth")
            reference += (root / f"latest_net_{key}.pth").stat().st_size
    saves = args.epochs // args.save_epoch_freq
    mb = 1e6
    ours = saves * sizes["epoch"] + sizes["latest"]
    ours_full = saves * sizes["epoch_full"] + sizes["latest"]
    ref_total = (saves + 1) * reference
    print(f"per save: latest.pth {sizes['latest'] / mb:.1f} MB (full state), <epoch>.pth {sizes['epoch'] / mb:.1f} MB")
    print(f"          reference: 4 x <epoch>_net_*.pth {reference / mb:.1f} MB")
    print(
        f"run of {args.epochs} epochs, an epoch file every {args.save_epoch_freq}: ours {ours / mb:.0f} MB, "
        f"with --full_checkpoints {ours_full / mb:.0f} MB, reference {ref_total / mb:.0f} MB "
        f"(ratio {ours / ref_total:.3f}, full {ours_full / ref_total:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
