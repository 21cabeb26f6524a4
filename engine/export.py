"""Export a trained generator for deployment: ONNX (dynamic batch, height and width), TorchScript,
and a JSON of its architecture, each checked by running it against PyTorch.

The exported networks take and return NCHW float32 images in [-1, 1] (the training code's range:
``(x / 255 - 0.5) / 0.5``); nothing of this codebase is needed to run them. They are exported in
eval mode: batch norm uses its running statistics and dropout is off. (pix2pix tests in train mode
by default, like the reference: an exported pix2pix generator matches ``test.py --eval``.)

ONNX goes through torch.onnx's default exporter (``dynamo=True``, torch.export + onnxscript) with
``Dim.DYNAMIC`` batch, height and width. The legacy TorchScript-based exporter (``dynamo=False``)
also exports these generators correctly (it is ~5x faster), but it is deprecated in torch 2.x and
bakes the U-Net's size check in at trace time; the dynamo path is the one torch maintains.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from models.networks.generators import GENERATORS
from util.errors import UserError
from util.fileio import atomic_write_text, file_sha256

FORMATS = ("onnx", "torchscript")
OPSET = 18
TOLERANCE = 1e-4  # max abs difference from PyTorch an exported file may show


class ExportMismatch(Exception):
    """An exported file computes something else than the PyTorch network (export.py exits 1)."""


@dataclass(frozen=True)
class Exported:
    """One written file and how it compared with PyTorch."""

    format: str
    path: Path
    seconds: float  # export time
    max_abs_diff: float  # at the check size (not the trace size)
    check_shape: tuple[int, ...]


def default_generator(net_names: list[str]) -> str:
    """The generator that translates A: ``G_A`` (cycle_gan), else ``G`` (pix2pix, test, ...)."""
    for name in ("G_A", "G"):
        if name in net_names:
            return name
    generators = [n for n in net_names if n.startswith("G")]
    if len(generators) == 1:
        return generators[0]
    raise UserError(f"pick the network to export with --net (this model has: {', '.join(net_names)})")


def pick_generator(nets: dict[str, nn.Module], name: str | None) -> tuple[str, nn.Module]:
    """(name, module) of the network to export; a wrong name is a one-line error listing the others."""
    name = name or default_generator(list(nets))
    if name not in nets:
        raise UserError(f"--net {name}: no such network in this model (it has: {', '.join(nets)})")
    return name, nets[name]


def parse_formats(value: str) -> list[str]:
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        raise UserError(f"--format {value!r}: give one or more of {', '.join(FORMATS)}, comma separated")
    return list(dict.fromkeys(formats))


def trace_size(size_multiple: int) -> int:
    """The side of the example input exports are traced with: the smallest multiple of at least
    40 px (an unusual size, so checks at common sizes are never the traced one)."""
    return size_multiple * max(1, -(-40 // size_multiple))


def check_size(size_multiple: int) -> tuple[int, int]:
    """A non-square size other than the trace size, to prove dynamic height and width."""
    side = trace_size(size_multiple)
    return side + size_multiple, side + 2 * size_multiple


def export_onnx(net: nn.Module, path: Path, example: torch.Tensor) -> None:
    """Write ``net`` as ONNX with dynamic batch, height and width to ``path``."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter translates through it)
    except ImportError as e:
        raise UserError("ONNX export needs the 'onnx' and 'onnxscript' packages: pip install onnx onnxscript") from e
    dim = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        net,
        (example,),
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes={"x": {0: dim, 2: dim, 3: dim}},
        opset_version=OPSET,
        dynamo=True,
        verbose=False,
    )
    program.save(str(path))


def export_torchscript(net: nn.Module, path: Path, example: torch.Tensor) -> None:
    """Write ``net`` traced to TorchScript to ``path``. Tracing records the convolutions, not the
    example's size, so the file takes other sizes (checked after writing)."""
    with warnings.catch_warnings():  # torch 2.14 marks torch.jit deprecated; it is still the portable format
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    path.write_bytes(buffer.getvalue())


def run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError as e:
        raise UserError("checking the ONNX file needs onnxruntime: pip install onnxruntime") from e
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])


def run_torchscript(path: Path, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")(images)


def verify(fmt: str, path: Path, net: nn.Module, images: torch.Tensor) -> float:
    """Max abs difference between the written file and ``net`` on ``images``."""
    with torch.inference_mode():
        expected = net(images)
    got = run_onnx(path, images) if fmt == "onnx" else run_torchscript(path, images)
    if got.shape != expected.shape:
        raise ExportMismatch(
            f"{path}: output shape {tuple(got.shape)} for input {tuple(images.shape)}, expected {tuple(expected.shape)}"
        )
    return (got - expected).abs().max().item()


def architecture(opt: object, net_name: str, input_nc: int, output_nc: int, source: Path) -> dict:
    """What a user (and ``--model onnx``) needs to run the file: architecture, preprocessing, provenance."""
    versions = {"torch": torch.__version__}
    for package in ("onnx", "onnxruntime", "onnxscript"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = None
    return {
        "name": opt.name,
        "model": opt.model,
        "net": net_name,
        "netG": opt.netG,
        "ngf": opt.ngf,
        "norm": opt.norm,
        "input_nc": input_nc,
        "output_nc": output_nc,
        "no_dropout": bool(opt.no_dropout),
        "upsample": opt.upsample,
        "size_multiple": GENERATORS.spec(opt.netG).size_multiple,
        "mode": "eval (batch norm running statistics, dropout off)",
        "input": {
            "layout": "NCHW float32",
            "range": [-1.0, 1.0],
            "channels": "RGB" if input_nc == 3 else ("grayscale" if input_nc == 1 else f"{input_nc} channels"),
            "from_uint8": "x / 255 * 2 - 1",
        },
        "output": {"range": [-1.0, 1.0], "to_uint8": "(y + 1) / 2 * 255"},
        "trained_with": {"preprocess": opt.preprocess, "crop_size": opt.crop_size},  # test.py --crop_size
        "onnx_opset": OPSET,
        "checkpoint": {"path": str(source), "sha256": file_sha256(source)},
        "versions": versions,
        "epoch": opt.epoch,
    }


def export_generator(
    net: nn.Module, stem: Path, formats: list[str], size_multiple: int, input_nc: int, info: dict
) -> list[Exported]:
    """Write ``<stem>.onnx`` / ``<stem>.pt`` and ``<stem>.json``; run each file on a size other
    than the trace size and fail (``UserError``) above ``TOLERANCE``."""
    net = net.cpu().eval()
    side = trace_size(size_multiple)
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, input_nc, side, side, generator=generator) * 2 - 1
    check = torch.rand(2, input_nc, *check_size(size_multiple), generator=generator) * 2 - 1
    stem.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for fmt in formats:
        path = stem.with_suffix(".onnx" if fmt == "onnx" else ".pt")
        # written next to its place and renamed only once it matches PyTorch: a reader never sees a
        # partial file, and a file that fails the check never replaces a good one
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        try:
            start = time.perf_counter()
            (export_onnx if fmt == "onnx" else export_torchscript)(net, tmp, example)
            seconds = time.perf_counter() - start
            diff = verify(fmt, tmp, net, check)
            if not diff <= TOLERANCE:
                shape = tuple(check.shape)
                raise ExportMismatch(
                    f"{path} differs from PyTorch by {diff:.3g} (> {TOLERANCE:g}) on a {shape} input: not written"
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        results.append(Exported(fmt, path, seconds, diff, tuple(check.shape)))
    info = {**info, "trace_size": [side, side], "files": {r.format: r.path.name for r in results}}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return results
