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
from pathlib import Path

import pytest
import torch

import train
from engine import distributed
from models.cycle_gan_model import CycleGANModel
from tests.conftest import REPO_ROOT, TINY, find_free_port, write_images


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``train.py args`` as 2 ranks on this machine, with a c10d rendezvous on a free port."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d"]
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


def test_a_rank_other_than_0_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 of 2 (simulated in this process, without communication) trains its shard through
    saves, logs and HTML displays, and leaves no file: no opt.yaml, checkpoint, log or web page."""
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    steps = []
    step = CycleGANModel.train_step
    monkeypatch.setattr(
        CycleGANModel, "train_step", lambda self, batch: steps.append(len(batch["A"])) or step(self, batch)
    )
    extra = ["--max_iters", "3", "--save_latest_freq", "1", "--display_freq", "1", "--update_html_freq", "1"]
    assert train.main([*args(dataset(tmp_path / "tiny"), tmp_path, "r1"), *extra]) == 0
    assert steps == [1, 1, 1] and not (tmp_path / "ck").exists()


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
        gathered = {}
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
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_ranks_hold_the_same_weights_and_gradients(tmp_path: Path, norm: str) -> None:
    """DDP: 2 ranks with different initial weights and different data end up with the same
    parameters and, after each backward, the same (averaged) gradients; their losses differ."""
    options = ["--dataroot", str(tmp_path), *TINY, "--norm", norm, "--pool_size", "2", "--seed", "1"]
    out = tmp_path / "gathered.pt"
    torch.multiprocessing.spawn(_ranks_agree, args=(find_free_port(), options, str(out)), nprocs=2)
    result = torch.load(out)
    for key in ("params", "grads"):
        assert torch.equal(*result[key]), f"{key} differ between the ranks"
    assert result["grads"][0].abs().sum() > 0 and not torch.equal(*result["losses"])
    assert set(result["nets"].values()) == {"DistributedDataParallel"}
    # on the CPU torch has no SyncBatchNorm: batch norm stays per process
    assert result["norms"] == {"batch": {"BatchNorm2d"}, "instance": {"InstanceNorm2d"}}[norm]
