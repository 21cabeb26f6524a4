"""Real faults injected into real runs of train.py / test.py (subprocesses, as a user runs them):
what the user sees (one line that says what to do, no traceback) and that nothing is lost (the
previous checkpoint is byte-identical and loads, results already written survive, the run resumes).

- a full disk while saving: the checkpoints folder on a real tmpfs, shrunk (``mount -o remount``)
  to leave room for the logs but not for the next checkpoint next to the previous one;
- a read-only checkpoints folder (a read-only remount) for train.py, and a read-only results
  folder for test.py: one line before any training or translating;
- the visdom server killed and started again mid-run (the stock server, ``visdom_server``);
- data loader workers SIGKILLed mid-epoch: once (the loader restarts at the exact sample: the
  run ends bit-identical to an uninterrupted one), and over and over (``latest`` saved, exit 5,
  and the resume ends bit-identical too);
- SIGKILL of one of 2 gloo ranks, without restarts, under torchrun and under train.py's own
  launcher: the job ends within a bound, each of our processes says one line, and
  ``--continue_train`` continues from ``latest``. (tests/test_distributed_resume.py has the
  killed rank under ``--max_restarts`` and the lost node.)

Mounting needs root (this project's machines and CI run as root): a test that cannot mount fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from tests.conftest import REPO_ROOT, TINY, assert_same_state, find_free_port, write_images
from tests.test_distributed import child_env
from tests.test_distributed_resume import children, end_group, worker_pids
from util.fileio import WriteFailed, check_writable

PARTS = ("epoch", "epoch_samples", "total_iters", "nets", "optimizers", "schedulers", "pools", "rng", "tracker")


# helpers ----------------------------------------------------------------------------------------


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert result.returncode == 0, f"mount {' '.join(args)} failed (these tests need root): {result.stderr}"


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` for the test, unmounted whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    mount("-o", f"remount,{options}", str(path))


def script(name: str, *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, name, *map(str, args)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(command: list[object], log: Path) -> subprocess.Popen:
    """A background process whose output goes to ``log``.out/.err (a pipe nobody reads would fill)."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(list(map(str, command)), cwd=REPO_ROOT, env=child_env(), stdout=out, stderr=err)


def run_args(root: Path, checkpoints: Path, name: str, *extra: object) -> list[object]:
    return ["--dataroot", root, "--name", name, "--checkpoints_dir", checkpoints, *TINY, *extra]


