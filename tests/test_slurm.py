"""scripts/slurm_train.sh under a real SLURM: sbatch jobs on a cluster of this one machine
(scripts/setup_slurm_local.sh: munged, slurmctld and two slurmd "nodes", all local), CPU
processes (gloo). Nothing is mocked: sbatch, srun and scontrol are SLURM's own.

The job tests are marked ``slow`` and ``distributed`` (``make test`` runs them); they need root
and start the cluster if it is not running (installing SLURM with apt if it is missing), and stop
it again if they started it. Where that cannot be done they skip, saying why (a failure under CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.distributed import LAUNCHER_VARIABLES
from tests.conftest import REPO_ROOT, TINY, find_free_port, write_images

SCRIPT = REPO_ROOT / "scripts" / "slurm_train.sh"
SETUP = REPO_ROOT / "scripts" / "setup_slurm_local.sh"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without torchrun's variables or those of a SLURM job it may run in."""
    drop = set(LAUNCHER_VARIABLES)
    env = {k: v for k, v in os.environ.items() if k not in drop and not (k.startswith("SLURM_") and k != "SLURM_CONF")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def slurm_up() -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return ping.returncode == 0 and "UP" in ping.stdout


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """A running local cluster of 2 nodes; stopped at the end if this fixture started it."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (scripts/setup_slurm_local.sh)")
    started = shutil.which("scontrol") is None or not slurm_up()
    setup = subprocess.run(
        ["bash", str(SETUP)],
        env=clean_env(SLURM_LOCAL_NODES="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if setup.returncode != 0:
        pytest.skip(f"no local SLURM cluster: {setup.stderr.strip() or setup.stdout.strip()}")
    try:
        yield
    finally:
        if started:
            subprocess.run(["bash", str(SETUP), "--stop"], capture_output=True, timeout=120)


def submit(cwd: Path, sbatch: list[str], args: list[str], timeout: float = 240, **env: str) -> tuple[str, str]:
    """``sbatch sbatch... slurm_train.sh args...`` from ``cwd``; waits for the job to end and
    returns its final state and its output."""
    out = cwd / "slurm-%j.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--job-name=pytest-slurm", f"--output={out}", *sbatch, str(SCRIPT), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        record = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
        match = re.search(r"\bJobState=(\S+)", record.stdout)
        state = match.group(1) if match else state
        if state in ENDED:
            break
        time.sleep(0.5)
    else:
        subprocess.run(["scancel", job], timeout=30)
        pytest.fail(f"job {job} still {state or 'unknown'} after {timeout} s")
    return state, Path(str(out).replace("%j", job)).read_text()


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(("nodes", "nproc"), [(1, 2), (2, 1)], ids=["1node-x2", "2nodes-x1"])
def test_sbatch_trains_one_job_of_2_ranks(slurm: None, tmp_path: Path, nodes: int, nproc: int) -> None:
    """A real sbatch job: 1 node x 2 processes, or 2 nodes x 1 process (two torchruns, one per
    node, meeting at the c10d rendezvous); either way one group of 2 ranks that trains 4 steps and
    writes one checkpoint. Submitted from a folder outside the repository with relative paths:
    the script finds the repository and train.py resolves the paths against the submit folder."""
    write_images(tmp_path / "tiny" / "trainA", 8, size=40, seed=1)  # 4 steps of 2 ranks per epoch
    write_images(tmp_path / "tiny" / "trainB", 4, size=40, seed=2, tint=(1.0, 0.4, 0.4))
    args = ["--dataroot", "tiny", "--name", "smoke", "--checkpoints_dir", "ck", *TINY, "--seed", "1"]
    args += ["--n_epochs", "1", "--n_epochs_decay", "0", "--max_iters", "4"]
    sbatch = [f"--nodes={nodes}", "--gpus-per-node=0"]
    env = {"NPROC_PER_NODE": str(nproc), "MASTER_PORT": str(find_free_port())}
    state, output = submit(tmp_path, sbatch, args, **env)
    assert state == "COMPLETED", output
    assert f"{nodes} node(s) x {nproc} process(es)" in output
    assert "2 processes" in output and "reached --max_iters 4" in output, output

    from engine.checkpoint import load_checkpoint

    state_dict = load_checkpoint(tmp_path / "ck" / "smoke" / "latest.pth")
    assert state_dict["total_iters"] == 4
    assert state_dict.get("world_size") == 2


@pytest.mark.slow
@pytest.mark.distributed
def test_sbatch_without_gpus_or_nproc_fails_saying_so(slurm: None, tmp_path: Path) -> None:
    state, output = submit(tmp_path, ["--nodes=1", "--gpus-per-node=0"], ["--name", "x"], timeout=60)
    assert state == "FAILED"
    assert "slurm_train.sh: error: no GPUs on this node" in output and "NPROC_PER_NODE" in output


def test_outside_an_allocation_it_refuses_in_one_line(tmp_path: Path) -> None:
    """Run by hand (bash, no sbatch), the script stops before anything else."""
    done = subprocess.run(
        ["bash", str(SCRIPT), "--name", "x"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "slurm_train.sh: error: not inside a SLURM allocation (no SLURM_JOB_ID): submit it with sbatch "
        "scripts/slurm_train.sh ARGS"
    ]
