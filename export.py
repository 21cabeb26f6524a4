"""Export a trained generator to ONNX and TorchScript, for deployment without this codebase.

    python export.py --name h2z                                  # G_A of a cycle_gan run
    python export.py --name facades --net G --format onnx --out ./deploy
    python export.py --name horse2zebra_pretrained --model test --no_dropout   # latest_net_G.pth

Loads the run's checkpoint the way test.py does (ours, or the reference's ``<epoch>_net_<net>.pth``;
the architecture from ``checkpoints/<name>/opt.yaml`` or from flags), takes the generator that
translates A (``G_A`` for cycle_gan, ``G`` for pix2pix/test; ``--net`` picks another) in eval
mode (batch norm uses running statistics, dropout is off: pix2pix tests in train mode by default,
so an exported pix2pix generator matches ``test.py --eval``) and writes to ``--out`` (default
``checkpoints/<name>/export/``):

    <name>_<net>.onnx   dynamic batch, height and width; input/output NCHW float32 in [-1, 1]
    <name>_<net>.pt     TorchScript (traced; takes other sizes)
    <name>_<net>.json   architecture, preprocessing, source checkpoint and its SHA-256, versions

Each file is run (onnxruntime on the CPU, torch.jit.load) on an input of another size than the one
it was exported with; more than 1e-4 from PyTorch fails the export (exit 1). Run an exported ONNX
model on a folder with ``python test.py --model onnx --onnx_model FILE.onnx --dataroot FOLDER``.
Exit status: 0 exported, 1 an exported file does not match, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.checkpoint import load_inference_checkpoint, reference_net_file
from engine.export import TOLERANCE, ExportMismatch, architecture, export_generator, parse_formats, pick_generator
from models import create_model
from models.base_model import unwrap
from options import Options, parse_options
from util.device import select_device
from util.errors import UserError, one_line


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", add_help=False)
    parser.add_argument("--net", default=None, help="the network to export (default: G_A, else G)")
    parser.add_argument("--format", default="onnx,torchscript", help="onnx, torchscript or both, comma separated")
    parser.add_argument("--out", default=None, help="output folder (default: <checkpoints_dir>/<name>/export)")
    return parser


def run_options(argv: list[str]) -> Options:
    """test.py's options for the run (its opt.yaml's architecture); no dataset is needed, so
    ``--dataroot`` defaults to the run's folder."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--name")
    peek.add_argument("--checkpoints_dir", default="./checkpoints")
    peek.add_argument("--dataroot")
    known, _ = peek.parse_known_args(argv)
    if not known.name:
        raise UserError("--name is required: the run to export (checkpoints/<name>/)")
    run_dir = Path(known.checkpoints_dir) / known.name
    if not run_dir.is_dir():
        raise UserError(f"no run folder {run_dir} (set --checkpoints_dir or --name)")
    if known.dataroot is None:
        argv = [*argv, "--dataroot", str(run_dir)]
    return parse_options([*argv, "--gpu_ids", "-1"], is_train=False, prog="export.py")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if any(a in ("-h", "--help") for a in argv):
            own_parser().print_help()
            print(
                "\nthe run: --name RUN (required), --checkpoints_dir (./checkpoints), --epoch (latest); the "
                "architecture comes from its opt.yaml, or test.py's flags (--model, --netG, --ngf, --norm, ...)"
            )
            return 0
        own, rest = own_parser().parse_known_args(argv)
        formats = parse_formats(own.format)
        opt = run_options(rest)
        return export(opt, own.net, formats, own.out)
    except ExportMismatch as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"export.py: error: {one_line(e)}", file=sys.stderr)
        return 2


def export(opt: Options, net_name: str | None, formats: list[str], out: str | None) -> int:
    device = select_device([], False)
    model = create_model(opt, device)
    name, _ = pick_generator(model.nets, net_name)
    run_dir = Path(opt.checkpoints_dir) / opt.name
    checkpoint = load_inference_checkpoint(run_dir, opt.epoch, [model.checkpoint_key(n) for n in model.nets])
    nets, averaged = checkpoint.weights(not opt.no_ema)  # --ema_decay's averages, unless --no_ema
    model.load_networks(nets, checkpoint.source)
    print(checkpoint.describe(averaged))
    model.eval()
    net = unwrap(model.nets[name])
    source = Path(checkpoint.source)
    if not source.is_file():  # the reference's per-network files: the one this network came from
        source = reference_net_file(run_dir, opt.epoch, model.checkpoint_key(name))
    input_nc = next(m for m in net.modules() if hasattr(m, "in_channels")).in_channels
    output_nc = [m for m in net.modules() if hasattr(m, "out_channels")][-1].out_channels
    info = {**architecture(opt, name, input_nc, output_nc, source), "ema": name in averaged}
    stem = Path(out or run_dir / "export") / f"{opt.name}_{name}"
    print(f"exporting {name} of {source} (eval mode: batch norm running statistics, dropout off)")
    results = export_generator(net, stem, formats, info["size_multiple"], input_nc, info)
    for r in results:
        print(
            f"{r.path}: {r.format}, exported in {r.seconds:.1f} s; max abs difference from PyTorch "
            f"{r.max_abs_diff:.2e} on {'x'.join(map(str, r.check_shape))} (tolerance {TOLERANCE:g})"
        )
    print(f"{stem.with_suffix('.json')}: architecture and preprocessing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
