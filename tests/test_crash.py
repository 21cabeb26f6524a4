"""Crash test: SIGKILL a real ``train.py`` 20 times and ``test.py`` 3 times, at moments drawn from a
seeded RNG, and prove nothing is lost.

SIGKILL cannot be caught: it is what a pre-empted machine, the OOM killer or ``kill -9`` does, so
the code cannot save anything on the way out; only atomic writes and exact resume protect the run.
The whole process group is killed, the data-loading worker processes with it, as when a machine
goes away.

The moments come in four kinds, five kills each, in a shuffled order, each found from outside
the process without any hook in the product code:

- ``checkpoint``: while a checkpoint is being written. ``util.fileio.atomic_write`` writes to
  ``.<name>.<random>.tmp`` next to the checkpoint and renames it over the old file; the kill
  comes as soon as the k-th save of the attempt is seen (k random): its temporary file appearing
  in the run's folder (or, when two polls missed it, the checkpoint replaced). The checkpoints
  are a few MB (full state: Adam moments, image pools of 50) and fsynced, so the write lasts
  milliseconds; whether the kill landed before the rename is checked (the file still exists)
  and counted.
- ``worker``: as the k-th data-loading worker process appears (train.py re-creates its workers
  at every epoch's start, so they are loading their first batches then): a child that is a fork
  of train.py, once it has printed its ``dataset:`` line.
- ``iteration``: a random fraction of an iteration after the k-th logged iteration.
- ``startup``: a random time after the process started (imports, data, model, reading the
  checkpoint it resumes).

After each kill: ``latest.pth`` (once one was written) loads with ``load_checkpoint``
(``weights_only``) and never goes back in iterations, at most the one temporary file of the
killed write is left (the next run removes it: ``engine.run.Run.start``), and the next attempt
resumes it with ``--continue_train``. At the end the killed-and-resumed run's checkpoints are
bit-exact equal to an uninterrupted run's with the same seed and options, and so are its logged
losses.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from engine.checkpoint import load_checkpoint
from tests.conftest import REPO_ROOT, assert_same_state, write_images

pytestmark = pytest.mark.slow

KILLS_PER_KIND = 5
KINDS = ("checkpoint", "worker", "iteration", "startup")
SEED = 14  # the kill schedule's; the training's own seed is in TRAIN_OPTIONS

# 6 items per epoch, 24 epochs: 144 iterations, more than the 20 kills can get through (each kill
# loses what followed the last save, and every save is 3 iterations apart at most), so every
# attempt but the last is killed. One worker process (--num_threads 1), re-created each epoch.
TRAIN_OPTIONS = [
    *("--ngf", "8", "--ndf", "8", "--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32"),
    *("--num_threads", "1", "--display_id", "0", "--gpu_ids", "-1", "--seed", "5"),
    *("--n_epochs", "12", "--n_epochs_decay", "12", "--print_freq", "1"),
    *("--save_latest_freq", "3", "--save_epoch_freq", "5"),
]
PARTIAL = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # util.fileio.atomic_write's temporary files


def partial_writes(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if PARTIAL.fullmatch(p.name)} if folder.is_dir() else set()


class Process:
    """A child in a session of its own (so the group, workers included, can be killed); stdout
    lines are collected with the time they arrived."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.timed: list[tuple[float, str]] = []  # (arrival, line) of every line read so far
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def new_lines(self) -> list[tuple[float, str]]:
        got = []
        while True:
            try:
                got.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.timed += got
        return got

    @property
    def output(self) -> list[str]:
        return [line for _, line in self.timed]

    def children(self) -> set[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return set()
        return {int(pid) for pid in text.split()}

    def is_worker(self, pid: int) -> bool:
        """Whether child ``pid`` is a data-loading worker: a fork of this process that stays one
        (same command line a few milliseconds later), not a program it runs."""
        try:
            own = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes()
            for _ in range(2):
                if Path(f"/proc/{pid}/cmdline").read_bytes() != own:
                    return False
                time.sleep(0.003)
        except OSError:
            return False
        return True

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        self.new_lines()

    def finish(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        self.new_lines()
        return code


def is_iteration_line(line: str) -> bool:
    return line.startswith("(epoch:")


@dataclass
class Kill:
    kind: str
    target: int  # the k of "the k-th temporary file / worker / iteration"
    delay: float  # seconds: after the start (startup), after the k-th iteration (iteration)
    happened: str = ""  # what the kill hit, for the report
    mid_write: bool = False  # checkpoint kills: the temporary file was still there after the kill
    latest_iters: int | None = None


def schedule(rng: random.Random, startup_s: float, iteration_s: float) -> list[Kill]:
    kinds = [kind for kind in KINDS for _ in range(KILLS_PER_KIND)]
    rng.shuffle(kinds)
    kills = []
    for kind in kinds:
        if kind == "checkpoint":
            kills.append(Kill(kind, rng.randint(1, 3), 0.0))
        elif kind == "worker":
            kills.append(Kill(kind, rng.randint(1, 2), 0.0))
        elif kind == "iteration":
            kills.append(Kill(kind, rng.randint(1, 8), rng.uniform(0, iteration_s)))
        else:
            kills.append(Kill(kind, 0, rng.uniform(0, startup_s)))
    return kills


def checkpoint_files(run_dir: Path) -> dict[str, int]:
    """{name: inode} of the run's ``*.pth`` files: a save replaces one with a new inode."""
    return {p.name: p.stat().st_ino for p in run_dir.glob("*.pth")} if run_dir.is_dir() else {}


def kill_at(process: Process, kill: Kill, run_dir: Path, before: set[str]) -> bool:
    """Watch ``process`` until ``kill``'s moment, then SIGKILL its group. False if the process
    ended first."""
    saves: list[str] = []  # this attempt's saves, by temporary file (or by the file, when the poll missed it)
    writing: dict[str, list[str]] = {}  # checkpoint name -> temporary files seen, not yet renamed over it
    files = checkpoint_files(run_dir)
    seen_workers: list[int] = []
    iterations = 0
    deadline = process.started + kill.delay if kill.kind == "startup" else None
    while process.proc.poll() is None:
        now = time.monotonic()
        for arrived, line in process.new_lines():
            if is_iteration_line(line):
                iterations += 1
                if kill.kind == "iteration" and iterations == kill.target:
                    deadline = arrived + kill.delay
        if kill.kind == "checkpoint":
            for name in sorted(partial_writes(run_dir) - before - set(saves)):
                saves.append(name)
                writing.setdefault(name[1:].rsplit(".", 2)[0], []).append(name)  # .latest.pth.x1y2z3w4.tmp
            # a save whose temporary file came and went between two polls (a quiet machine
            # writes 5 MB in milliseconds) still counts, so every attempt ends after a few saves
            now_files = checkpoint_files(run_dir)
            for name, inode in now_files.items():
                if files.get(name) != inode:
                    if writing.get(name):
                        writing[name].pop(0)
                    else:
                        saves.append(f"{name} (its temporary file unseen)")
            files = now_files
            if len(saves) >= kill.target:
                process.kill()
                name = saves[kill.target - 1]
                kill.mid_write = PARTIAL.fullmatch(name) is not None and (run_dir / name).exists()
                kill.happened = f"{'during' if kill.mid_write else 'just after'} the write of {name}"
                return True
        elif kill.kind == "worker" and any(line.startswith("dataset:") for line in process.output):
            # only once the run has described its data: at import time ctypes runs ldconfig in a
            # child, which under load can look like a fork of python for a while
            for pid in sorted(process.children()):
                if pid not in seen_workers and process.is_worker(pid):
                    seen_workers.append(pid)
            if len(seen_workers) >= kill.target:
                process.kill()
                kill.happened = f"data worker #{kill.target} of this process (pid {seen_workers[-1]}) starting"
                return True
        elif deadline is not None and now >= deadline:
            process.kill()
            kill.happened = f"{now - process.started:.2f} s after start, after {iterations} logged iteration(s)"
            return True
        time.sleep(0.0005)
    return False


def train_args(root: Path, checkpoints: Path, name: str) -> list[str]:
    return ["train.py", "--dataroot", str(root), "--name", name, "--checkpoints_dir", str(checkpoints), *TRAIN_OPTIONS]


def logged_losses(run_dir: Path) -> dict[int, dict]:
    """The losses of every logged iteration; after a resume the iterations logged again replace
    the ones logged before the crash (as readers of loss_log.jsonl are told to do)."""
    losses = {}
    for line in (run_dir / "loss_log.jsonl").read_text().splitlines():
        record = json.loads(line)  # every line is whole JSON, even after 20 kills
        if record["kind"] == "train":
            losses[record["total_iters"]] = record["losses"]
    return losses


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_images(root / "trainA", 6, seed=1)
    write_images(root / "trainB", 4, seed=2, tint=(1.0, 0.4, 0.4))
    write_images(root / "testA", 12, seed=3)
    write_images(root / "testB", 6, seed=4, tint=(1.0, 0.4, 0.4))
    return root


def test_twenty_sigkills_lose_nothing_and_the_resumed_run_is_bit_exact(dataset: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "ck"
    # The uninterrupted run; its timing scales the kill moments of the kinds that are times.
    full = Process(train_args(dataset, checkpoints, "full"))
    assert full.finish() == 0, "".join(full.output[-20:])
    stamps = [t for t, line in full.timed if is_iteration_line(line)]
    startup_s = stamps[0] - full.started
    iteration_s = (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    rng = random.Random(SEED)
    kills = schedule(rng, startup_s, iteration_s)
    run_dir = checkpoints / "killed"
    done: list[Kill] = []
    last_iters = -1
    for kill in kills:
        resume = ["--continue_train"] if (run_dir / "latest.pth").is_file() else []
        process = Process([*train_args(dataset, checkpoints, "killed"), *resume])
        assert kill_at(process, kill, run_dir, partial_writes(run_dir)), (
            f"kill {len(done) + 1} ({kill.kind}) came too late: the run ended first; kills so far: "
            + "; ".join(f"{k.kind} {k.happened} (latest {k.latest_iters})" for k in done)
            + "\n"
            + "".join(process.output[-5:])
        )
        assert "Traceback" not in "".join(process.output), "".join(process.output)
        left = partial_writes(run_dir)
        assert len(left) <= 1, f"temporary files pile up after kill {len(done) + 1}: {sorted(left)}"
        if (run_dir / "latest.pth").is_file():
            state = load_checkpoint(run_dir / "latest.pth")  # weights_only=True
            assert state["total_iters"] >= last_iters, "latest.pth went back: a save was lost"
            last_iters = kill.latest_iters = state["total_iters"]
        else:
            assert last_iters == -1, "latest.pth disappeared"
        done.append(kill)

    # The last attempt runs to the end.
    last = Process([*train_args(dataset, checkpoints, "killed"), "--continue_train"])
    assert last.finish() == 0, "".join(last.output[-20:])
    assert partial_writes(run_dir) == set()
    report(done, full_iters=load_checkpoint(checkpoints / "full" / "latest.pth")["total_iters"])

    counts = Counter(kill.kind for kill in done)
    assert counts == dict.fromkeys(KINDS, KILLS_PER_KIND)
    assert any(kill.mid_write for kill in done), "no kill landed inside a checkpoint write"
    assert sum(kill.latest_iters is None for kill in done) < len(done) // 2, "too few kills after a save"

    # Bit-exact: every checkpoint of the killed run equals the uninterrupted run's.
    names = sorted(p.name for p in (checkpoints / "full").glob("*.pth"))
    assert (
        names
        == sorted(p.name for p in run_dir.glob("*.pth"))
        == ["10.pth", "15.pth", "20.pth", "24.pth", "5.pth"] + ["latest.pth"]
    )
    for name in names:
        a, b = load_checkpoint(checkpoints / "full" / name), load_checkpoint(run_dir / name)
        a.pop("options"), b.pop("options")  # the killed run's say continue_train: true
        assert_same_state(a, b, name)
    assert logged_losses(run_dir) == logged_losses(checkpoints / "full")


def report(kills: list[Kill], full_iters: int) -> None:
    print(f"\n{len(kills)} SIGKILLs of train.py ({full_iters} iterations in all):")
    for i, kill in enumerate(kills, 1):
        where = f"latest at iteration {kill.latest_iters}" if kill.latest_iters is not None else "no latest yet"
        print(f"  {i:2d}. {kill.kind:10s} {kill.happened}; {where}")
    mid = sum(kill.mid_write for kill in kills)
    print(f"  kills inside a checkpoint write (its temporary file still there): {mid}")


# ---- test.py -----------------------------------------------------------------------------------

TEST_KILLS = 3


def entries(folder: Path) -> set[tuple[str, int]]:
    """(name, inode) of each entry: a file replaced by ``os.replace`` is a new entry."""
    try:
        return {(entry.name, entry.inode()) for entry in os.scandir(folder)}
    except FileNotFoundError:
        return set()


def test_sigkill_while_test_py_writes_results_then_a_rerun_completes_them_whole(dataset: Path, tmp_path: Path) -> None:
    """test.py killed while it writes its result images (as the k-th file of this attempt appears
    in ``images/``, k random): every image already there is whole (and the one of the uninterrupted run); a rerun
    completes the folder, leaves no temporary file and its page shows every image."""
    import train

    checkpoints = tmp_path / "ck"
    quick = ["--max_iters", "2", "--num_threads", "0", "--print_freq", "100"]
    assert train.main([*train_args(dataset, checkpoints, "run")[1:], *quick]) == 0
    args = ["test.py", "--dataroot", str(dataset), "--name", "run", "--checkpoints_dir", str(checkpoints)]
    args += ["--gpu_ids", "-1", "--num_threads", "1"]  # with a data-loading worker
    whole = Process([*args, "--results_dir", str(tmp_path / "whole")])
    assert whole.finish() == 0, "".join(whole.output[-20:])
    expected = tmp_path / "whole" / "run" / "test_latest" / "images"
    names = sorted(p.name for p in expected.iterdir())
    assert len(names) == (12 + 6) * 3  # real, fake, rec of each test image

    out = tmp_path / "killed" / "run" / "test_latest"
    rng = random.Random(SEED + 1)
    hits = []
    for target in rng.sample(range(1, len(names) + 1), TEST_KILLS):
        before = entries(out / "images")  # what earlier attempts wrote: their files are replaced, not counted
        process = Process([*args, "--results_dir", str(tmp_path / "killed")])
        while process.proc.poll() is None:
            if len(entries(out / "images") - before) >= target:
                process.kill()
                break
            time.sleep(0.0002)
        else:
            pytest.fail(f"test.py ended before its {target}-th result file:\n" + "".join(process.output[-20:]))
        left = partial_writes(out / "images")
        assert len(left) <= 1, sorted(left)
        finished = sorted(p.name for p in (out / "images").iterdir() if not p.name.startswith("."))
        for name in finished:  # whole files only, each the uninterrupted run's
            with Image.open(out / "images" / name) as img:
                img.load()
            assert (out / "images" / name).read_bytes() == (expected / name).read_bytes(), name
        hits.append(f"at file {target}: {len(finished)} whole image(s), {len(left)} partial write left")

    rerun = Process([*args, "--results_dir", str(tmp_path / "killed")])
    assert rerun.finish() == 0, "".join(rerun.output[-20:])
    assert sorted(p.name for p in (out / "images").iterdir()) == names  # no temporary file left
    for name in names:
        assert (out / "images" / name).read_bytes() == (expected / name).read_bytes(), name
    shown = re.findall(r'<img[^>]*src="images/([^"]+)"', (out / "index.html").read_text())
    assert sorted(shown) == names
    print(f"\n{len(hits)} SIGKILLs of test.py: " + "; ".join(hits))
