"""Multi-process training on torch.distributed with real processes: gloo on the CPU, 2 ranks,
started by torch's own launcher (``python -m torch.distributed.run``, i.e. torchrun) or by
``torch.multiprocessing``. Marked ``distributed``: the default ``pytest`` run leaves them out,
``make test`` (CI) runs them; ``pytest -m distributed tests/test_distributed.py`` runs them alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
from engine import distributed
from engine.checkpoint import load_checkpoint
from models.base_model import unwrap
from models.cycle_gan_model import CycleGANModel
from tests.conftest import REPO_ROOT, TINY, assert_same_state, find_free_port, write_images
from util.seeds import stream_seed

# data.readable's policy with the default --max_unreadable: no unreadable file among 4 items
UNREADABLE_1_OF_4 = (
    "not an image file (no image format recognised) (1 unreadable, more than the 0 that --max_unreadable 0.01 of 4 "
    "items allows: fix or remove them, or raise --max_unreadable)"
)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(args: list[str], timeout: float = 120, nproc: int = 2) -> subprocess.CompletedProcess:
    """``train.py args`` as ``nproc`` ranks on this machine, with a c10d rendezvous on a free port."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--rdzv_backend", "c10d"]
    endpoint = ["--rdzv_endpoint", f"127.0.0.1:{find_free_port()}"]
    return subprocess.run(
        [*launcher, *endpoint, "train.py", *args],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dataset(root: Path) -> Path:
    """4 A images (2 steps of 2 samples per epoch), 2 B images."""
    write_images(root / "trainA", 4, seed=1)
    write_images(root / "trainB", 2, seed=2, tint=(1.0, 0.4, 0.4))
    return root


def args(root: Path, tmp_path: Path, name: str) -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), *TINY]


def train_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "train"]


def test_single_process_is_not_distributed() -> None:
    """Without torchrun's variables nothing is initialised and every helper is a no-op."""
    assert not distributed.launched()
    distributed.init(10, cuda=False)
    assert not torch.distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    distributed.barrier()
    values = torch.tensor([1.0, 3.0])
    assert distributed.all_reduce_mean(values) is values and values.tolist() == [1.0, 3.0]
    assert distributed.process_gpu_ids([2]) == [2]
    distributed.destroy()


def test_a_rank_other_than_0_writes_only_its_own_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 of 2 (simulated in this process, without communication) trains its shard through
    saves, logs and HTML displays, and writes nothing but its part of each full save: no
    opt.yaml, checkpoint, log or web page; one shard of its own pools, random state and loss
    sums per save of ``latest`` (3 saves; rank 0 would delete the two older sets)."""
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    steps = []
    step = CycleGANModel.train_step
    monkeypatch.setattr(
        CycleGANModel, "train_step", lambda self, batch: steps.append(len(batch["A"])) or step(self, batch)
    )
    extra = ["--max_iters", "3", "--save_latest_freq", "1", "--display_freq", "1", "--update_html_freq", "1"]
    assert train.main([*args(dataset(tmp_path / "tiny"), tmp_path, "r1"), *extra]) == 0
    assert steps == [1, 1, 1]
    written = sorted(p.relative_to(tmp_path / "ck").as_posix() for p in (tmp_path / "ck").rglob("*") if p.is_file())
    assert [path.split("/")[-1] for path in written] == ["rank_1.pth"] * 3, written
    assert all(path.startswith("r1/latest.ranks/it") for path in written), written
    shards = [load_checkpoint(tmp_path / "ck" / path) for path in written]
    assert sorted(shard["total_iters"] for shard in shards) == [1, 2, 3]
    assert all(set(shard) >= {"rank", "world_size", "pools", "rng", "tracker"} for shard in shards)
    assert all((shard["rank"], shard["world_size"]) == (1, 2) for shard in shards)


def test_resume_mid_epoch_needs_the_same_number_of_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The position inside an epoch counts one rank's samples: a checkpoint saved mid-epoch by 2
    processes (rank 0 of 2, simulated in this process) resumes only with 2; one saved at an
    epoch's end resumes with any number, saying that the resume is not exact."""
    root = dataset(tmp_path / "tiny")
    with monkeypatch.context() as patch:
        patch.setattr(distributed, "world_size", lambda: 2)
        assert train.main([*args(root, tmp_path, "mid"), "--max_iters", "1"]) == 0  # 1 of 2 steps per epoch
        assert load_checkpoint(tmp_path / "ck/mid/latest.pth")["world_size"] == 2
    capsys.readouterr()
    assert train.main([*args(root, tmp_path, "mid"), "--max_iters", "2", "--continue_train"]) == 2
    assert "was saved by 2 process(es) in the middle of epoch 1; resume it with 2 (this run has 1: e.g." in (
        capsys.readouterr().err
    )
    assert train.main([*args(root, tmp_path, "end"), "--max_iters", "4"]) == 0  # epoch 1's end
    assert "world_size" not in load_checkpoint(tmp_path / "ck/end/latest.pth")  # a single process: as before
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert train.main([*args(root, tmp_path, "end"), "--max_iters", "5", "--continue_train"]) == 0
    assert "note: resuming with 2 process(es) (" in capsys.readouterr().out


