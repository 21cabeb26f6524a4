"""``--use_wandb`` against the real wandb package, offline (no account, no network): a tiny
train.py run with nobody logged in, its ``--continue_train``, then test.py, each a process of its
own (wandb reads its environment once per process) with HOME and every wandb folder in tmp_path;
and (marked distributed) a two-process run that tracks once, from rank 0.

The runs are read back with ``wandb leet inspect --json``, the installed wandb's reader of a
run's ``.wandb`` record log (wandb 0.31 has no Python reader of it any more: the old
``wandb.sdk.internal.datastore`` is gone; the records are read by wandb-core)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import REPO_ROOT, TINY, write_images

pytest.importorskip("wandb")

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
SYNC_HINT = "wandb: not logged in"


def wandb_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials, no mode, and every folder wandb writes outside a run in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    home = tmp_path / "home"
    env.update(
        HOME=str(home),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_DIR=str(home / "wandb_dir"),
        WANDB_SILENT="true",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def run_script(script: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def inspect(run_folder: Path, env: dict[str, str]) -> list[dict]:
    """The records of the run's ``run-<id>.wandb`` log, as wandb's own reader prints them."""
    (log,) = run_folder.glob("run-*.wandb")
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def history(records: list[dict]) -> dict[int, dict]:
    """step -> the logged row (values of one step merged)."""
    rows: dict[int, dict] = {}
    for r in records:
        if r["type"] == "history":
            rows.setdefault(r["history"]["step"]["num"], {}).update(r["history"]["item"])
    return rows


def media_pixels(run_folder: Path, row: dict, key: str) -> np.ndarray:
    """The pixels of an image logged under ``key``, from the run's media folder (its hash checked)."""
    assert row[f"{key}._type"] == "image-file", key
    path = run_folder / "files" / row[f"{key}.path"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row[f"{key}.sha256"]
    return np.asarray(Image.open(path).convert("RGB"))


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.slow
def test_offline_run_resume_and_test_read_back(tiny_dataset: Path, tmp_path: Path) -> None:
    write_images(tiny_dataset / "testA_gt", 3, seed=7)  # ground truth: --eval_freq and test.py score it
    write_images(tiny_dataset / "testB_gt", 2, seed=8)
    ck, cwd = tmp_path / "ck", tmp_path / "cwd"
    args = ["--dataroot", str(tiny_dataset), "--name", "wb", "--checkpoints_dir", str(ck), *TINY]
    args += ["--n_epochs", "2", "--n_epochs_decay", "1", "--seed", "5", "--display_freq", "2"]
    args += ["--update_html_freq", "2", "--wandb_project_name", "trackers-test", "--eval_freq", "1", "--metrics", "l1"]
    run_dir = ck / "wb"

    # 1. WANDB_MODE unset, no API key: the run goes offline and says once how to upload it later.
    first = run_script("train.py", [*args, "--use_wandb", "--max_iters", "4"], wandb_env(tmp_path), cwd)
    hint = [line for line in first.stderr.splitlines() if SYNC_HINT in line]
    assert len(hint) == 1 and "wandb sync " + str(run_dir / "wandb" / "offline-run-") in hint[0], first.stderr
    run_id = json.loads((run_dir / "wandb_run.json").read_text())["id"]

    # 2. --continue_train (the run's opt.yaml keeps --use_wandb): the same W&B run goes on;
    # WANDB_MODE=offline is the user's choice, so no hint this time.
    second = run_script("train.py", [*args, "--continue_train"], wandb_env(tmp_path, WANDB_MODE="offline"), cwd)
    assert SYNC_HINT not in second.stderr
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith("-" + run_id) for f in folders)
    assert json.loads((run_dir / "wandb_run.json").read_text())["id"] == run_id

    env = wandb_env(tmp_path)
    parts = [inspect(folder, env) for folder in folders]
    rows = [history(records) for records in parts]
    assert sorted(rows[0]) == [2, 3, 4] and sorted(rows[1]) == [6, 8, 9]  # the steps go on, never back

    # every loss_log.jsonl record is a row at its total_iters, with the same values (doubles, exactly)
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r["kind"] == "train"]
    merged = {**rows[0], **rows[1]}
    assert [r["total_iters"] for r in records] == [2, 4, 6, 8]
    for r in records:
        row = merged[r["total_iters"]]
        assert {k[5:]: v for k, v in row.items() if k.startswith("loss/")} == r["losses"]
        assert (row["lr"], row["time/compute_per_iter"], row["time/data_per_iter"]) == (
            r["lr"],
            r["time_per_iter"],
            r["data_time"],
        )
        # the visuals of the step, the very pixels of the HTML page's file of the same step
        folder = folders[0] if r["total_iters"] <= 4 else folders[1]
        for label in LABELS:
            page = run_dir / "web" / "images" / f"epoch{r['epoch']:03d}_iter{r['total_iters']:06d}_{label}.png"
            assert np.array_equal(media_pixels(folder, row, f"visuals/{label}"), png(page)), (label, r)

    # the --eval_freq metrics at the iteration of each epoch's end, as in loss_log.jsonl
    evaluations = [r for r in map(json.loads, lines) if r["kind"] == "metrics"]
    assert [r["total_iters"] for r in evaluations] == [3, 6, 9]
    for r in evaluations:
        row = merged[r["total_iters"]]
        assert {k[8:]: v for k, v in row.items() if k.startswith("metrics/")} == r["metrics"] != {}
        assert row["epoch"] == r["epoch"]

    # the resolved options are the config, the run is named after --name, in --wandb_project_name
    saved = yaml.safe_load((run_dir / "opt.yaml").read_text())
    saved = {k: "Infinity" if v == float("inf") else v for k, v in saved.items()}  # W&B's JSON has no inf
    for records_of_run in parts:
        (run,) = [r["run"] for r in records_of_run if r["type"] == "run"]
        assert (run["run_id"], run["display_name"], run["project"]) == (run_id, "wb", "trackers-test")
    config = {}
    for r in parts[1]:
        if r["type"] in ("run", "config"):
            config.update(r[r["type"]].get("config", r[r["type"]]).get("update", {}))
    config.pop("_wandb", None)
    assert config == saved  # the resumed run's options: continue_train true
    assert config["continue_train"] is True and config["use_wandb"] is True
    assert not any(cwd.iterdir())  # nothing in the working directory

    # 3. test.py --use_wandb: a run of its own, a step per translated image, then the scores
    res = tmp_path / "res"
    test_args = ["--dataroot", str(tiny_dataset), "--name", "wb", "--checkpoints_dir", str(ck)]
    run_script("test.py", [*test_args, "--results_dir", str(res), "--gpu_ids", "-1", "--use_wandb"], env, cwd)
    (folder,) = (res / "wb" / "wandb").glob("offline-run-*")
    records = inspect(folder, env)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["run_id"] != run_id and run["display_name"] == "wb"
    steps = history(records)
    out = res / "wb" / "test_latest"
    image_rows = [steps[s] for s in sorted(steps)[:-1]]
    inputs = [("A", f"{i:04d}") for i in range(3)] + [("B", f"{i:04d}") for i in range(2)]
    assert len(image_rows) == len(inputs)
    for (side, stem), row in zip(inputs, image_rows, strict=True):
        labels = sorted(k.split(".")[0][len("results/") :] for k in row if k.endswith("._type"))
        expected = ["fake_B", "gt_B", "real_A", "rec_A"] if side == "A" else ["fake_A", "gt_A", "real_B", "rec_B"]
        assert labels == expected, (side, stem)
        for label in labels:
            assert np.array_equal(
                media_pixels(folder, row, f"results/{label}"), png(out / "images" / f"{stem}_{label}.png")
            )
    scores = steps[max(steps)]
    report = json.loads((out / "metrics.json").read_text())
    assert scores["checkpoint"] == "latest" and scores["total_iters"] == 9
    for side, labels in (("A", ("fake_B", "real_A")), ("B", ("fake_A", "real_B"))):
        for label in labels:
            for key in ("l1", "psnr", "ssim"):
                assert scores[f"truth/{label}_{key}"] == report[side][label][key]


