"""How fast training and testing run, and how close that is to what the machine can do.

    python scripts/benchmark.py                          # reference defaults, crops 128 and 256 (= make bench)
    python scripts/benchmark.py --crop_sizes 64 --train_args "--netG resnet_6blocks --ngf 32 --gpu_ids -1"
    python scripts/benchmark.py --compare /path/to/other/checkout        # side by side, whole processes

Per crop size, with the real model from ``create_model`` and train.py's options (``--train_args``
are passed through as they are, and recorded):

- ``step_s``: median seconds of one ``model.train_step`` after ``--warmup`` steps, over
  ``--iters`` steps (the step only: the batch is already there; on CUDA synchronised).
- ``iter_s``: median seconds of one whole loop iteration: waiting for the real training
  DataLoader (``create_dataset`` + ``create_train_loader`` over a generated folder of PNG files
  at the chosen load/crop size, its workers as train.py makes them) plus the step.
- ``data_share``: the share of the loop spent waiting for batches, sum(wait) / sum(wait + step).
- ``test_s_per_image``: seconds per image of the generators' inference as test.py runs it
  (``model.inference``, test.py's batching: ``--test_batch_size`` images per forward, one
  at a time for models whose outputs depend on the batch), median over ``--test_iters`` batches.
- ``memory_bytes``: on a CPU the growth of the process's peak RSS over the training steps
  (``ru_maxrss`` minus the RSS once the model is built: gradients, Adam state, activations; loader
  workers are other processes, not counted; ``ru_maxrss`` never goes down, so give crop sizes in
  increasing order); on CUDA ``torch.cuda.max_memory_allocated`` over the steps (model included).
- ``flops_per_iter``: the FLOPs of one training step as ``torch.utils.flop_counter`` counts them
  (convolutions and matmuls, forward and backward); ``notes_flops_per_iter``: field notes §4's
  estimate (1.9 TFLOP at 256², batch 1, scaled by pixels and batch), given only for the
  reference architecture; ``achieved_flops`` = flops_per_iter / step_s.
- ``utilisation``: achieved_flops / peak. On a CPU the peak is this machine's fp32 matmul rate
  measured in the same run with the same threads (best of a few 2048² matmuls); on a GPU the
  datasheet's dense bf16 and fp32 peaks of the device (``PEAKS``), "unknown device" otherwise.

``--matrix`` runs the benchmark once per speed switch, each in a process of its own (compile
caches and peak memory do not carry over), and prints one table: on a GPU eager fp32, ``--amp
bf16``, ``--channels_last``, ``--compile reduce-overhead`` (CUDA graphs) and all of them; on a
CPU eager fp32, ``--channels_last``, ``--amp bf16`` and ``--compile default``. ``--train_args``
apply to every row. On a lent GPU machine this is the one command to run:
``python scripts/benchmark.py --matrix --crop_sizes 256``.

``--compare PATH`` instead times whole ``train.py`` processes of this checkout and of PATH (any
reference-compatible codebase) with reference-compatible flags only, alternating between the
two over ``--rounds`` rounds, at two dataset sizes N1 < N2 (``--compare_iters``): seconds per
iteration = (T(N2) - T(N1)) / (N2 - N1), so start-up and the final save cancel. It prints both
codebases' s/iter and the ratio ours/theirs per crop with the load average. A checkout of the
reference from before its 2019 renaming (``--niter``, ``--loadSize``, ...) gets the old flag names.
Timings on a shared
machine are noisy: compare within one run, never against figures from another day.

The last line printed is ``BENCH_JSON {...}``: every figure, machine-readable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from data import create_dataset, create_train_loader  # noqa: E402
from models import BaseModel, create_model  # noqa: E402
from models.fast_path import native_low_precision  # noqa: E402
from options import Options, gpu_ids, parse_options  # noqa: E402
from util.device import default_test_batch_size, seed_everything, select_device  # noqa: E402

# Dense (no sparsity) peak FLOP/s from NVIDIA's datasheets: H100 Tensor Core GPU datasheet (SXM:
# 989 TFLOPS bf16, 67 TFLOPS fp32; PCIe: 756 / 51; H200 has the H100 SXM's compute) and the A100
# Tensor Core GPU datasheet (312 TFLOPS bf16, 19.5 TFLOPS fp32). Matched by substring of
# torch.cuda.get_device_name(), first match wins.
PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bf16": 756e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "fp32": 67e12}),
    ("H200", {"bf16": 989e12, "fp32": 67e12}),
    ("A100", {"bf16": 312e12, "fp32": 19.5e12}),
]
NOTES_FLOPS_256 = 1.9e12  # field notes §4: one iteration at 256², batch 1, reference defaults
REFERENCE_ARCHITECTURE = {"netG": "resnet_9blocks", "ngf": 64, "netD": "basic", "ndf": 64, "n_layers_D": 3}


# ---- small helpers ------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc; 0 where it cannot be read)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """This process's peak RSS so far (ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def write_images(folder: Path, count: int, size: int, seed: int) -> None:
    """``count`` smooth random RGB PNGs of ``size``² (upsampled noise: compresses and decodes
    like a photo more than pure noise does)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (max(2, size // 16), max(2, size // 16), 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.png")


def make_dataroot(root: Path, count: int, size: int, test_count: int = 0) -> Path:
    for side, seed in (("A", 0), ("B", 1)):
        write_images(root / f"train{side}", count, size, seed)
        if test_count:
            write_images(root / f"test{side}", test_count, size, seed + 2)
    return root


def default_load_size(crop: int) -> int:
    """The reference's load/crop ratio (286 / 256) at another crop size."""
    return round(crop * 286 / 256)


