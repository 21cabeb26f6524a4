"""Convert checkpoints between the reference's per-network files and this project's ``<tag>.pth``.

    python scripts/convert_checkpoint.py to-ours checkpoints/h2z --tag latest        # -> checkpoints/h2z/latest.pth
    python scripts/convert_checkpoint.py to-reference checkpoints/h2z/latest.pth     # -> latest_net_G_A.pth, ...

``to-ours``: every ``<tag>_net_<name>.pth`` of SRC_DIR (bare state dicts, e.g. ``latest_net_G_A.pth``
... ``latest_net_D_B.pth``, or a pretrained ``latest_net_G.pth``) becomes one weights-only
``<tag>.pth``: ``{"format_version", "nets", "converted_from"}``. It records no options: the
reference's files hold none, and what their shapes would suggest cannot tell every flag apart
(``--norm instance`` from ``none``, ``--init_type``, the training flags), so the architecture
flags are given to test.py / train.py as for the reference's files, and the strict loader names a
mismatch with the flag to check. test.py loads the file; ``train.py --continue_train`` takes its
weights and starts the optimizers, pools and schedule afresh at ``--epoch_count``, as from the
reference's files (it records no position). The state dicts are copied unchanged, stale InstanceNorm
keys of PyTorch < 0.4 files included (the loader drops them), so ``to-reference`` gives them back
bit for bit.

``to-reference``: every network of CKPT becomes ``<tag>_net_<name>.pth`` (tag: CKPT's file name
without ``.pth``, or ``--tag``), a bare state dict of CPU tensors without ``module.`` /
``_orig_mod.`` prefixes, as the reference's ``save_networks`` writes them, so its loader loads it
strictly. Under ``--norm none`` the reference builds its norm-tied convs without a bias
(``models/networks/compat.py``); those biases are dropped when zero (as after loading such a file)
and refused otherwise: the reference's network cannot express them.

Existing files are never overwritten unless ``--force``; each file is written atomically. Bad
input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python scripts/...`

import torch  # noqa: E402

from engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from models import create_model  # noqa: E402
from models.base_model import unwrap  # noqa: E402
from models.networks import reference_bias_free_keys  # noqa: E402
from options import Options  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.fileio import atomic_write, load_torch_file  # noqa: E402

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def reference_files(src: Path, tag: str) -> dict[str, Path]:
    """{network name: file} of the reference's ``<tag>_net_<name>.pth`` in ``src``."""
    prefix = f"{tag}_net_"
    return {p.name[len(prefix) : -len(".pth")]: p for p in sorted(src.glob(f"{glob.escape(prefix)}*.pth"))}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = load_torch_file(path)  # not a torch file, truncated, pickled objects: one line
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a bare state dict (the reference's per-network file)")
    return dict(state)


def refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise UserError(f"{', '.join(existing)} already {verb}; pass --force to overwrite")


def to_ours(src: Path, tag: str, out: Path | None, force: bool) -> Path:
    """The reference's ``<tag>_net_*.pth`` in ``src`` -> one weights-only ``<tag>.pth``."""
    if not src.is_dir():
        raise UserError(f"{src} is not a folder")
    files = reference_files(src, tag)
    if not files:
        tags = sorted({p.name.split("_net_")[0] for p in src.glob("*_net_*.pth")})
        found = f"tags there: {', '.join(tags)}" if tags else "none there"
        raise UserError(f"no reference files {tag}_net_<name>.pth in {src} ({found})")
    target = (out or src) / f"{tag}.pth"
    refuse_existing([target], force)
    nets = {name: read_state_dict(path) for name, path in files.items()}
    save_checkpoint(target, {"nets": nets, "converted_from": str(src / f"{tag}_net_*.pth")})
    return target


def strip_wrappers(state_dict: dict) -> dict:
    """Keys without DDP / torch.compile prefixes, tensors on the CPU (ours are saved unwrapped)."""
    clean = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        clean[key] = value.detach().cpu()
    return clean


def norm_none_biases(options: dict) -> dict[str, list[str]]:
    """{checkpoint network name: bias keys the reference's --norm none build lacks}, found by
    building the run's model from its recorded options (empty unless the run used --norm none)."""
    if options.get("norm") != "none":
        return {}
    try:
        model = create_model(Options(options), torch.device("cpu"))
    except Exception as e:  # options of another version of this code
        raise UserError(f"cannot rebuild the run's networks from its options to find its biases: {e}") from None
    return {model.checkpoint_key(name): reference_bias_free_keys(unwrap(net)) for name, net in model.nets.items()}


def to_reference(ckpt: Path, tag: str | None, out: Path | None, force: bool) -> list[Path]:
    """Our checkpoint -> the reference's ``<tag>_net_<name>.pth`` files."""
    state = load_checkpoint(ckpt)
    if not state.get("nets"):
        raise UserError(f"{ckpt} holds no networks")
    tag = tag or ckpt.name.removesuffix(".pth")
    folder = out or ckpt.parent
    targets = {name: folder / f"{tag}_net_{name}.pth" for name in state["nets"]}
    refuse_existing(list(targets.values()), force)
    drop = norm_none_biases(state.get("options", {}))
    converted = {}
    for name, state_dict in state["nets"].items():
        state_dict = strip_wrappers(state_dict)
        for key in drop.get(name, []):
            if key in state_dict and torch.count_nonzero(state_dict[key]):
                raise UserError(
                    f"{ckpt} [{name}]: {key} is not zero, and the reference builds that conv without a bias under "
                    "--norm none: this network has no equivalent in the reference's layout"
                )
            state_dict.pop(key, None)
        converted[name] = state_dict
    for name, state_dict in converted.items():  # every check passed: now write
        atomic_write(targets[name], lambda f, sd=state_dict: torch.save(sd, f))
    return list(targets.values())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description="Convert checkpoints between the reference's <tag>_net_<name>.pth files and our <tag>.pth.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ours = commands.add_parser(
        "to-ours",
        help="the reference's <tag>_net_*.pth of a folder -> one weights-only <tag>.pth",
        description="Every <tag>_net_<name>.pth in SRC_DIR -> <out>/<tag>.pth (weights only, no options: give "
        "test.py/train.py the architecture flags; train.py --continue_train starts at --epoch_count).",
    )
    ours.add_argument("src_dir", type=Path, metavar="SRC_DIR", help="folder of the reference's files")
    ours.add_argument("--tag", default="latest", help="which files: latest, an epoch number, iter_<n>")
    ours.add_argument("--out", type=Path, default=None, help="folder for <tag>.pth (default: SRC_DIR)")
    ours.add_argument("--force", action="store_true", help="overwrite an existing <tag>.pth")
    ref = commands.add_parser(
        "to-reference",
        help="our checkpoint -> <tag>_net_<name>.pth bare state dicts",
        description="Every network of CKPT -> <out>/<tag>_net_<name>.pth, loadable by the reference.",
    )
    ref.add_argument("ckpt", type=Path, metavar="CKPT", help="our checkpoint, e.g. checkpoints/h2z/latest.pth")
    ref.add_argument("--tag", default=None, help="file-name tag (default: CKPT's name without .pth)")
    ref.add_argument("--out", type=Path, default=None, help="folder for the files (default: CKPT's folder)")
    ref.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "to-ours":
            written = [to_ours(args.src_dir, args.tag, args.out, args.force)]
        else:
            written = to_reference(args.ckpt, args.tag, args.out, args.force)
    except UserError as e:
        print(f"convert_checkpoint.py: error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
