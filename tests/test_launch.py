"""``python train.py --gpu_ids 0,1`` / ``--gpu_ids -1 --nproc_per_node 2`` without torchrun:
train.py starts the processes itself through torch's launcher API (``engine.launch``). Real
processes (gloo on the CPU, 2 ranks) for the runs, marked ``distributed``; the launch plan
(config, worker environment, checks) without processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

import train
from engine import distributed, launch
from engine.checkpoint import load_checkpoint
from options import INVOCATION, parse_options
from tests.conftest import REPO_ROOT, TINY, assert_same_state
from tests.test_distributed import UNREADABLE_1_OF_4, args, child_env, dataset, torchrun, train_records
from util.errors import UserError


def python_train(options: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``python train.py options`` as a user types it (no launcher variables in the environment)."""
    return subprocess.run(
        [sys.executable, "train.py", *options],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def not_launched(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.distributed
def test_nproc_per_node_trains_as_torchrun_does(tmp_path: Path) -> None:
    """``--gpu_ids -1 --nproc_per_node 2`` without torchrun: 2 ranks (the effective batch says
    2 processes, rank 0 alone writes one run folder), and bit for bit the training of a
    torchrun 2-rank run of the same options: the launcher path is the same training."""
    root = dataset(tmp_path / "tiny")
    common = ["--max_iters", "3", "--pool_size", "2", "--seed", "4"]
    launched = python_train([*args(root, tmp_path, "launched"), *common, "--nproc_per_node", "2"])
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("batch: --batch_size 1 per process x 2 processes = 2 per step") == 1
    assert launched.stdout.count("reached --max_iters 3") == 1 and "Traceback" not in launched.stderr
    done = torchrun([*args(root, tmp_path, "torchrun"), *common])
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "ck" / "launched"
    files = ["latest.pth", "latest.ranks", "loss_log.jsonl", "loss_log.txt", "opt.yaml"]
    assert sorted(p.name for p in run.iterdir()) == files
    ours, theirs = (load_checkpoint(tmp_path / "ck" / name / "latest.pth") for name in ("launched", "torchrun"))
    assert ours["world_size"] == theirs["world_size"] == 2 and ours["total_iters"] == 3
    for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
        assert_same_state(ours[part], theirs[part], part)
    shards = [
        load_checkpoint(tmp_path / "ck" / name / state["rank_shards"] / "rank_1.pth")
        for name, state in (("launched", ours), ("torchrun", theirs))
    ]
    for part in ("pools", "rng", "tracker"):  # rank 1's own state too
        assert_same_state(shards[0][part], shards[1][part], f"rank 1 {part}")
    logged = {name: [r["losses"] for r in train_records(tmp_path / "ck" / name)] for name in ("launched", "torchrun")}
    assert logged["launched"] == logged["torchrun"]


@pytest.mark.distributed
def test_a_worker_that_fails_ends_the_launch_with_its_status(tmp_path: Path) -> None:
    """An unreadable image that only rank 1 reads: rank 1 prints its one-line error and exits
    with 2; rank 0, whose collective fails when rank 1 leaves, says so in one line (no
    traceback); the launcher stops the job, says which rank failed and exits with its status."""
    root = dataset(tmp_path / "tiny")
    bad = root / "trainA" / "0001.png"
    bad.write_bytes(b"not an image")
    done = python_train([*args(root, tmp_path, "bad"), "--serial_batches", "--max_iters", "4", "--nproc_per_node", "2"])
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("train.py: error:")]
    assert errors == [f"train.py: error: rank 1: cannot read image {bad}: {UNREADABLE_1_OF_4}"]
    launcher = "train.py: rank 1 of 2 exited with status 2; the other processes were stopped"
    assert done.stderr.splitlines()[-1] == launcher
    # rank 0: one line when its collective failed; the agent's SIGTERM may reach it first
    rank0 = {line for line in done.stderr.splitlines() if line.startswith("train.py: rank 0: stopped: lost another")}
    assert len(rank0) <= 1
    rank0 |= {"", "SIGTERM received: saving 'latest' after this iteration ..."}
    assert set(done.stderr.splitlines()) <= {errors[0], launcher, *rank0}, done.stderr[-3000:]


def test_gpu_ids_plan_one_process_per_listed_gpu(tmp_path: Path, not_launched: None) -> None:
    """``--gpu_ids 2,3``: 2 workers, which see GPUs 2 and 3 (so LOCAL_RANK r trains on the r-th
    of them), on a single-node c10d rendezvous with a fresh id and no restarts; ids count among
    the GPUs this process sees (CUDA_VISIBLE_DEVICES=4,5,6,7 --gpu_ids 2,3: GPUs 6 and 7)."""
    opt = parse_options(["--dataroot", str(tmp_path), *TINY, "--gpu_ids", "2,3"])
    assert launch.processes(opt) == 2 and launch.wanted(opt)
    assert launch.worker_environment(opt, 4, {}) == {"CUDA_VISIBLE_DEVICES": "2,3", "OMP_NUM_THREADS": "1"}
    inherited = {"CUDA_VISIBLE_DEVICES": "4,5,6,7", "OMP_NUM_THREADS": "3"}
    assert launch.worker_environment(opt, 4, inherited) == {"CUDA_VISIBLE_DEVICES": "6,7"}
    config = launch.launch_config(opt)
    assert (config.nproc_per_node, config.min_nodes, config.max_nodes, config.max_restarts) == (2, 1, 1, 0)
    assert (config.rdzv_backend, config.rdzv_endpoint) == ("c10d", "127.0.0.1:0")
    assert config.run_id and config.run_id != launch.launch_config(opt).run_id
    assert parse_options(["--dataroot", str(tmp_path), *TINY, "--gpu_ids", "2,3", "--nproc_per_node", "2"]).gpu_ids


def test_cpu_processes_and_single_processes(tmp_path: Path, not_launched: None, monkeypatch) -> None:
    """--gpu_ids -1 --nproc_per_node 2: two CPU workers, no GPU variable; one GPU or the default:
    no launch; under torchrun (its variables set) nothing is launched again. --nproc_per_node is
    this invocation's own: --continue_train does not take it from the run."""
    base = ["--dataroot", str(tmp_path), *TINY]
    cpu = parse_options([*base, "--nproc_per_node", "2"])
    assert launch.processes(cpu) == 2 and launch.wanted(cpu)
    assert launch.worker_environment(cpu, 0, {}) == {"OMP_NUM_THREADS": "1"}
    assert launch.launch_config(cpu).nproc_per_node == 2
    for single in ([*base], [*base, "--gpu_ids", "0"], [*base, "--gpu_ids", "0", "--nproc_per_node", "1"]):
        assert not launch.wanted(parse_options(single))
    assert "nproc_per_node" in cpu.keys_in(INVOCATION)
    for name, value in {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    assert not launch.wanted(cpu) and not launch.wanted(parse_options([*base, "--gpu_ids", "0,1"]))


@pytest.mark.parametrize(
    "options, message",
    [
        (["--gpu_ids", "0,1", "--nproc_per_node", "3"], "--nproc_per_node 3 with --gpu_ids 0,1: one process per GPU"),
        (["--gpu_ids", "0", "--nproc_per_node", "2"], "--nproc_per_node 2 with --gpu_ids 0: one process per GPU"),
        (["--nproc_per_node", "0"], "--nproc_per_node must be at least 1, got 0"),
    ],
)
def test_a_process_count_that_does_not_fit_is_one_line(tmp_path: Path, capsys, options, message) -> None:
    with pytest.raises(SystemExit) as stop:
        train.main(["--dataroot", str(tmp_path), *TINY, *options])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"train.py: error: {message}") and len(err) == 2  # usage line + error


def test_more_gpus_than_torch_sees_is_one_line(tmp_path: Path, not_launched: None) -> None:
    """--gpu_ids naming more GPUs than visible: a one-line error saying how many torch sees;
    repeated ids too. The counts come from the plan alone (no CUDA needed)."""
    opt = parse_options(["--dataroot", str(tmp_path), *TINY, "--gpu_ids", "0,1"])
    with pytest.raises(UserError, match=r"^--gpu_ids 0,1 asks for 2 GPUs but torch sees only 1 GPU\(s\); "):
        launch.worker_environment(opt, 1, {})
    with pytest.raises(UserError, match="torch sees no GPU"):
        launch.worker_environment(opt, 0, {})
    with pytest.raises(UserError, match="lists GPU 1 more than once"):
        launch.worker_environment(parse_options(["--dataroot", str(tmp_path), *TINY, "--gpu_ids", "1,1"]), 4, {})


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs a machine with fewer than 2 GPUs")
def test_gpu_ids_beyond_this_machine_fail_before_anything_starts(tmp_path: Path, capsys, not_launched: None) -> None:
    """For real on this machine: train.py --gpu_ids 0,1 with fewer than 2 GPUs visible is one
    line naming how many torch sees, status 2, no worker started, and CUDA not initialised."""
    assert (
        train.main(["--dataroot", str(tmp_path), *TINY, "--gpu_ids", "0,1", "--checkpoints_dir", str(tmp_path / "ck")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    count = torch.cuda.device_count()
    sees = f"only {count} GPU(s)" if count else "no GPU (CUDA is not available)"
    assert err == [
        f"train.py: error: --gpu_ids 0,1 asks for 2 GPUs but torch sees {sees}; "
        "--gpu_ids -1 --nproc_per_node 2 trains 2 CPU processes instead"
    ]
    assert not torch.cuda.is_initialized() and not (tmp_path / "ck").exists()


def test_the_failure_reported_is_the_one_that_caused_the_others(tmp_path: Path) -> None:
    """A worker that failed on its own, not one that only lost its peer or was stopped."""
    missing = str(tmp_path / "no_error_file.json")
    failure = {code: ProcessFailure(local_rank=0, pid=1, exitcode=code, error_file=missing) for code in (2, 4, -15, -9)}
    assert launch.root_cause({0: failure[launch.PEER_LEFT], 1: failure[2]})[0] == 1
    assert launch.root_cause({0: failure[-15], 1: failure[2]})[0] == 1
    assert launch.root_cause({0: failure[-15], 1: failure[-9], 2: failure[4]})[0] == 1  # killed (OOM, say)
    assert launch.root_cause({0: failure[2], 1: failure[2]})[0] == 0