# ---- peaks ----------------------------------------------------------------------------------------


def best_rate(fn, flops: float, repeats: int = 3, trials: int = 5) -> float:
    """FLOP/s of ``fn`` (``flops`` each call): best of ``trials`` timings of ``repeats`` calls."""
    fn()  # warm-up
    best = math.inf
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return flops / best


def measured_matmul_peak(size: int = 2048, repeats: int = 3, trials: int = 5) -> float:
    """This machine's fp32 matmul rate (FLOP/s) with the current thread count: best of ``trials``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return best_rate(lambda: a @ b, 2 * size**3, repeats, trials)


def measured_conv_peak(dtype: torch.dtype = torch.float32, repeats: int = 3, trials: int = 5, size: int = 64) -> float:
    """The rate of the generator's dominant convolution (3x3, 256 -> 256 channels, 64² at crop 256,
    the residual blocks' shape) in ``dtype``, forward only. On CPUs torch's matmul often is not the
    fastest kernel (MKL's on AMD runs below oneDNN's convolutions), so a peak from matmul alone
    would understate what the machine can do."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    x = torch.randn(1, 256, size, size)
    context = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def run() -> None:
        with torch.no_grad(), context:
            conv(x)

    return best_rate(run, 2 * 256 * 256 * 9 * size * size, repeats, trials)


