"""scripts/benchmark.py at a tiny size: the JSON summary's structure, and that its figures agree
with each other. Never their values: speed is not asserted."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from types import SimpleNamespace

from tests.conftest import REPO_ROOT

TINY_TRAIN = "--netG resnet_6blocks --ngf 8 --ndf 8 --gpu_ids -1"
CROP_KEYS = {
    "crop_size", "load_size", "batch_size", "device", "precision", "compile", "step_s", "step_s_all", "iter_s",
    "data_wait_s", "data_share", "loader_workers", "test_s_per_image", "test_batch_size", "test_grad_mode",
    "memory_bytes", "memory_kind", "flops_per_iter", "notes_flops_per_iter", "achieved_flops", "utilisation",
    "load_average",
}  # fmt: skip


def run_benchmark(*args: str) -> tuple[str, dict]:
    command = [sys.executable, "scripts/benchmark.py", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH_JSON "), last
    return done.stdout, json.loads(last.removeprefix("BENCH_JSON "))


def test_tiny_benchmark_summary_is_complete_and_consistent() -> None:
    args = ["--crop_sizes", "32", "--iters", "2", "--warmup", "1", "--test_iters", "1", "--matmul_size", "256"]
    stdout, summary = run_benchmark(*args, "--train_args", TINY_TRAIN)

    assert summary["mode"] == "bench"
    assert summary["train_args"] == TINY_TRAIN.split()
    assert summary["iters"] == 2 and summary["warmup"] == 1
    assert len(summary["load_average_start"]) == 3 and len(summary["load_average_end"]) == 3
    peak = summary["peak"]["flops"]
    assert set(peak) == {"fp32"} and peak["fp32"] > 0  # a CPU: the measured matmul rate
    assert "measured" in summary["peak"]["source"]

    (crop,) = summary["results"]
    assert set(crop) == CROP_KEYS
    assert crop["crop_size"] == 32 and crop["device"] == "cpu" and crop["precision"] == "fp32"
    assert len(crop["step_s_all"]) == 2
    assert math.isclose(crop["step_s"], statistics.median(crop["step_s_all"]))
    assert crop["step_s"] > 0 and crop["iter_s"] >= crop["data_wait_s"] >= 0
    assert 0 <= crop["data_share"] <= 1
    assert crop["test_s_per_image"] > 0 and crop["test_batch_size"] == 8  # instance norm, no dropout: batched
    assert crop["memory_bytes"] >= 0
    assert crop["flops_per_iter"] > 0
    assert crop["notes_flops_per_iter"] is None  # not the reference architecture
    assert math.isclose(crop["achieved_flops"], crop["flops_per_iter"] / crop["step_s"], rel_tol=1e-9)
    assert set(crop["utilisation"]) == set(peak)
    assert math.isclose(crop["utilisation"]["fp32"], crop["achieved_flops"] / peak["fp32"], rel_tol=1e-9)
    assert "crop 32" in stdout and "s/iter" in stdout and "s/image" in stdout


def test_notes_estimate_applies_to_the_reference_architecture_only() -> None:
    from scripts import benchmark

    reference = {"model": "cycle_gan", "netG": "resnet_9blocks", "ngf": 64, "netD": "basic", "ndf": 64}
    opt = SimpleNamespace(**reference, n_layers_D=3, lambda_identity=0.5, crop_size=128, batch_size=2)
    assert math.isclose(benchmark.notes_flops(opt), 1.9e12 / 4 * 2)
    assert benchmark.notes_flops(SimpleNamespace(**{**vars(opt), "ngf": 32})) is None
    assert benchmark.notes_flops(SimpleNamespace(**{**vars(opt), "lambda_identity": 0.0})) is None
