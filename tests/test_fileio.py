"""Atomic writes (util.fileio): a file is whole or absent, fsync when asked, and test.py's result
images flushed once per run instead of once per image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import test as test_script
import train
from tests.conftest import REPO_ROOT, TINY, write_images
from util.fileio import WriteFailed, atomic_write, remove_partial_writes


@pytest.fixture
def counted_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of os.fsync and os.sync calls; the real calls still run."""
    counts = {"fsync": 0, "sync": 0}
    real_fsync, real_sync = os.fsync, os.sync

    def fsync(fd: int) -> None:
        counts["fsync"] += 1
        real_fsync(fd)

    def sync() -> None:
        counts["sync"] += 1
        real_sync()

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "sync", sync)
    return counts


@pytest.mark.parametrize("fsync", [True, False])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "out.bin"
    atomic_write(path, lambda f: f.write(b"old"), fsync=fsync)

    def half_then_fail(f) -> None:
        f.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteFailed, match=f"cannot write {path}: the disk is full") as failed:  # a one-line UserError
        atomic_write(path, half_then_fail, fsync=fsync)
    assert failed.value.disk_full
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # the temporary file is gone


def test_fsync_is_per_file_only_when_asked(tmp_path: Path, counted_syncs: dict[str, int]) -> None:
    atomic_write(tmp_path / "a", lambda f: f.write(b"a"))
    assert counted_syncs["fsync"] == 1
    atomic_write(tmp_path / "b", lambda f: f.write(b"b"), fsync=False)
    assert counted_syncs["fsync"] == 1
    assert (tmp_path / "b").read_bytes() == b"b"
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_test_py_flushes_its_result_images_once_not_per_image(
    tiny_dataset: Path, tmp_path: Path, counted_syncs: dict[str, int]
) -> None:
    write_images(tiny_dataset / "testA", 6, seed=7)  # 6 A + 2 B images, 3 result images each
    args = ["--dataroot", str(tiny_dataset), "--name", "run", "--checkpoints_dir", str(tmp_path / "ck")]
    assert train.main([*args, *TINY, "--max_iters", "1"]) == 0
    counted_syncs.update(fsync=0, sync=0)
    assert test_script.main([*args, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"]) == 0

    images = list((tmp_path / "res" / "run" / "test_latest" / "images").glob("*.png"))
    assert len(images) == 8 * 3
    assert counted_syncs["sync"] == 1
    # what is still fsynced on its own: the HTML page (and metrics.json when there are scores)
    assert counted_syncs["fsync"] <= 2


def test_unreadable_torch_files_get_a_one_line_reason(tmp_path: Path) -> None:
    """A text file makes torch.load say "list index out of range" or "invalid load key": the
    message says what the file is instead; a truncated torch file keeps torch's own first line."""
    import torch

    from util.errors import UserError
    from util.fileio import load_torch_file

    text = tmp_path / "passwd.pth"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(UserError) as info:
        load_torch_file(text, "checkpoint")
    assert str(info.value) == f"cannot read checkpoint {text}: not a file written by torch.save"
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=r"empty.pth: it is empty$"):
        load_torch_file(empty)
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.ones(3)}, whole)
    assert torch.equal(load_torch_file(whole)["w"], torch.ones(3))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:100])
    with pytest.raises(UserError) as info:
        load_torch_file(cut)
    message = str(info.value)
    assert message.startswith(f"cannot read {cut}: ") and "\n" not in message
    assert "not a file written by torch.save" not in message  # a torch file, cut short: torch's reason


# A process that SIGKILL stops inside atomic_write: it has written half a file and is writing on.
KILLED_WRITER = """
import sys, time
from util.fileio import atomic_write

def write(f):
    f.write(b"half a checkpoint")
    f.flush()
    print("writing", flush=True)
    time.sleep(120)

atomic_write(sys.argv[1], write)
"""


def test_a_write_killed_by_sigkill_leaves_a_partial_file_and_only_that_is_removed(tmp_path: Path) -> None:
    (tmp_path / "latest.pth").write_bytes(b"the previous checkpoint")
    keep = [".hidden", ".x.tmp", "a.tmp", ".latest.pth.tmp", "notes.txt"]  # not atomic_write's names
    for name in keep:
        (tmp_path / name).write_text("mine")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "latest.pth")], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline() == b"writing\n"
    proc.kill()  # SIGKILL: no clean-up can run
    proc.wait()
    proc.stdout.close()
    partial = sorted(set(os.listdir(tmp_path)) - {*keep, "latest.pth"})
    assert len(partial) == 1 and partial[0].startswith(".latest.pth.")  # what a killed save leaves
    assert (tmp_path / "latest.pth").read_bytes() == b"the previous checkpoint"

    removed = remove_partial_writes(tmp_path, tmp_path / "no_such_folder")
    assert [p.name for p in removed] == partial
    assert sorted(os.listdir(tmp_path)) == sorted([*keep, "latest.pth"])