def peak_of(device: torch.device, matmul_size: int, precision: str = "fp32") -> dict[str, Any]:
    """{"flops": {precision: FLOP/s}, "source": text} for ``device``. On a CPU: the best of
    this run's fp32 matmul and convolution rates, and (``--amp bf16``) the bf16 convolution's."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in PEAKS:
            if key in name:
                return {"flops": dict(flops), "source": f"datasheet, dense ({key}): {name}"}
        return {"flops": {}, "source": f"unknown device: {name}"}
    threads = torch.get_num_threads()
    matmul, conv = measured_matmul_peak(matmul_size), measured_conv_peak()
    flops = {"fp32": max(matmul, conv)}
    source = (
        f"measured, {threads} threads, best of 5: fp32 {matmul_size}² matmul {matmul / 1e9:.1f} GFLOP/s, "
        f"fp32 3x3 256-channel conv {conv / 1e9:.1f} GFLOP/s"
    )
    if precision == "bf16":
        if native_low_precision(torch.bfloat16):
            flops["bf16"] = measured_conv_peak(torch.bfloat16)
            source += f", bf16 conv {flops['bf16'] / 1e9:.1f} GFLOP/s"
        else:  # emulated, about 1% of fp32's rate: a smaller conv, so the measurement takes seconds, not minutes
            flops["bf16"] = measured_conv_peak(torch.bfloat16, repeats=1, trials=2, size=16)
            source += f", bf16 conv {flops['bf16'] / 1e9:.2f} GFLOP/s (emulated: this CPU has no native bf16)"
    return {"flops": flops, "source": source}


# ---- one crop size, in this process -----------------------------------------------------------------


def train_options(root: Path, crop: int, args: argparse.Namespace, extra: list[str]) -> Options:
    base = ["--dataroot", str(root), "--model", args.model, "--batch_size", str(args.batch_size)]
    base += ["--crop_size", str(crop), "--load_size", str(default_load_size(crop)), "--seed", "0"]
    return parse_options([*base, *extra], is_train=True, prog="benchmark.py")  # train_args override


def precision_of(opt: Options) -> str:
    return "fp32" if opt.amp == "none" else opt.amp


def reference_architecture(opt: Options) -> bool:
    return all(getattr(opt, k, None) == v for k, v in REFERENCE_ARCHITECTURE.items()) and opt.model == "cycle_gan"


def notes_flops(opt: Options) -> float | None:
    """Field notes §4's per-iteration estimate for these options, or None where it does not apply."""
    if not reference_architecture(opt) or getattr(opt, "lambda_identity", 0) <= 0:
        return None
    return NOTES_FLOPS_256 * (opt.crop_size / 256) ** 2 * opt.batch_size


def timed_loop(
    model: BaseModel, batches: Iterator[dict], steps: int, device: torch.device
) -> list[tuple[float, float]]:
    """(seconds waiting for the batch, seconds of the step) of ``steps`` training iterations."""
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        losses = model.train_step(batch)
        float(sum(losses.values()))  # the step is done when its losses are
        synchronize(device)
        out.append((t1 - t0, time.perf_counter() - t1))
    return out


def count_flops(model: BaseModel, batch: dict) -> int:
    """FLOPs of one training step on ``batch``, counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch)
    return int(counter.get_total_flops())


CONV_OPS = ("convolution_backward", "mkldnn_convolution", "slow_conv", "_convolution_transpose", "conv_depthwise")


def cost_breakdown(model: BaseModel, batch: dict) -> dict[str, float]:
    """Where one CPU training step's time goes, from torch.profiler's self times: the convolution
    kernels (forward and backward; what the FLOPs are) against everything else (norms, padding,
    activations, losses, the optimizer, autograd). Even with "everything else" at zero, the step
    cannot be faster than the convolutions at their kernels' rate."""
    from torch.profiler import ProfilerActivity, profile

    model.train_step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train_step(batch)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    conv = sum(e.self_cpu_time_total for e in events if any(op in e.key for op in CONV_OPS)) / 1e6
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    return {"convolution_s": conv, "other_s": total - conv, "convolution_share": conv / total if total else 0.0}


def test_batch_size(model: BaseModel, wanted: int) -> int:
    """test.py's batching (engine.evaluation.translate_folder): models whose outputs depend on the
    batch (batch norm or dropout in train mode, test.py's default) run one image at a time."""
    batch_dependent = any(
        isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd))
        for net in model.nets.values()
        for m in net.modules()
    )
    return 1 if batch_dependent else wanted


