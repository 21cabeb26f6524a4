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

import pytest

from tests.conftest import REPO_ROOT

TINY_TRAIN = "--netG resnet_6blocks --ngf 8 --ndf 8 --gpu_ids -1"
CROP_KEYS = {
    "crop_size", "load_size", "batch_size", "device", "precision", "compile", "step_s", "step_s_all", "iter_s",
    "data_wait_s", "data_share", "loader_workers", "test_s_per_image", "test_batch_size", "test_grad_mode",
    "memory_bytes", "memory_kind", "flops_per_iter", "notes_flops_per_iter", "achieved_flops", "utilisation",
    "load_average", "channels_last", "cost_breakdown",
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
    assert set(peak) == {"fp32"} and peak["fp32"] > 0  # a CPU: the best measured matmul / conv rate
    assert "measured" in summary["peak"]["source"]

    (crop,) = summary["results"]
    assert set(crop) == CROP_KEYS
    assert crop["crop_size"] == 32 and crop["device"] == "cpu" and crop["precision"] == "fp32"
    assert len(crop["step_s_all"]) == 2
    assert math.isclose(crop["step_s"], statistics.median(crop["step_s_all"]))
    assert crop["step_s"] > 0 and crop["iter_s"] >= crop["data_wait_s"] >= 0
    assert 0 <= crop["data_share"] <= 1
    assert crop["test_s_per_image"] > 0 and crop["test_batch_size"] == 1  # test.py's default on a CPU
    assert crop["memory_bytes"] >= 0
    assert crop["flops_per_iter"] > 0
    assert crop["notes_flops_per_iter"] is None  # not the reference architecture
    assert math.isclose(crop["achieved_flops"], crop["flops_per_iter"] / crop["step_s"], rel_tol=1e-9)
    assert set(crop["utilisation"]) == set(peak)
    assert math.isclose(crop["utilisation"]["fp32"], crop["achieved_flops"] / peak["fp32"], rel_tol=1e-9)
    assert "crop 32" in stdout and "s/iter" in stdout and "s/image" in stdout
    b = crop["cost_breakdown"]  # one profiled step: convolutions and the rest add up to a step's time
    assert 0 < b["convolution_share"] < 1 and b["convolution_s"] > 0 and b["other_s"] > 0
    assert math.isclose(b["convolution_share"], b["convolution_s"] / (b["convolution_s"] + b["other_s"]))
    assert 0.2 * crop["step_s"] < b["convolution_s"] + b["other_s"] < 5 * crop["step_s"]


def test_bf16_run_reports_a_bf16_peak_and_utilisation() -> None:
    args = ["--crop_sizes", "32", "--iters", "1", "--warmup", "1", "--test_iters", "1", "--matmul_size", "256"]
    _, summary = run_benchmark(*args, "--train_args", TINY_TRAIN + " --amp bf16 --channels_last")
    (crop,) = summary["results"]
    peak = summary["peak"]["flops"]
    assert crop["precision"] == "bf16" and crop["channels_last"] is True and set(peak) == {"fp32", "bf16"}
    assert math.isclose(crop["utilisation"]["bf16"], crop["achieved_flops"] / peak["bf16"], rel_tol=1e-9)


def test_matrix_runs_each_row_in_its_own_process_and_compares_it_with_the_first() -> None:
    args = ["--matrix", "--crop_sizes", "32", "--iters", "1", "--warmup", "1", "--test_iters", "1"]
    args += ["--matmul_size", "256", "--train_args", TINY_TRAIN]
    args += ["--matrix_rows", "eager=", "cl=--channels_last", "broken=--amp fp8"]
    stdout, summary = run_benchmark(*args)
    assert summary["mode"] == "matrix" and [row["name"] for row in summary["rows"]] == ["eager", "cl", "broken"]
    eager, cl, broken = summary["rows"]
    # each row is a whole benchmark run of its own, with its flags after --train_args'
    assert eager["train_args"] == TINY_TRAIN.split() and cl["train_args"] == [*TINY_TRAIN.split(), "--channels_last"]
    assert eager["results"][0]["channels_last"] is False and cl["results"][0]["channels_last"] is True
    assert eager["results"][0]["speedup_vs_first_row"] == 1.0
    ratio = eager["results"][0]["step_s"] / cl["results"][0]["step_s"]
    assert math.isclose(cl["results"][0]["speedup_vs_first_row"], ratio, rel_tol=1e-9)
    assert "--amp" in broken["failed"] and "fp8" in broken["failed"]  # a row that cannot run says why
    assert "cl " in stdout and "failed:" in stdout


@pytest.mark.slow
def test_compare_mode_derives_rates_from_the_process_times() -> None:
    """--compare against this checkout itself (any reference-compatible codebase works): the
    per-iteration and per-test-pair rates are the difference quotients of the timed processes."""
    args = ["--compare", str(REPO_ROOT), "--crop_sizes", "32", "--rounds", "1"]
    args += ["--compare_iters", "1", "3", "--compare_test_images", "1", "2"]
    stdout, summary = run_benchmark(*args)
    assert summary["mode"] == "compare"
    (r,) = summary["compare"]
    for who in ("ours", "theirs"):
        train, test = r["process_s"][who], r["test_process_s"][who]
        assert math.isclose(r["s_per_iter"][who], (train["3"][0] - train["1"][0]) / 2)
        assert math.isclose(r["test_s_per_pair"][who], test["2"][0] - test["1"][0])
    assert math.isclose(r["ratio_ours_over_theirs"], r["s_per_iter"]["ours"] / r["s_per_iter"]["theirs"])
    assert math.isclose(r["test_ratio_ours_over_theirs"], r["test_s_per_pair"]["ours"] / r["test_s_per_pair"]["theirs"])
    assert "ratio ours/theirs" in stdout and "per A/B pair" in stdout


def test_notes_estimate_applies_to_the_reference_architecture_only() -> None:
    from scripts import benchmark

    reference = {"model": "cycle_gan", "netG": "resnet_9blocks", "ngf": 64, "netD": "basic", "ndf": 64}
    opt = SimpleNamespace(**reference, n_layers_D=3, lambda_identity=0.5, crop_size=128, batch_size=2)
    assert math.isclose(benchmark.notes_flops(opt), 1.9e12 / 4 * 2)
    assert benchmark.notes_flops(SimpleNamespace(**{**vars(opt), "ngf": 32})) is None
    assert benchmark.notes_flops(SimpleNamespace(**{**vars(opt), "lambda_identity": 0.0})) is None


def test_classic_flag_names_only_for_a_checkout_that_declares_them(tmp_path) -> None:
    """A 2018 checkout declares ``--niter``; this one only names it (options/legacy.py's error)."""
    from scripts import benchmark

    assert benchmark.flag_vocabulary(REPO_ROOT) == {}
    (tmp_path / "options").mkdir()
    (tmp_path / "options/train_options.py").write_text(
        "parser.add_argument('--niter', type=int, default=100, help='# of iter at starting learning rate')\n"
    )
    assert benchmark.flag_vocabulary(tmp_path)["--n_epochs"] == "--niter"