def _ranks_agree(rank: int, port: int, options: list[str], out: str) -> None:
    """One rank: a few steps of the model on this rank's own random batches, then every
    parameter and gradient compared with rank 0's."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    from models import create_model
    from options import parse_options

    torch.set_num_threads(1)
    distributed.init(60, cuda=False)
    try:
        opt = parse_options(options, is_train=True)
        torch.manual_seed(rank)  # different initial weights: DDP must start every rank from rank 0's
        model = create_model(opt, torch.device("cpu"))
        model.distribute()
        data = torch.Generator().manual_seed(100 + rank)
        losses = []
        for _ in range(3):
            batch = {side: torch.rand(2, 3, 32, 32, generator=data) * 2 - 1 for side in ("A", "B")}
            losses.append(torch.stack(list(model.train_step(batch).values())))
        params = torch.cat([p.detach().flatten() for net in model.nets.values() for p in net.parameters()])
        grads = torch.cat([p.grad.flatten() for net in model.nets.values() for p in net.parameters()])
        pools = torch.tensor([model.pools[side].generator.initial_seed() for side in ("A", "B")])
        gathered = {"pool_seeds": [torch.zeros_like(pools) for _ in range(2)]}
        torch.distributed.all_gather(gathered["pool_seeds"], pools)
        for key, tensor in {"params": params, "grads": grads, "losses": torch.stack(losses)}.items():
            gathered[key] = [torch.zeros_like(tensor) for _ in range(2)]
            torch.distributed.all_gather(gathered[key], tensor)
        if rank == 0:
            nets = {name: type(net).__name__ for name, net in model.nets.items()}
            norms = {
                type(m).__name__ for net in model.nets.values() for m in net.modules() if "Norm" in type(m).__name__
            }
            torch.save({**gathered, "nets": nets, "norms": norms}, out)
    finally:
        distributed.destroy()


@pytest.mark.distributed
def test_ranks_hold_the_same_weights_and_gradients(tmp_path: Path) -> None:
    """DDP: 2 ranks with different initial weights and different data end up with the same
    parameters and, after each backward, the same (averaged) gradients; their losses differ;
    each rank has its own image pools."""
    # batch norm: its running statistics are buffers, which DDP sends from rank 0 at each forward
    options = ["--dataroot", str(tmp_path), *TINY, "--norm", "batch", "--pool_size", "2", "--seed", "1"]
    out = tmp_path / "gathered.pt"
    torch.multiprocessing.spawn(_ranks_agree, args=(find_free_port(), options, str(out)), nprocs=2)
    result = torch.load(out, weights_only=True)
    for key in ("params", "grads"):
        assert torch.equal(*result[key]), f"{key} differ between the ranks"
    assert result["grads"][0].abs().sum() > 0 and not torch.equal(*result["losses"])
    assert set(result["nets"].values()) == {"DistributedDataParallel"}
    # one image pool per rank and side, each with its own stream
    expected = [[stream_seed(1, "pool", side, rank) for side in ("A", "B")] for rank in (0, 1)]
    assert [seeds.tolist() for seeds in result["pool_seeds"]] == expected
    # on the CPU torch has no SyncBatchNorm: batch norm stays per process
    assert result["norms"] == {"BatchNorm2d"}


EQUIVALENCE = ["--pool_size", "0", "--norm", "instance", "--no_flip", "--serial_batches", "--seed", "1"]


def _half_batches(rank: int, port: int, options: list[str], out: str) -> None:
    """One rank: the steps of ``half_batch_steps`` on its half of every batch, under DDP."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    distributed.init(60, cuda=False)
    try:
        model, losses = half_batch_steps(options, lambda batch: batch[rank : rank + 1])
        gathered = [torch.zeros_like(losses) for _ in range(2)]
        torch.distributed.all_gather(gathered, losses)
        if rank == 0:
            torch.save({"outputs": net_outputs(model), "losses": torch.stack(gathered).mean(0)}, out)
    finally:
        distributed.destroy()


