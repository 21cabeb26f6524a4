"""Exact resume, stops and restarts of 2-rank jobs, with real processes (torchrun, gloo, CPU).

One uninterrupted job (the module's ``reference``) trains 24 iterations and keeps a full
checkpoint every 4 (``iter_<n>.pth`` with every rank's shard); each test interrupts a job with
the same options in its own way (``--max_iters``, SIGTERM to the launcher, SIGKILL of a rank
under ``--max_restarts``), resumes it, and compares the result with the reference's checkpoint
at the same iteration, bit for bit: weights, optimizers, schedulers, both ranks' image pools,
random states and loss sums. ``--gan_mode wgangp`` draws from every rank's global random stream
(the penalty's interpolation), so a rank resumed with another rank's state would diverge.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import distributed
from engine.checkpoint import load_checkpoint
from engine.position import RunPosition
from engine.run import Run
from engine.tracking import LossTracker
from models import create_model
from options import parse_options
from tests.conftest import REPO_ROOT, TINY, assert_same_state, find_free_port, write_images
from tests.test_distributed import child_env
from util.errors import UserError

pytestmark = pytest.mark.distributed

ITERS = 24  # 3 iterations per epoch per rank: 8 epochs
SAME = ["--gan_mode", "wgangp", "--seed", "7", "--save_latest_freq", "4", "--save_by_iter", "--full_checkpoints"]
PARTS = ("nets", "optimizers", "schedulers", "pools", "rng", "tracker")


def launcher(extra: list[str] | None = None) -> list[str]:
    port = find_free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d"]
    return [*command, "--rdzv_endpoint", f"127.0.0.1:{port}", *(extra or [])]


def job_args(root: Path, checkpoints: Path, name: str, max_iters: int) -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(checkpoints), *TINY, *SAME] + [
        "--max_iters",
        str(max_iters),
    ]


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    """Wait for a launcher; whatever happens, none of its processes outlives the test."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        end_group(process)
    return process.returncode, out, err


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (none once it has ended)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts each rank in a session of its own)."""
    return [pid for child in children(pid) for pid in (child, *descendants(child))]


def end_group(process: subprocess.Popen) -> None:
    """SIGKILL a launcher and every process it started (a lost node, or the end of a test)."""
    for pid in [*descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def run_job(root: Path, checkpoints: Path, name: str, max_iters: int, *flags: str) -> tuple[str, str]:
    code, out, err = finish(start([*launcher(), "train.py", *job_args(root, checkpoints, name, max_iters), *flags]))
    assert code == 0, err[-3000:]
    return out, err


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert process.poll() is None, f"the job ended before {path} was written: {process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def full_state(run_dir: Path, tag: str) -> tuple[dict, dict]:
    """A full checkpoint of 2 ranks: (rank 0's part, the checkpoint itself; rank 1's shard)."""
    state = load_checkpoint(run_dir / f"{tag}.pth")
    assert state["world_size"] == 2
    shards = sorted((run_dir / state["rank_shards"]).glob("*.pth"))
    assert [p.name for p in shards] == ["rank_1.pth"]
    return state, load_checkpoint(shards[0])


def assert_same_training_state(run_dir: Path, tag: str, reference_dir: Path, reference_tag: str) -> None:
    (state, shard), (expected, expected_shard) = full_state(run_dir, tag), full_state(reference_dir, reference_tag)
    assert state["total_iters"] == expected["total_iters"]
    for part in PARTS:
        assert_same_state(state[part], expected[part], f"rank 0 {part}")
    for part in ("pools", "rng", "tracker"):
        assert_same_state(shard[part], expected_shard[part], f"rank 1 {part}")
    # the ranks' own parts differ (their own pools and streams): comparing them is not vacuous
    assert not torch.equal(state["rng"]["torch"], shard["rng"]["torch"])


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, reference run folder): 6 A images (3 per rank per epoch), 3 B images."""
    base = tmp_path_factory.mktemp("resume")
    root = base / "data"
    write_images(root / "trainA", 6, seed=1)
    write_images(root / "trainB", 3, seed=2, tint=(1.0, 0.4, 0.4))
    run_job(root, base / "ck", "reference", ITERS)
    return root, base / "ck" / "reference"


