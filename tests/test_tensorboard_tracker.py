"""``--use_tensorboard`` against the real tensorboard package: a tiny train.py run, then a
``--continue_train`` of it, read back with TensorBoard's own EventAccumulator (what the
TensorBoard UI reads); what a restart does to earlier points; the missing-package errors; no
tracker run on ranks other than 0."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test as test_script
import train
from monitor import LogRecord, Visualizer
from options import parse_options
from tests.conftest import TINY, write_images

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

from monitor.tensorboard_backend import TensorBoardBackend  # noqa: E402

LABELS = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]


def read_events(logdir: Path) -> event_accumulator.EventAccumulator:
    """Every event of the folder, nothing sampled away (the UI keeps 1000 scalars, 4 images per tag)."""
    sizes = {event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    events = event_accumulator.EventAccumulator(str(logdir), size_guidance=sizes)
    events.Reload()
    return events


def scalars(events: event_accumulator.EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def train_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def f32(value: float) -> float:
    return float(np.float32(value))  # TensorBoard stores scalars as float32


def test_a_run_and_its_resume_read_back_as_the_loss_log(tiny_dataset: Path, tmp_path: Path) -> None:
    # 3 iterations per epoch, 9 in all; the first run stops at 4 (saving latest), the resume goes on.
    # --update_html_freq 2: the HTML page keeps the image of every display, to compare with.
    args = ["--dataroot", str(tiny_dataset), "--name", "tb", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    args += ["--n_epochs", "2", "--n_epochs_decay", "1", "--seed", "2", "--display_freq", "2"]
    args += ["--update_html_freq", "2", "--use_tensorboard", "--eval_freq", "1", "--metrics", "l1,psnr"]
    write_images(tiny_dataset / "testA_gt", 3, seed=7)  # ground truth: l1 and psnr at every epoch's end
    write_images(tiny_dataset / "testB_gt", 2, seed=8)
    assert train.main([*args, "--max_iters", "4"]) == 0
    run_dir = tmp_path / "ck" / "tb"
    logdir = run_dir / "tensorboard"
    assert [(s, f32(v)) for s, v in scalars(read_events(logdir), "loss/G_A")] == [
        (r["total_iters"], f32(r["losses"]["G_A"])) for r in train_records(run_dir)
    ]
    assert train.main([*args, "--continue_train"]) == 0
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2  # the resume appended a file of its own

    events = read_events(logdir)
    records = train_records(run_dir)
    assert [r["total_iters"] for r in records] == [2, 4, 6, 8]  # both runs, the steps going on
    expected = {
        f"loss/{name}": [(r["total_iters"], f32(r["losses"][name])) for r in records] for name in records[0]["losses"]
    }
    expected["lr"] = [(r["total_iters"], f32(r["lr"])) for r in records]
    expected["time/compute_per_iter"] = [(r["total_iters"], f32(r["time_per_iter"])) for r in records]
    expected["time/data_per_iter"] = [(r["total_iters"], f32(r["data_time"])) for r in records]
    evaluations = [
        r for r in map(json.loads, (run_dir / "loss_log.jsonl").read_text().splitlines()) if r["kind"] == "metrics"
    ]
    assert [r["total_iters"] for r in evaluations] == [3, 6, 9]  # each epoch's end, the resume's included
    for key in evaluations[0]["metrics"]:  # l1_AtoB, l1_BtoA, psnr_AtoB, psnr_BtoA
        expected[f"metrics/{key}"] = [(r["total_iters"], f32(r["metrics"][key])) for r in evaluations]
    assert len(expected) == 11 + 4
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        assert scalars(events, tag) == points, tag
    assert [e.wall_time for e in events.Scalars("lr")] == pytest.approx([r["wall_time"] for r in records])

    # each visual at every --display_freq step, the same pixels as the HTML page's file of that step
    assert sorted(events.Tags()["images"]) == sorted(f"visuals/{label}" for label in LABELS)
    for label in LABELS:
        shown = events.Images(f"visuals/{label}")
        assert [e.step for e in shown] == [2, 4, 6, 8], label
        for e in shown:
            epoch = 1 + (e.step - 1) // 3
            page_file = run_dir / "web" / "images" / f"epoch{epoch:03d}_iter{e.step:06d}_{label}.png"
            pixels = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))
            assert np.array_equal(pixels, np.asarray(Image.open(page_file).convert("RGB"))), (label, e.step)

    # the options of each run as text, at the step it started at
    texts = events.Tensors("options/text_summary")
    assert [t.step for t in texts] == [0, 4]
    first, resumed = (t.tensor_proto.string_val[0].decode() for t in texts)
    for text, resuming in ((first, False), (resumed, True)):
        assert re.search(r"^ +use_tensorboard: True ", text, re.M)  # the options table, as a code block
        assert re.search(rf"^ +continue_train: {resuming} ", text, re.M)


def record(step: int, value: float) -> LogRecord:
    return LogRecord(1, step, step, {"G_A": value}, 2e-4, 0.1, 0.01, wall_time=1000.0 + step)


def test_a_restart_supersedes_later_points_and_a_fresh_run_starts_clean(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    crashed = TensorBoardBackend(logdir)
    for step in (2, 4, 6):  # a run that logged 6 but whose checkpoint is at 4
        crashed.log(record(step, float(step)))
    crashed.close()
    resumed = TensorBoardBackend(logdir, start_step=4, resume=True)
    for step in (6, 8):
        resumed.log(record(step, 10.0 + step))
    resumed.close()
    assert scalars(read_events(logdir), "loss/G_A") == [(2, 2.0), (4, 4.0), (6, 16.0), (8, 18.0)]
    fresh = TensorBoardBackend(logdir)  # a new run of the same name: nothing earlier shows, nothing deleted
    fresh.log(record(2, 7.0))
    fresh.close()
    assert scalars(read_events(logdir), "loss/G_A") == [(2, 7.0)]
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 3


def test_tensorboard_dir_holds_runs_by_name_and_other_ranks_start_no_tracker(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    common = ["--dataroot", str(tiny_dataset), "--checkpoints_dir", str(tmp_path / "ck"), "--name", "named", *TINY]
    opt = parse_options([*common, "--use_tensorboard", "--tensorboard_dir", str(tmp_path / "shared")])
    run_dir = tmp_path / "ck" / "named"
    visualizer = Visualizer.for_training(opt, run_dir, resume=False)
    visualizer.log(record(2, 1.5))
    visualizer.close()
    assert scalars(read_events(tmp_path / "shared" / "named"), "loss/G_A") == [(2, 1.5)]
    assert not (run_dir / "tensorboard").exists()

    # a rank other than 0 gets no backends: no event file, no W&B run (nothing is even imported)
    opt = parse_options([*common, "--name", "rank1", "--use_tensorboard", "--use_wandb"])
    other = Visualizer.for_training(opt, tmp_path / "ck" / "rank1", resume=False, enabled=False)
    other.log(record(2, 1.5))
    other.close()
    assert other.backends == [] and not (tmp_path / "ck" / "rank1").exists()


@pytest.mark.parametrize(("flag", "module"), [("--use_tensorboard", "tensorboard"), ("--use_wandb", "wandb")])
def test_a_tracker_without_its_package_is_one_line_before_training(
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    flag: str,
    module: str,
) -> None:
    # None in sys.modules is Python's own way to make a package unimportable (find_spec: None)
    monkeypatch.setitem(sys.modules, module, None)
    args = ["--dataroot", str(tiny_dataset), "--name", "nopkg", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    assert train.main([*args, flag]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"train.py: error: {flag} needs the {module} package: pip install {module}"]
    assert not (tmp_path / "ck").exists()  # nothing set up, nothing written
    if module == "tensorboard":  # TensorBoard is train.py's: test.py says where its results go instead
        assert test_script.main([*args[:6], "--gpu_ids", "-1", flag]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert (
            line.startswith("test.py: error: --use_tensorboard is train.py's: test.py writes") and "--use_wandb" in line
        )
    if module == "wandb":  # test.py takes --use_wandb too
        assert test_script.main([*args[:6], "--gpu_ids", "-1", flag]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"test.py: error: {flag} needs the {module} package: pip install {module}"
        ]