def half_batch_steps(options: list[str], part) -> tuple[object, torch.Tensor]:
    """4 training steps in float64 on ``part`` of 4 fixed batches of 2; the model and the losses."""
    from models import create_model
    from options import parse_options

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(1)
    model = create_model(parse_options(options, is_train=True), torch.device("cpu"))
    model.distribute()
    data, losses = torch.Generator().manual_seed(7), []
    for _ in range(4):
        batch = {side: torch.rand(2, 3, 32, 32, generator=data, dtype=torch.float64) * 2 - 1 for side in "AB"}
        losses.append(torch.stack(list(model.train_step({k: part(v) for k, v in batch.items()}).values())))
    return model, torch.stack(losses)


def net_outputs(model) -> torch.Tensor:
    """Every network's output on one fixed input: what the weights compute. (Not the weights:
    the biases just before an instance norm have no effect and a gradient of 0 up to rounding,
    which Adam, dividing each gradient by its own size, turns into steps of size lr.)"""
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        return torch.cat([unwrap(net)(x).flatten() for net in model.nets.values()])


@pytest.mark.distributed
def test_a_ddp_step_is_a_step_on_the_whole_batch(tmp_path: Path) -> None:
    """The model's steps under DDP, 2 ranks x 1 sample, against one process on the 2 samples: in
    float64 what the networks compute after 4 steps and every step's losses (mean over the
    ranks) agree to rounding, because DDP averages the gradients and every loss is a mean over
    the batch. (In float32 they drift apart by much more than rounding: Adam turns the rounding
    noise of gradients that are about 0 into steps of size lr, and the GAN amplifies those.)"""
    options = ["--dataroot", str(tmp_path), *TINY, *EQUIVALENCE]
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(_half_batches, args=(find_free_port(), options, str(out)), nprocs=2)
    try:
        model, losses = half_batch_steps(options, lambda batch: batch)
    finally:
        torch.set_default_dtype(torch.float32)
    ddp = torch.load(out, weights_only=True)
    assert torch.allclose(ddp["losses"], losses, rtol=1e-10, atol=1e-12)
    assert torch.allclose(ddp["outputs"], net_outputs(model), rtol=0, atol=1e-10)
    assert not torch.allclose(ddp["losses"][1:], losses[:-1])  # the losses change from step to step