def test_two_ranks_4_plus_4_iterations_equal_8(job: tuple[Path, Path], tmp_path: Path) -> None:
    """Stopped at iteration 4 (mid-epoch 2) by --max_iters and resumed to 8: the same state as
    the uninterrupted job's at 8, on both ranks; the resume says it is exact (no note)."""
    root, reference = job
    run_job(root, tmp_path, "split", 4)
    out, _ = run_job(root, tmp_path, "split", 8, "--continue_train")
    assert "resumed from" in out and "epoch 2, iteration 4" in out
    assert "afresh" not in out
    assert_same_training_state(tmp_path / "split", "latest", reference, "iter_8")


def test_sigterm_stops_every_rank_at_one_iteration_saves_once_and_resumes_exactly(
    job: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGTERM to torchrun (which forwards it to the ranks, not at the same instant): the ranks
    agree on one iteration, rank 0 says once where it saved, ``latest`` and rank 1's shard are
    of that iteration (the only set on disk), and resuming to the next multiple of 4 gives the
    uninterrupted job's state there."""
    root, reference = job
    process = start([*launcher(), "train.py", *job_args(root, tmp_path, "term", ITERS)])
    wait_for(tmp_path / "term" / "iter_4.pth", process)
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process)
    assert code != 0
    stops = [line for line in err.splitlines() if line.startswith("stopped at iteration")]
    assert len(stops) == 1, err[-3000:]
    stopped = int(stops[0].split()[3].rstrip(";"))
    assert 4 <= stopped < ITERS
    state, shard = full_state(tmp_path / "term", "latest")
    assert state["total_iters"] == shard["total_iters"] == stopped
    assert [p.name for p in (tmp_path / "term" / "latest.ranks").iterdir()] == [Path(state["rank_shards"]).name]
    resume_to = 4 * (stopped // 4 + 1)
    run_job(root, tmp_path, "term", resume_to, "--continue_train")
    assert_same_training_state(tmp_path / "term", "latest", reference, f"iter_{resume_to}")


def worker_pids(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of the train.py processes a torchrun launcher started."""
    ranks = {}
    for pid in children(launcher_pid):
        environ = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
        )
        if "RANK" in environ:
            ranks[int(environ["RANK"])] = pid
    return ranks


def test_a_killed_rank_is_restarted_with_max_restarts_and_the_job_resumes_latest_exactly(
    job: tuple[Path, Path], tmp_path: Path
) -> None:
    """``torchrun --max_restarts 1``: SIGKILL of rank 1 after the first save; the launcher
    restarts both ranks, which resume this job's ``latest`` by themselves (no --continue_train
    on the command line) and finish: the final state is the uninterrupted job's."""
    root, reference = job
    command = [*launcher(["--max_restarts", "1"]), "train.py", *job_args(root, tmp_path, "restart", ITERS)]
    process = start(command)
    wait_for(tmp_path / "restart" / "iter_4.pth", process)
    ranks = worker_pids(process.pid)
    assert set(ranks) == {0, 1}
    os.kill(ranks[1], signal.SIGKILL)
    code, out, err = finish(process)
    assert code == 0, err[-3000:]
    assert "[rank0]: Traceback" not in err  # rank 0 lost rank 1: one line, not a traceback
    assert "note: torchrun restarted the job (restart 1): resuming" in out
    resumed = [line for line in out.splitlines() if line.startswith("resumed from")]
    assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1]) >= 4, resumed  # not a fresh start
    assert load_checkpoint(tmp_path / "restart" / "latest.pth")["total_iters"] == ITERS
    assert_same_training_state(tmp_path / "restart", "latest", reference, f"iter_{ITERS}")