def time_inference(model: BaseModel, opt: Options, crop: int, batch: int, warmup: int, iters: int) -> float:
    """Median seconds per image of ``model.inference`` (what test.py calls), at test-time size."""
    side = model.test_sides[0]
    images = torch.rand(batch, opt.input_nc, crop, crop) * 2 - 1
    # what a style model's test items carry besides the image (the others ignore them): a style
    items = [{"style": [torch.rand(3, crop, crop) * 2 - 1], "style_weights": [1.0]} for _ in range(batch)]
    model.train()  # test.py's default (no --eval): train mode, as the reference tests
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        outputs = model.inference(side, images, items=items)
        synchronize(model.device)
        float(list(outputs.values())[-1].sum())  # the last output is computed last
        if i >= warmup:
            times.append((time.perf_counter() - t0) / batch)
    return statistics.median(times)


def memory_start(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return 0
    return current_rss_bytes()


def memory_used(device: torch.device, start: int) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max_memory_allocated"
    return max(0, peak_rss_bytes() - start), "peak RSS growth (ru_maxrss - RSS at start)"


def bench_crop(crop: int, args: argparse.Namespace, extra: list[str], peak: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        steps = args.warmup + args.iters
        root = make_dataroot(Path(tmp), steps * args.batch_size + 1, crop)  # images as large as the crop
        opt = train_options(root, crop, args, extra)
        device = select_device(gpu_ids(opt.gpu_ids), fixed_input_size=True)
        seed_everything(opt.seed)
        dataset = create_dataset(opt, split="train")
        loader, sampler = create_train_loader(dataset, opt, device)
        dataset.set_epoch(1)
        sampler.set_epoch(1, start=0)
        model = create_model(opt, device)
        model.train()

        batches = iter(loader)
        memory = memory_start(device)  # the built model is not counted; gradients, Adam state, activations are
        timed_loop(model, batches, args.warmup, device)
        timed = timed_loop(model, batches, args.iters, device)
        memory_bytes, memory_kind = memory_used(device, memory)
        del batches  # stops the workers

    waits, computes = [w for w, _ in timed], [c for _, c in timed]
    step_s = statistics.median(computes)
    synthetic = {
        "A": torch.rand(opt.batch_size, opt.input_nc, crop, crop) * 2 - 1,
        "B": torch.rand(opt.batch_size, opt.output_nc, crop, crop) * 2 - 1,
    }
    flops = count_flops(model, synthetic)
    achieved = flops / step_s
    breakdown = cost_breakdown(model, synthetic) if device.type == "cpu" else None
    test_batch = test_batch_size(model, args.test_batch_size or default_test_batch_size(device.type))
    test_s = time_inference(model, opt, crop, test_batch, 1, args.test_iters)
    return {
        "crop_size": crop,
        "load_size": opt.load_size,
        "batch_size": opt.batch_size,
        "device": str(device),
        "precision": precision_of(opt),
        "compile": opt.compile,
        "channels_last": opt.channels_last,
        "step_s": step_s,
        "step_s_all": computes,
        "iter_s": statistics.median(w + c for w, c in timed),
        "data_wait_s": statistics.median(waits),
        "data_share": sum(waits) / (sum(waits) + sum(computes)),
        "loader_workers": loader.num_workers,
        "test_s_per_image": test_s,
        "test_batch_size": test_batch,
        "test_grad_mode": "inference_mode (model.inference)",
        "memory_bytes": memory_bytes,
        "memory_kind": memory_kind,
        "flops_per_iter": flops,
        "notes_flops_per_iter": notes_flops(opt),
        "achieved_flops": achieved,
        "utilisation": {precision: achieved / value for precision, value in peak["flops"].items()},
        "cost_breakdown": breakdown,
        "load_average": load_average(),
    }


def print_crop(r: dict[str, Any]) -> None:
    notes = r["notes_flops_per_iter"]
    notes_text = f" (field notes §4: {notes / 1e12:.2f})" if notes else ""
    utilisation = ", ".join(f"{v:.1%} of {k} peak" for k, v in r["utilisation"].items()) or "peak unknown"
    switches = [r["precision"]] + ["channels_last"] * r["channels_last"]
    switches += [f"compile {r['compile']}"] * (r["compile"] != "none")
    where = f"crop {r['crop_size']} (load {r['load_size']}), batch {r['batch_size']}, {r['device']}"
    print(
        f"{where}, {', '.join(switches)}:\n"
        f"  train step      {r['step_s']:.3f} s/iter (median of {len(r['step_s_all'])}); "
        f"with data {r['iter_s']:.3f} s\n"
        f"  data loader     {r['data_share']:.1%} of the loop waiting for batches ({r['loader_workers']} workers)\n"
        f"  test            {r['test_s_per_image']:.3f} s/image (batch {r['test_batch_size']})\n"
        f"  memory          {r['memory_bytes'] / 2**20:.0f} MiB ({r['memory_kind']})\n"
        f"  FLOPs           {r['flops_per_iter'] / 1e12:.3f} TFLOP/iter counted{notes_text}; "
        f"{r['achieved_flops'] / 1e9:.1f} GFLOP/s achieved = {utilisation}\n"
        + (
            f"  where it goes   convolutions {b['convolution_s']:.3f} s ({b['convolution_share']:.0%}), "
            f"everything else {b['other_s']:.3f} s (one profiled step)\n"
            if (b := r["cost_breakdown"])
            else ""
        )
        + f"  load average    {r['load_average']}"
    )


# ---- side by side, whole processes --------------------------------------------------------------------


def train_command(root: Path, name: str, crop: int, count: int, out: Path) -> list[str]:
    """A ``train.py`` run of ``count`` iterations with flags both codebases understand. It saves
    once, at the end of its one epoch (what test.py then loads; a constant that cancels in the
    difference); dropout off, which CycleGAN's defaults are here and in today's reference (the
    2018 reference turned it on unless told ``--no_dropout``)."""
    big = "10000000"
    return [
        sys.executable, "train.py", "--dataroot", str(root), "--name", name, "--model", "cycle_gan",
        "--checkpoints_dir", str(out), "--n_epochs", "1", "--n_epochs_decay", "0",
        "--max_dataset_size", str(count), "--gpu_ids", "-1", "--display_id", "0", "--no_html",
        "--print_freq", big, "--display_freq", big, "--save_latest_freq", big, "--save_epoch_freq", "1",
        "--serial_batches", "--crop_size", str(crop), "--load_size", str(default_load_size(crop)), "--no_dropout",
    ]  # fmt: skip


def test_command(root: Path, name: str, crop: int, count: int, checkpoints: Path, out: Path) -> list[str]:
    """A ``test.py`` run over ``count`` images of each test folder (the reference's cycle_gan test
    translates both sides of each item: 4 generator passes and 6 saved images per A/B pair; ours
    translates testA and testB: the same 4 passes and 6 images per pair)."""
    return [
        sys.executable, "test.py", "--dataroot", str(root), "--name", name, "--model", "cycle_gan",
        "--checkpoints_dir", str(checkpoints), "--results_dir", str(out), "--gpu_ids", "-1",
        "--load_size", str(crop), "--crop_size", str(crop), "--num_test", str(count), "--phase", "test",
        "--no_dropout",
    ]  # fmt: skip


# The reference renamed its flags in 2019 (--niter became --n_epochs, --loadSize --load_size, ...).
# A checkout from before then gets the flags above under their old names.
CLASSIC_FLAGS = {
    "--n_epochs": "--niter",
    "--n_epochs_decay": "--niter_decay",
    "--load_size": "--loadSize",
    "--crop_size": "--fineSize",
    "--num_test": "--how_many",
    "--batch_size": "--batchSize",
    "--num_threads": "--nThreads",
}


def flag_vocabulary(checkout: Path) -> dict[str, str]:
    """``CLASSIC_FLAGS`` when the checkout's options still declare ``--niter`` (an ``add_argument`` of
    it: merely naming it, as options/legacy.py here does for its error message, does not count),
    else no renaming."""
    options = checkout / "options"
    text = "".join(p.read_text(errors="replace") for p in sorted(options.glob("*.py"))) if options.is_dir() else ""
    classic = re.search(r"add_argument\(\s*['\"]--niter['\"]", text) is not None
    return CLASSIC_FLAGS if classic else {}


def renamed(command: list[str], vocabulary: dict[str, str]) -> list[str]:
    return [vocabulary.get(word, word) for word in command]


def time_process(command: list[str], cwd: Path, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise SystemExit(f"benchmark.py: {shlex.join(command)} in {cwd} failed ({done.returncode}):\n{tail}")
    return seconds


def difference_rate(seconds: dict[int, list[float]], n1: int, n2: int) -> tuple[list[float], float]:
    """Per round (T(N2) - T(N1)) / (N2 - N1), and their median."""
    per_round = [(b - a) / (n2 - n1) for a, b in zip(seconds[n1], seconds[n2], strict=True)]
    return per_round, statistics.median(per_round)


def compare_crop(crop: int, checkouts: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    n1, n2 = args.compare_iters
    t1, t2 = args.compare_test_images
    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        root = make_dataroot(Path(tmp) / "data", n2, crop, test_count=t2)
        seconds: dict[str, dict[int, list[float]]] = {who: {n1: [], n2: []} for who in checkouts}
        test_seconds: dict[str, dict[int, list[float]]] = {who: {t1: [], t2: []} for who in checkouts}
        order = list(checkouts)
        vocabulary = {who: flag_vocabulary(path) for who, path in checkouts.items()}
        for r in range(args.rounds):
            for who in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
                for n in (n1, n2):
                    run = Path(tmp) / f"{who}_{r}_{n}"
                    command = renamed(train_command(root, f"bench_{who}", crop, n, run), vocabulary[who])
                    t = time_process(command, checkouts[who], Path(tmp) / f"{who}_{r}_{n}.log")
                    seconds[who][n].append(t)
                    print(
                        f"  crop {crop} round {r + 1} {who}: train N={n} {t:.1f} s (load {load_average()})", flush=True
                    )
                if not t2:
                    continue
                trained = Path(tmp) / f"{who}_{r}_{n2}"  # this round's checkpoint
                for n in (t1, t2):
                    results = Path(tmp) / f"{who}_{r}_{n}_test"
                    command = renamed(test_command(root, f"bench_{who}", crop, n, trained, results), vocabulary[who])
                    t = time_process(command, checkouts[who], Path(tmp) / f"{who}_{r}_{n}_test.log")
                    test_seconds[who][n].append(t)
                    print(
                        f"  crop {crop} round {r + 1} {who}: test N={n} {t:.1f} s (load {load_average()})", flush=True
                    )
    per_iter, s_iter = {}, {}
    for who in checkouts:
        per_iter[who], s_iter[who] = difference_rate(seconds[who], n1, n2)
    result = {
        "crop_size": crop,
        "load_size": default_load_size(crop),
        "n1": n1,
        "n2": n2,
        "rounds": args.rounds,
        "flags": {who: "classic (--niter, --loadSize, ...)" if vocabulary[who] else "current" for who in checkouts},
        "process_s": seconds,
        "per_round_s_per_iter": per_iter,
        "s_per_iter": s_iter,
        "ratio_ours_over_theirs": s_iter["ours"] / s_iter["theirs"],
        "load_average": load_average(),
    }
    if t2:
        per_pair = {who: difference_rate(test_seconds[who], t1, t2) for who in checkouts}
        result.update(
            test_images=[t1, t2],
            test_process_s=test_seconds,
            per_round_test_s_per_pair={who: v[0] for who, v in per_pair.items()},
            test_s_per_pair={who: v[1] for who, v in per_pair.items()},
            test_ratio_ours_over_theirs=per_pair["ours"][1] / per_pair["theirs"][1],
        )
    return result


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    theirs = Path(args.compare).resolve()
    if not (theirs / "train.py").is_file():
        raise SystemExit(f"benchmark.py: --compare {theirs}: no train.py there")
    checkouts = {"ours": REPO_ROOT, "theirs": theirs}
    results = []
    for crop in args.crop_sizes:
        r = compare_crop(crop, checkouts, args)
        print(
            f"crop {crop}: ours {r['s_per_iter']['ours']:.3f} s/iter, theirs {r['s_per_iter']['theirs']:.3f} s/iter, "
            f"ratio ours/theirs {r['ratio_ours_over_theirs']:.3f} (N {r['n1']}->{r['n2']}, {r['rounds']} rounds, "
            f"load average {r['load_average']})",
            flush=True,
        )
        if "test_s_per_pair" in r:
            pair = r["test_s_per_pair"]
            print(
                f"crop {crop}: test ours {pair['ours']:.3f} s per A/B pair, theirs {pair['theirs']:.3f} s, "
                f"ratio ours/theirs {r['test_ratio_ours_over_theirs']:.3f} (images {r['test_images']})",
                flush=True,
            )
        results.append(r)
    return {"mode": "compare", "ours": str(REPO_ROOT), "theirs": str(theirs), "compare": results}


# ---- main ----------------------------------------------------------------------------------------------------


# ---- one row per speed switch ----------------------------------------------------------------------

MATRIX = {
    "cuda": {
        "eager fp32": "",
        "bf16": "--amp bf16",
        "channels_last": "--channels_last",
        "compile (CUDA graphs)": "--compile reduce-overhead",
        "all": "--amp bf16 --channels_last --compile reduce-overhead",
    },
    "cpu": {
        "eager fp32": "",
        "channels_last": "--channels_last",
        "bf16": "--amp bf16",
        "compile": "--compile default",
    },
}


def matrix_rows(args: argparse.Namespace, extra: list[str]) -> dict[str, str]:
    """{row name: train.py flags} of ``--matrix``: ``--matrix_rows NAME=FLAGS ...`` or the device's default."""
    if args.matrix_rows:
        return dict(row.split("=", 1) for row in args.matrix_rows)
    opt = parse_options(["--dataroot", ".", "--model", args.model, *extra], is_train=True, prog="benchmark.py")
    return MATRIX["cuda" if gpu_ids(opt.gpu_ids) and torch.cuda.is_available() else "cpu"]


def run_matrix(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """This script once per row, in a process of its own, with the row's flags appended to
    ``--train_args``; the summaries side by side, each row's step time against the first row's."""
    passed = strip_options(argv, {"--matrix": 0, "--matrix_rows": "+", "--train_args": 1})
    rows: dict[str, dict[str, Any]] = {}
    for name, flags in matrix_rows(args, shlex.split(args.train_args)).items():
        command = [sys.executable, str(Path(__file__).resolve()), *passed, "--train_args", f"{args.train_args} {flags}"]
        print(f"matrix row {name!r}: {flags or '(defaults)'}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("BENCH_JSON ")), None)
        if done.returncode != 0 or line is None:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            rows[name] = {"flags": flags, "failed": tail[0]}
            print(f"  failed: {tail[0]}", flush=True)
            continue
        rows[name] = {"flags": flags, **json.loads(line[len("BENCH_JSON ") :])}
    print_matrix(rows)
    return {"mode": "matrix", "rows": [{"name": name, **row} for name, row in rows.items()]}  # in their order


def strip_options(argv: list[str], drop: dict[str, int | str]) -> list[str]:
    """``argv`` without the options in ``drop`` (name -> how many values: a count, or "+" for all
    up to the next option)."""
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        name = word.split("=", 1)[0]
        if name not in drop:
            out.append(word)
            i += 1
            continue
        i += 1
        if "=" in word:
            continue
        count = drop[name]
        if count == "+":
            while i < len(argv) and not argv[i].startswith("--"):
                i += 1
        else:
            i += int(count)
    return out


def print_matrix(rows: dict[str, dict[str, Any]]) -> None:
    print("row                      crop   step s/iter  vs first  test s/image  data share  utilisation  memory MiB")
    base: dict[int, float] = {}
    for name, row in rows.items():
        if "failed" in row:
            print(f"{name:24s} failed: {row['failed']}")
            continue
        for r in row["results"]:
            base.setdefault(r["crop_size"], r["step_s"])
            r["speedup_vs_first_row"] = base[r["crop_size"]] / r["step_s"]
            utilisation = ", ".join(f"{v:.1%} {k}" for k, v in r["utilisation"].items())
            print(
                f"{name:24s} {r['crop_size']:4d}   {r['step_s']:10.4f}  {r['speedup_vs_first_row']:7.2f}x  "
                f"{r['test_s_per_image']:11.4f}  {r['data_share']:9.1%}  {utilisation:>11s}  "
                f"{r['memory_bytes'] / 2**20:9.0f}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cycle_gan", help="--model of train.py")
    p.add_argument("--crop_sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--iters", type=int, default=5, help="timed training steps per crop size")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    p.add_argument(
        "--test_batch_size", type=int, default=None, help="as test.py's --test_batch_size (default: test.py's)"
    )
    p.add_argument("--test_iters", type=int, default=3, help="timed test batches (after one untimed)")
    p.add_argument(
        "--train_args",
        default="",
        help="more train.py options, quoted, passed through and recorded (device, precision, compile: "
        'whatever train.py has, e.g. "--gpu_ids -1")',
    )
    p.add_argument("--matmul_size", type=int, default=2048, help="matrix size of the CPU peak measurement")
    p.add_argument("--compare", metavar="PATH", help="time whole train.py processes of this checkout and of PATH")
    p.add_argument("--compare_iters", type=int, nargs=2, default=[2, 6], metavar=("N1", "N2"))
    p.add_argument(
        "--compare_test_images",
        type=int,
        nargs=2,
        default=[2, 6],
        metavar=("N1", "N2"),
        help="test images per side of --compare's test.py timing (0 0: train only)",
    )
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of --compare")
    p.add_argument("--matrix", action="store_true", help="one row per speed switch, each in its own process")
    p.add_argument(
        "--matrix_rows",
        nargs="+",
        metavar="NAME=FLAGS",
        help='--matrix\'s rows instead of the device\'s default, e.g. "eager=" "cl=--channels_last"',
    )
    args = p.parse_args(argv)
    if args.compare and args.compare_iters[0] >= args.compare_iters[1]:
        p.error("--compare_iters: N1 must be smaller than N2")
    t1, t2 = args.compare_test_images
    if args.compare and t2 and t1 >= t2:
        p.error("--compare_test_images: N1 must be smaller than N2 (or 0 0)")
    return args


def header(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "model": args.model,
        "train_args": extra,
        "iters": args.iters,
        "warmup": args.warmup,
        "load_average_start": load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_bench(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    device_opt = parse_options(["--dataroot", ".", "--model", args.model, *extra], is_train=True, prog="benchmark.py")
    device = select_device(gpu_ids(device_opt.gpu_ids), fixed_input_size=True)
    peak = peak_of(device, args.matmul_size, precision_of(device_opt))
    peak_text = ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peak["flops"].items()) or "none"
    print(f"peak: {peak_text} ({peak['source']})", flush=True)
    results = []
    for crop in args.crop_sizes:
        results.append(bench_crop(crop, args, extra, peak))
        print_crop(results[-1])
    return {"mode": "bench", "peak": peak, "results": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = shlex.split(args.train_args)
    summary = header(args, extra)
    print(f"torch {summary['torch']}, {summary['threads']} threads; train options: {' '.join(extra) or '(defaults)'}")
    if args.matrix:
        summary.update(run_matrix(args, sys.argv[1:] if argv is None else list(argv)))
    else:
        summary.update(run_compare(args) if args.compare else run_bench(args, extra))
    summary["load_average_end"] = load_average()
    print("BENCH_JSON " + json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