@pytest.mark.distributed
def test_torchrun_two_ranks_of_batch_1_log_as_one_process_of_batch_2(tmp_path: Path) -> None:
    """torchrun, 2 ranks x --batch_size 1 against 1 process x --batch_size 2, with the same data
    order, over 2 epochs with saves: the first step (same weights on both: rank 0's) sees the
    same samples, so its logged losses, the means over the ranks, are the batch-2 losses to
    float rounding; later steps drift apart in float32 (see the test above). Only rank 0
    wrote: the same files as the single process, one log record per step, one message; rank 0
    evaluated (--eval_freq) while rank 1 waited."""
    root = dataset(tmp_path / "tiny")
    write_images(root / "testA", 2, seed=3)
    write_images(root / "testB", 2, seed=5)
    for side in ("A", "B"):  # ground truth: --metrics l1 at every epoch's end
        write_images(root / f"test{side}_gt", 2, seed=6)
    same = [*EQUIVALENCE, "--max_iters", "4", "--save_epoch_freq", "1", "--display_freq", "2", "--print_freq", "1"]
    same += ["--eval_freq", "1", "--metrics", "l1"]
    assert train.main([*args(root, tmp_path, "one"), *same, "--batch_size", "2"]) == 0
    done = torchrun([*args(root, tmp_path, "two"), *same, "--batch_size", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "batch: --batch_size 1 per process x 2 processes = 2 per step" in done.stdout
    assert done.stdout.count("reached --max_iters 4") == 1  # rank 0 alone says it

    one, two = tmp_path / "ck" / "one", tmp_path / "ck" / "two"
    # the same files, and latest's per-rank set: one shard (rank 1's), the one latest names
    assert {p.name for p in two.iterdir()} - {"latest.ranks"} == {p.name for p in one.iterdir()}
    assert {p.name for p in one.iterdir()} >= {"1.pth", "2.pth", "latest.pth"}
    ddp = load_checkpoint(two / "latest.pth")
    assert [p.relative_to(two).as_posix() for p in (two / "latest.ranks").rglob("*.pth")] == [
        f"{ddp['rank_shards']}/rank_1.pth"
    ]
    assert (ddp["epoch"], ddp["epoch_samples"], ddp["total_iters"]) == (3, 0, 4)
    records = {name: train_records(run) for name, run in (("one", one), ("two", two))}
    assert [r["total_iters"] for r in records["two"]] == [r["total_iters"] for r in records["one"]] == [1, 2, 3, 4]
    assert records["two"][0]["losses"] == pytest.approx(records["one"][0]["losses"], rel=1e-5)
    # rank 0 evaluated at both epochs' ends while rank 1 waited (no deadlock, one record each)
    logged = [json.loads(line) for line in (two / "loss_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], set(r["metrics"])) for r in logged if r["kind"] == "metrics"] == [
        (1, {"l1_AtoB", "l1_BtoA"}),
        (2, {"l1_AtoB", "l1_BtoA"}),
    ]


@pytest.mark.distributed
def test_a_rank_that_fails_ends_the_job(tmp_path: Path) -> None:
    """An unreadable image that only rank 1 reads (its shard holds index 1): rank 1 prints its
    one-line error and exits with status 2; rank 0, waiting for it in a collective, fails too
    and the launcher ends the job with a non-zero status, well within 30 s."""
    root = dataset(tmp_path / "tiny")
    bad = root / "trainA" / "0001.png"
    bad.write_bytes(b"not an image")
    started = time.monotonic()
    done = torchrun([*args(root, tmp_path, "bad"), "--serial_batches", "--max_iters", "4"], timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode != 0 and elapsed < 30, (done.returncode, elapsed)
    errors = [line for line in done.stderr.splitlines() if line.startswith("train.py: error:")]
    assert errors == [f"train.py: error: rank 1: cannot read image {bad}: {UNREADABLE_1_OF_4}"]


@pytest.mark.distributed
def test_torchrun_with_one_process_trains_as_a_plain_process(tmp_path: Path) -> None:
    """A group of 1 (how a 1-GPU NCCL smoke would run): the process group is set up and torn
    down, nothing is wrapped or reseeded, and the run is bit for bit the plain process's."""
    root = dataset(tmp_path / "tiny")
    common = ["--max_iters", "3", "--pool_size", "2", "--seed", "4"]
    # the plain run as a process with the same environment (one OpenMP thread): floating-point
    # sums depend on the thread count, and this test is about the process group, not threads
    plain_run = subprocess.run(
        [sys.executable, "train.py", *args(root, tmp_path, "plain"), *common],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain_run.returncode == 0, plain_run.stderr[-3000:]
    done = torchrun([*args(root, tmp_path, "group"), *common], nproc=1)
    assert done.returncode == 0, done.stderr[-3000:]
    plain, group = (load_checkpoint(tmp_path / "ck" / name / "latest.pth") for name in ("plain", "group"))
    for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
        assert_same_state(plain[part], group[part], part)
    logged = {name: [r["losses"] for r in train_records(tmp_path / "ck" / name)] for name in ("plain", "group")}
    assert logged["group"] == logged["plain"] and "world_size" not in group


@pytest.mark.distributed
def test_two_nodes_on_localhost_train_together_and_write_one_checkpoint(tmp_path: Path) -> None:
    """Multi-node as a user runs it: two torchrun launchers (--nnodes 2, one process each, the
    same c10d rendezvous endpoint and id) join one job of 2 ranks. The job trains (rank 1 is
    on the other "node"), the effective batch counts both, and only global rank 0 writes."""
    root = dataset(tmp_path / "tiny")
    endpoint = f"127.0.0.1:{find_free_port()}"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    launcher += ["--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", "two_nodes"]
    command = [*launcher, "train.py", *args(root, tmp_path, "nodes"), "--max_iters", "3", "--seed", "4"]
    nodes = [
        subprocess.Popen(
            command, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for node in nodes:
            out, err = node.communicate(timeout=150)
            outputs.append((node.returncode, out, err))
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [code for code, _, _ in outputs] == [0, 0], [err[-2000:] for _, _, err in outputs]
    stdout = "".join(out for _, out, _ in outputs)
    assert stdout.count("batch: --batch_size 1 per process x 2 processes = 2 per step") == 1  # rank 0 says it
    assert stdout.count("reached --max_iters 3") == 1
    run = tmp_path / "ck" / "nodes"
    assert sorted(p.name for p in run.glob("*.pth")) == ["latest.pth"]
    state = load_checkpoint(run / "latest.pth")
    assert state["total_iters"] == 3 and state["world_size"] == 2
    assert [r["total_iters"] for r in train_records(run)] == [2]  # print_freq 2: one record, written once