@pytest.mark.slow
def test_a_lost_node_ends_the_job_cleanly_and_the_job_resumes_exactly(job: tuple[Path, Path], tmp_path: Path) -> None:
    """Two simulated nodes (two torchrun launchers, --nnodes 2, --max_restarts 1, one c10d
    rendezvous); the second "node" is lost after the first save (SIGKILL of its launcher and
    its rank). The first node's rank says in one line that it lost the other, its launcher
    tries once to restart, cannot gather 2 nodes within the rendezvous' join timeout, and ends
    the job with a non-zero status; ``latest`` is intact. Both nodes relaunched with
    --continue_train finish the job with the uninterrupted job's state."""
    root, reference = job

    def nodes(extra: list[str]) -> list[subprocess.Popen]:
        endpoint = f"127.0.0.1:{find_free_port()}"
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
        command += ["--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", "lost_node"]
        command += ["--max_restarts", "1", "--rdzv_conf", "join_timeout=15", "train.py"]
        command += [*job_args(root, tmp_path, "nodes", ITERS), *extra]
        return [start(command) for _ in range(2)]

    first, second = nodes([])
    try:
        wait_for(tmp_path / "nodes" / "iter_4.pth", first)
        end_group(second)  # the node is lost: its launcher and its rank
        lost = time.monotonic()
        code, _, err = finish(first, timeout=120)
        ended = time.monotonic() - lost
    finally:
        end_group(first)
        end_group(second)
    assert code != 0 and ended < 60, (code, ended)
    assert "lost another process of the job" in err, err[-3000:]
    assert "[rank0]: Traceback" not in err and "[rank1]: Traceback" not in err
    saved = load_checkpoint(tmp_path / "nodes" / "latest.pth")["total_iters"]
    assert 4 <= saved < ITERS

    outputs = [finish(node) for node in nodes(["--continue_train"])]
    assert [code for code, _, _ in outputs] == [0, 0], [err[-2000:] for _, _, err in outputs]
    assert_same_training_state(tmp_path / "nodes", "latest", reference, f"iter_{ITERS}")


def resume_in_process(root: Path, checkpoints: Path, tag: str) -> tuple[object, object, RunPosition]:
    """(model, tracker, position) as train.py's set-up leaves them resuming ``tag``."""
    opt = parse_options([*job_args(root, checkpoints, "copy", ITERS), "--continue_train", "--epoch", tag], True)
    run = Run(opt)
    opt = run.options(opt)
    model = create_model(opt, torch.device("cpu"))
    tracker = LossTracker(model.loss_names, torch.device("cpu"))
    return model, tracker, run.start(opt, model, tracker)


def test_another_number_of_processes_resumes_weights_optimizers_and_schedule_and_reseeds_the_rest(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """One process resuming the 2-rank job's full checkpoint at epoch 4's end: weights,
    optimizers, schedulers and position exactly; the pools start empty and the random state is
    reseeded (they were the ranks' own), and the note says so."""
    root, reference = job
    shutil.copytree(reference, tmp_path / "copy")
    model, _, position = resume_in_process(root, tmp_path, "iter_12")
    saved = load_checkpoint(tmp_path / "copy" / "iter_12.pth")
    assert position == RunPosition(5, 0, 12) and saved["world_size"] == 2
    assert_same_state(model.state_dict()["nets"], saved["nets"], "nets")
    assert_same_state({k: o.state_dict() for k, o in model.optimizers.items()}, saved["optimizers"], "optimizers")
    assert_same_state({k: s.state_dict() for k, s in model.schedulers.items()}, saved["schedulers"], "schedulers")
    assert all(len(pool["images"]) == 12 for pool in saved["pools"].values())  # one fake per step so far
    assert all(not pool.images for pool in model.pools.values())
    assert not torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert "(" + str(tmp_path / "copy" / "iter_12.pth") + ": 2): weights, optimizers, schedule and position " in (
        capsys.readouterr().out
    )


def test_rank_1_resumes_its_own_shard_and_a_missing_shard_is_a_one_line_error(
    job: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of 2 (simulated in this process: the set-up needs no collective) resuming the job's
    mid-epoch iter_4: its pools, random state and loss sums are its shard's, not rank 0's. The
    same checkpoint copied without its .ranks folder: a one-line error saying what is missing."""
    root, reference = job
    shutil.copytree(reference, tmp_path / "copy")
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    model, tracker, position = resume_in_process(root, tmp_path, "iter_4")
    saved = load_checkpoint(tmp_path / "copy" / "iter_4.pth")
    shard = load_checkpoint(tmp_path / "copy" / saved["rank_shards"] / "rank_1.pth")
    assert position == RunPosition(2, 1, 4)
    assert_same_state(model.state_dict()["pools"], shard["pools"], "pools")
    assert_same_state(tracker.state_dict(), shard["tracker"], "tracker")
    assert torch.equal(torch.get_rng_state(), shard["rng"]["torch"])
    assert not torch.equal(shard["rng"]["torch"], saved["rng"]["torch"])  # not rank 0's

    shutil.rmtree(tmp_path / "copy" / "iter_4.ranks")
    with pytest.raises(UserError, match=r"names the per-rank state .*rank_1\.pth, which is missing"):
        resume_in_process(root, tmp_path, "iter_4")
