"""scripts/soak.py, the soak benchmark (issue 14, part 5): its growth verdicts on synthetic series
with known slopes, its /proc readings against processes and folders built with known numbers of
files, threads, workers and bytes, and a 2-epoch run whose table agrees with what it asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.soak import (
    main,
    sample_disk,
    sample_process,
    slope,
    verdict,
    verdicts,
    warmup_epochs,
)

MiB = 1 << 20


# ---- growth on synthetic series ------------------------------------------------------------------


def test_slope_is_the_least_squares_slope() -> None:
    assert slope([5.0, 7.0, 9.0, 11.0]) == pytest.approx(2.0)
    assert slope([3.0] * 10) == 0.0 and slope([4.0]) == 0.0 and slope([]) == 0.0
    # noise around a line: the fit recovers the line's slope (alternating +-1 cancels out)
    assert slope([100 + 0.5 * i + (1 if i % 2 else -1) for i in range(40)]) == pytest.approx(0.5, abs=0.01)


def test_warmup_is_a_fifth_at_least_two() -> None:
    assert [warmup_epochs(n) for n in (2, 3, 5, 10, 40, 60)] == [0, 1, 2, 2, 8, 12]


def test_verdict_tells_a_leak_from_noise_and_warmup() -> None:
    flat_noisy = [700 + (3 if i % 3 == 0 else -2) for i in range(40)]
    assert not verdict("rss", flat_noisy, 8.0).grows
    warmup_then_flat = [500, 650, *([700.0] * 38)]  # caches filling in the first epochs
    v = verdict("rss", warmup_then_flat, 8.0)
    assert not v.grows and v.slope_per_epoch == 0.0
    leak = [700 + 0.5 * i for i in range(40)]  # 0.5 MiB per epoch: 16 MiB over the 32 epochs of the window
    v = verdict("rss", leak, 8.0)
    assert v.grows and v.slope_per_epoch == pytest.approx(0.5) and v.over_window == pytest.approx(15.5)
    fd_leak = [10 + i // 10 for i in range(40)]  # one descriptor lost every 10 epochs
    assert verdict("fds", fd_leak, 0.5).grows


def test_verdicts_checks_every_column_with_its_tolerance() -> None:
    rows = [
        {"rss_mib": 700.0, "rss_peak_mib": 710.0, "workers_rss_peak_mib": 0.0, "fds": 10, "threads": 2,
         "other_mib": 0.0}
        for _ in range(20)
    ]  # fmt: skip
    for i, row in enumerate(rows):
        row["threads"] = 2 + i  # a thread per epoch
    result = {v.column: v for v in verdicts(rows)}
    assert set(result) == {"rss_mib", "rss_peak_mib", "workers_rss_peak_mib", "fds", "threads", "other_mib"}
    assert [c for c, v in result.items() if v.grows] == ["threads"]
    assert result["rss_mib"].tolerance == pytest.approx(14.0)  # 2 % of 700 MiB beats the 8 MiB floor
    assert result["workers_rss_peak_mib"].tolerance == 8.0


# ---- /proc readings against known truth ----------------------------------------------------------

CHILD = r"""
import os, subprocess, sys, threading
files = [open(os.devnull) for _ in range(40)]
gate = threading.Event()
threads = [threading.Thread(target=gate.wait) for _ in range(3)]
for t in threads:
    t.start()
sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
print("ready", flush=True)
sys.stdin.readline()
block = bytearray(200 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page: resident
for f in files[:25]:
    f.close()
print("changed", flush=True)
sys.stdin.readline()
gate.set()
for s in sleepers:
    s.kill()
"""


def test_process_sample_counts_what_the_process_holds() -> None:
    """A child with 40 extra open files, 3 extra threads and 2 child processes; then it touches
    200 MiB and closes 25 files: the samples move by exactly those amounts."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        before = sample_process(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "changed\n"
        after = sample_process(proc.pid)
        proc.stdin.write("end\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert before.threads == 4 and before.children == 2 and before.children_rss_mib > 0  # main + 3; 2 sleeps
    assert before.fds >= 43 and before.fds - after.fds == 25  # stdin/out/err + 40 files; 25 closed
    assert 200 <= after.rss_mib - before.rss_mib < 215
    assert after.threads == 4 and after.children == 2


def test_disk_sample_sorts_the_run_folder_by_kind(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "web" / "images").mkdir(parents=True)
    sizes = {"latest.pth": 3 * MiB, "5.pth": MiB, "web/images/a.png": MiB // 2, "web/index.html": 8192}
    sizes |= {"loss_log.jsonl": 4096, "opt.yaml": 4096, "notes.bin": 2 * MiB, ".latest.pth.abc.tmp": 4096}
    for name, size in sizes.items():
        (run / name).write_bytes(os.urandom(size))  # random: no file system compresses or dedups it
    (run / ".eval_x1").mkdir()
    disk = sample_disk(run)
    assert disk.files == len(sizes)
    assert disk.checkpoints_mib == pytest.approx(4.0, abs=0.02)
    assert disk.web_mib == pytest.approx(0.5 + 8192 / MiB, abs=0.02)
    assert disk.logs_mib == pytest.approx(8192 / MiB, abs=0.02)
    assert disk.other_mib == pytest.approx(2 + 4096 / MiB, abs=0.02)
    assert disk.temporary == [".eval_x1", ".latest.pth.abc.tmp"]
    du = subprocess.run(["du", "-s", "-B1", str(run)], capture_output=True, text=True, check=True)
    folders = sum(p.lstat().st_blocks * 512 for p in [run, *run.rglob("*")] if p.is_dir())
    assert disk.total_mib * MiB == int(du.stdout.split()[0]) - folders  # what du counts, less the folders


# ---- a short real run ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_epoch_soak_reports_what_the_run_did(tmp_path: Path, capsys) -> None:
    """2 epochs with 1 loader worker: one row per epoch, the one worker seen in each, the final disk
    figures equal to the run folder's, 2 identical epoch checkpoints and no temporary files."""
    start = time.monotonic()
    status = main(["--epochs", "2", "--images", "4", "--workers", "1", "--out", str(tmp_path), "--json",
                   str(tmp_path / "soak.json"), "--quiet"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "soak.json").read_text())
    rows = data["rows"]
    assert [r["epoch"] for r in rows] == [1, 2] and data["status"] == 0
    assert all(r["workers_peak"] == 1 for r in rows)  # --num_threads 1: one worker process per epoch
    assert all(r["workers_rss_peak_mib"] > 10 for r in rows)
    assert all(r["rss_peak_mib"] >= r["rss_mib"] > 100 for r in rows)  # torch alone is over 100 MiB
    assert all(3 <= r["fds"] <= r["fds_end"] and 1 <= r["threads"] <= r["threads_end"] for r in rows)  # floors
    assert all(0 < r["seconds"] < time.monotonic() - start for r in rows)
    run = tmp_path / "checkpoints" / "soak"
    final = data["final_disk"]
    pth = sorted(run.glob("*.pth"))
    assert [p.name for p in pth] == ["1.pth", "2.pth", "latest.pth"]
    assert final["checkpoints_mib"] * MiB == sum(p.stat().st_blocks * 512 for p in pth)
    assert final["files"] == sum(1 for p in run.rglob("*") if p.is_file()) and final["temporary"] == []
    assert rows[1]["checkpoints_mib"] > rows[0]["checkpoints_mib"]  # epoch 1's checkpoint was on disk at row 2
    sizes = {p.stat().st_size for p in pth if p.stem.isdigit()}
    assert f"epoch checkpoints: 2, sizes {sizes.pop():,} bytes" in out and not sizes
    assert "temporary files left in the run folder: 0" in out
    table = [line.split() for line in out.splitlines()[:3]]
    assert table[0][:3] == ["epoch", "s", "RSS"] and [line[0] for line in table[1:]] == ["1", "2"]
    # the JSON carries the verdicts printed
    assert {v["column"] for v in data["verdicts"]} >= {"rss_mib", "fds", "threads", "other_mib"}