@pytest.mark.distributed
def test_two_processes_track_once_from_rank_0(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    ck = tmp_path / "ck"
    args = ["--dataroot", str(tiny_dataset), "--name", "two", "--checkpoints_dir", str(ck), *TINY]
    args += ["--nproc_per_node", "2", "--n_epochs", "2", "--n_epochs_decay", "0", "--print_freq", "1"]
    done = run_script("train.py", [*args, "--use_wandb", "--use_tensorboard"], wandb_env(tmp_path), tmp_path / "cwd")
    assert sum(SYNC_HINT in line for line in done.stderr.splitlines()) == 1
    run_dir = ck / "two"
    (folder,) = (run_dir / "wandb").glob("offline-run-*")  # one W&B run, not one per process
    (events_file,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    events = event_accumulator.EventAccumulator(str(events_file))
    events.Reload()
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines()
    steps = [r["total_iters"] for r in map(json.loads, lines) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("loss/G_A")] == steps
    assert sorted(history(inspect(folder, wandb_env(tmp_path)))) == steps


def test_wandb_mode_online_without_a_login_is_one_line_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    # WANDB_MODE is the user's to set: online is not turned offline, and wandb's refusal is one line
    ck = tmp_path / "ck"
    args = ["--dataroot", str(tiny_dataset), "--name", "online", "--checkpoints_dir", str(ck), *TINY]
    env = wandb_env(tmp_path, WANDB_MODE="online")
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), *args, "--use_wandb", "--use_tensorboard"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("train.py: error: --use_wandb: wandb could not start a run: No API key configured.")
    )
    assert not list((ck / "online").glob("*.pth"))  # stopped before training: nothing saved
    assert not (ck / "online" / "wandb").exists()