def error_line(result: subprocess.CompletedProcess | str, prog: str = "train.py") -> str:
    """The one error line of a run; fails on a traceback or on more than one error line."""
    err = result if isinstance(result, str) else result.stderr
    assert "Traceback" not in err, err[-4000:]
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err[-4000:]
    return lines[0]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (hidden temporary files included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended (status {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def logged_iterations(run_dir: Path) -> int:
    """The last iteration in the run's loss_log.jsonl (0 before the first)."""
    path = run_dir / "loss_log.jsonl"
    if not path.is_file():
        return 0
    records = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return max((r["total_iters"] for r in records if r["kind"] == "train"), default=0)


def assert_same_training_state(path: Path, expected_path: Path) -> None:
    state, expected = load_checkpoint(path), load_checkpoint(expected_path)
    for part in PARTS:
        assert_same_state(state[part], expected[part], part)


# 1. a full disk while saving ----------------------------------------------------------------------


def test_disk_full_while_saving_keeps_latest_and_the_run_resumes_when_there_is_space(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "64m") as disk:
        args = run_args(tiny_dataset, disk, "run", "--save_latest_freq", "2")
        assert script("train.py", *args, "--max_iters", "2").returncode == 0
        latest = disk / "run" / "latest.pth"
        before = files(disk / "run")
        # room for the logs, not for a second checkpoint next to the first (a save is atomic)
        used = int(subprocess.run(["du", "-sb", str(disk)], capture_output=True, text=True).stdout.split()[0])
        remount(disk, f"size={used + len(before['latest.pth']) // 2}")

        full = script("train.py", *args, "--max_iters", "8", "--continue_train")
        assert full.returncode == 2
        line = error_line(full)
        assert line.startswith(f"train.py: error: cannot write {latest}: the disk is full (")
        assert line.endswith(
            f"; {latest} (iteration 2) is intact: free space (or move the run folder to another disk and "
            "pass that --checkpoints_dir) and resume with --continue_train"
        )
        assert "End of epoch 1" in full.stdout  # it trained iteration 3, and failed at the epoch's end save
        after = files(disk / "run")
        assert after["latest.pth"] == before["latest.pth"]  # byte for byte
        assert sorted(after) == ["latest.pth", "loss_log.jsonl", "loss_log.txt", "opt.yaml"]  # no temporary file

        remount(disk, "size=64m")  # space freed
        resumed = script("train.py", *args, "--max_iters", "8", "--continue_train")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resumed from {latest}: epoch 1, iteration 2" in resumed.stdout
        assert load_checkpoint(latest)["total_iters"] == 8


def test_disk_full_at_the_first_save_says_nothing_was_saved(tiny_dataset: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:  # the logs fit, a checkpoint (~4 MB) does not
        result = script("train.py", *run_args(tiny_dataset, disk, "run", "--save_latest_freq", "2", "--max_iters", "4"))
        assert result.returncode == 2
        line = error_line(result)
        assert line.startswith(f"train.py: error: cannot write {disk / 'run' / 'latest.pth'}: the disk is full (")
        assert line.endswith(
            "; nothing of this run was saved yet: free space (or pick another --checkpoints_dir) and start again"
        )
        assert sorted(files(disk / "run")) == ["loss_log.jsonl", "loss_log.txt", "opt.yaml"]  # no partial file


# 2. and 3. read-only folders ----------------------------------------------------------------------


def test_the_write_check_leaves_no_trace_unless_asked_to_keep_the_folder(tmp_path: Path) -> None:
    hint = "pick another --results_dir"
    assert check_writable(tmp_path / "a" / "b", "the results folder", hint) == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []  # neither the probe file nor the folders it made
    check_writable(tmp_path / "run", "the checkpoints folder", hint, keep=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and list((tmp_path / "run").iterdir()) == []
    with tmpfs(tmp_path / "ro", "1m") as disk:
        remount(disk, "ro")
        with pytest.raises(WriteFailed) as failed:
            check_writable(disk / "x", "the results folder", hint)
    assert str(failed.value) == f"cannot write to the results folder {disk / 'x'}: the file system is read-only; {hint}"
    assert not failed.value.disk_full


def test_read_only_checkpoints_folder_fails_in_one_line_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "64m") as disk:
        assert script("train.py", *run_args(tiny_dataset, disk, "run", "--max_iters", "2")).returncode == 0
        before = files(disk)
        remount(disk, "ro")
        for name, extra in (("run", ["--continue_train"]), ("new_run", [])):  # resume it; start another
            result = script("train.py", *run_args(tiny_dataset, disk, name, "--max_iters", "6", *extra))
            assert result.returncode == 2
            assert error_line(result) == (
                f"train.py: error: cannot write to the checkpoints folder {disk / name}: the file system is "
                "read-only; pick another --checkpoints_dir (or fix its permissions)"
            )
            # before the dataset, the model or a single step
            assert "dataset:" not in result.stdout and "(epoch:" not in result.stdout
        assert files(disk) == before


def test_read_only_results_folder_fails_in_one_line_and_keeps_the_results(tiny_dataset: Path, tmp_path: Path) -> None:
    assert script("train.py", *run_args(tiny_dataset, tmp_path / "ck", "run", "--max_iters", "1")).returncode == 0
    with tmpfs(tmp_path / "results", "16m") as results:
        args = ["--dataroot", tiny_dataset, "--name", "run", "--checkpoints_dir", tmp_path / "ck"]
        args += ["--results_dir", results, "--gpu_ids", "-1", "--num_threads", "0"]
        assert script("test.py", *args).returncode == 0
        written = files(results)
        assert "run/test_latest/index.html" in written and "run/test_latest/images/0000_fake_B.png" in written
        remount(results, "ro")
        result = script("test.py", *args)
        assert result.returncode == 2
        assert error_line(result, "test.py") == (
            f"test.py: error: cannot write to the results folder {results / 'run'}: the file system is read-only; "
            "pick another --results_dir"
        )
        assert "loaded " not in result.stdout  # no checkpoint loaded, nothing translated
        assert files(results) == written


# 4. visdom dies and comes back ----------------------------------------------------------------------


def shown(port: int, env: str, win: str) -> dict | None:
    """What the visdom server at ``port`` holds for a window (None: no such window, or no server)."""
    import visdom

    import monitor.visdom_backend  # noqa: F401  (quietens visdom's client log: a new client per question)

    try:
        client = visdom.Visdom(port=port, env=env, use_incoming_socket=False, raise_exceptions=True)
        data = json.loads(client.get_window_data(win=win, env=env))
    except Exception:
        return None
    return data or None


def shown_iteration(port: int, env: str) -> int:
    """The iteration of the visuals in the images pane (its title ends "iteration N)"), 0 for none."""
    window = shown(port, env, "images")
    found = re.search(r"iteration (\d+)\)$", window["title"]) if window else None
    return int(found.group(1)) if found else 0


def plotted_iterations(port: int, env: str) -> list[float]:
    window = shown(port, env, "losses")
    return list(window["content"]["data"][0]["x"]) if window else []


@pytest.mark.slow
def test_visdom_dying_and_returning_mid_run(visdom_server, tmp_path: Path) -> None:
    root, port, env = tmp_path / "data", find_free_port(), "fault_env"
    write_images(root / "trainA", 8, seed=1)
    write_images(root / "trainB", 8, seed=2, tint=(1.0, 0.4, 0.4))
    server = visdom_server(port)
    args = run_args(root, tmp_path / "ck", "live", "--max_iters", "100000", "--print_freq", "1")
    args += ["--display_id", "1", "--display_port", port, "--display_env", env, "--display_freq", "1"]
    process = start([sys.executable, "train.py", *args], tmp_path / "train")
    run_dir = tmp_path / "ck" / "live"
    try:
        wait_for(lambda: len(plotted_iterations(port, env)) >= 3, process, "plot in visdom")
        server.kill()  # the server dies
        server.wait()
        died_at = logged_iterations(run_dir)
        # training goes on without it
        wait_for(lambda: logged_iterations(run_dir) >= died_at + 15, process, "training during the outage")
        visdom_server(port)  # ... and comes back, empty
        back_at = logged_iterations(run_dir)
        wait_for(lambda: max(plotted_iterations(port, env), default=0) > back_at + 2, process, "plot after restart")
        wait_for(lambda: shown_iteration(port, env) > back_at, process, "images after restart")  # shown again
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        end_group(process)
    # the rebuilt plot has every point, those logged while the server was down included
    plotted = plotted_iterations(port, env)
    assert plotted[: back_at + 3] == list(range(1, back_at + 4))
    err = (tmp_path / "train.err").read_text()
    assert "Traceback" not in err, err[-3000:]
    visdom_lines = [line for line in err.splitlines() if line.startswith(("visdom", "WARNING: visdom"))]
    assert len(visdom_lines) == 2, visdom_lines  # one warning for the outage, one note when it is over
    assert visdom_lines[0].startswith(f"WARNING: visdom: no server at http://localhost:{port}")
    assert visdom_lines[1] == f"visdom: connected to http://localhost:{port} again; live display resumed (env '{env}')"
    assert load_checkpoint(run_dir / "latest.pth")["total_iters"] == logged_iterations(run_dir)


# 5. data loader workers killed mid-epoch -----------------------------------------------------------


@pytest.fixture(scope="module")
def worker_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object], Path]:
    """(dataset, options, an uninterrupted run's latest.pth): 24 images, 2 loader workers, 20 iterations."""
    base = tmp_path_factory.mktemp("workers")
    write_images(base / "data" / "trainA", 24, seed=1)
    write_images(base / "data" / "trainB", 24, seed=2, tint=(1.0, 0.4, 0.4))
    options = ["--num_threads", "2", "--save_latest_freq", "4", "--max_iters", "20", "--seed", "3"]
    result = script("train.py", *run_args(base / "data", base / "ck", "reference", *options))
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "data", options, base / "ck" / "reference" / "latest.pth"


def test_a_killed_loader_worker_is_replaced_at_the_exact_sample(worker_job, tmp_path: Path) -> None:
    root, options, reference = worker_job
    process = start([sys.executable, "train.py", *run_args(root, tmp_path, "killed", *options)], tmp_path / "train")
    try:
        wait_for((tmp_path / "killed" / "latest.pth").is_file, process, "first save")
        workers = children(process.pid)  # --num_threads 2: two workers (one on a one-core machine)
        assert len(workers) in (1, 2), workers
        os.kill(workers[0], signal.SIGKILL)
        assert process.wait(timeout=180) == 0, (tmp_path / "train.err").read_text()[-3000:]
    finally:
        end_group(process)
    err = (tmp_path / "train.err").read_text()
    assert "Traceback" not in err, err[-3000:]
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err[-3000:]
    prefix = f"train.py: warning: data loader worker (pid {workers[0]}) was killed by SIGKILL (out of memory?); "
    assert warnings[0].startswith(prefix + "restarting the data loader at iteration "), warnings[0]
    iteration = int(warnings[0][len(prefix) :].split()[6])
    assert 4 <= iteration < 20  # mid-epoch (24 samples)
    assert f"(epoch 1, sample {iteration})" in warnings[0]
    # the run went on exactly as the uninterrupted one
    assert_same_training_state(tmp_path / "killed" / "latest.pth", reference)


@pytest.mark.slow
def test_workers_killed_over_and_over_save_latest_stop_in_one_line_and_resume_exactly(
    worker_job, tmp_path: Path
) -> None:
    root, options, reference = worker_job
    args = run_args(root, tmp_path, "lost", *options)
    process = start([sys.executable, "train.py", *args], tmp_path / "train")
    killed: set[int] = set()

    def kill_every_worker() -> None:  # the OOM killer at its worst: every worker, as soon as it exists
        while process.poll() is None:
            for pid in children(process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)

    try:
        wait_for((tmp_path / "lost" / "latest.pth").is_file, process, "first save")
        killer = threading.Thread(target=kill_every_worker)
        killer.start()
        code = process.wait(timeout=180)
        killer.join()
    finally:
        end_group(process)
    err = (tmp_path / "train.err").read_text()
    assert code == 5, err[-3000:]
    line = error_line(err)
    saved = load_checkpoint(tmp_path / "lost" / "latest.pth")["total_iters"]
    assert re.match(
        r"train\.py: error: data loader workers? \(pids? [\d, ]+\) (was|were) killed by SIGKILL again", line
    )
    assert f" again right after the data loader was restarted at iteration {saved} (epoch 1, sample {saved}); " in line
    assert line.endswith(
        f"saved {tmp_path / 'lost' / 'latest.pth'} (iteration {saved}): resume with --continue_train (with fewer "
        "--num_threads if memory is short)"
    )
    assert 4 <= saved < 20 and len(killed) >= 2  # the first workers, then at least the restarted ones

    resumed = script("train.py", *args, "--continue_train")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"epoch 1, iteration {saved}" in resumed.stdout
    assert_same_training_state(tmp_path / "lost" / "latest.pth", reference)


# 6. one of two DDP ranks killed, no restarts ---------------------------------------------------------


def launcher_command(kind: str) -> list[object]:
    if kind == "torchrun":
        endpoint = f"127.0.0.1:{find_free_port()}"
        command = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d"]
        return [sys.executable, *command, "--rdzv_endpoint", endpoint, "train.py"]
    return [sys.executable, "train.py", "--nproc_per_node", "2"]  # train.py's own launcher


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("kind", ["torchrun", "train.py"])
def test_a_killed_rank_ends_the_job_cleanly_and_the_job_resumes(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_images(root / "trainA", 16, seed=1)
    write_images(root / "trainB", 16, seed=2, tint=(1.0, 0.4, 0.4))
    args = run_args(root, tmp_path / "ck", "ddp", "--save_latest_freq", "4", "--max_iters", "1000")
    latest = tmp_path / "ck" / "ddp" / "latest.pth"
    process = start([*launcher_command(kind), *args], tmp_path / "job")
    try:
        wait_for(latest.is_file, process, "first save", timeout=180)
        ranks = worker_pids(process.pid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        code = process.wait(timeout=120)  # no hang
        ended = time.monotonic() - killed
        survivor_left = (
            not Path(f"/proc/{ranks[0]}").exists() or "State:\tZ" in Path(f"/proc/{ranks[0]}/status").read_text()
        )
    finally:
        end_group(process)
    assert code != 0 and ended < 60 and survivor_left, (code, ended, survivor_left)
    err = (tmp_path / "job.err").read_text()
    # each of our processes says one line: no traceback of any rank (torchrun adds its own report)
    assert "[rank0]" not in err and "[rank1]" not in err and 'train.py", line' not in err, err[-4000:]
    ours = [line for line in err.splitlines() if line.startswith("train.py:")]
    assert ours[0].startswith("train.py: rank 0: stopped: lost another process of the job ("), err[-4000:]
    if kind == "train.py":  # its launcher adds the cause, and that is all the user reads
        assert ours[1:] == ["train.py: rank 1 of 2 was killed by SIGKILL; the other processes were stopped"]
        assert code == 128 + signal.SIGKILL and err.strip().splitlines() == ours
    else:
        assert len(ours) == 1 and "exitcode  : -9" in err  # torchrun's report names the killed rank

    saved = load_checkpoint(latest)["total_iters"]
    target = saved + 4
    resumed = subprocess.run(
        [*map(str, launcher_command(kind)), *map(str, args[:-1]), str(target), "--continue_train"],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {latest}: epoch " in resumed.stdout and f"iteration {saved}\n" in resumed.stdout
    assert load_checkpoint(latest)["total_iters"] == target
