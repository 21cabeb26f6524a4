"""End to end: train.main then test.main on tiny generated datasets; exact resume; signals;
NaN handling; checkpoints; batched inference; errors users see."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import test as test_script
import train
from engine.checkpoint import load_checkpoint, save_checkpoint
from models import create_model
from models.networks import define_G
from options import parse_options
from tests.conftest import REPO_ROOT, TINY, assert_same_state, write_images


def run_args(root: Path, tmp_path: Path, name: str = "run") -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), *TINY]


def eval_args(root: Path, tmp_path: Path, name: str = "run", results: str = "res") -> list[str]:
    return [
        "--dataroot",
        str(root),
        "--name",
        name,
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--results_dir",
        str(tmp_path / results),
        "--gpu_ids",
        "-1",
    ]


def read_png(path: Path) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.int16))


def test_train_then_test(tiny_dataset: Path, tmp_path: Path) -> None:
    write_images(tiny_dataset / "testA", 52, seed=5)  # more than the reference's 50-image default
    extra = "--n_epochs 1 --n_epochs_decay 1 --save_epoch_freq 1 --seed 1 --display_freq 2 --update_html_freq 4"
    assert train.main([*run_args(tiny_dataset, tmp_path), *extra.split()]) == 0
    run_dir = tmp_path / "ck" / "run"
    assert {p.name for p in run_dir.iterdir()} >= {
        "latest.pth",
        "1.pth",
        "2.pth",
        "opt.yaml",
        "loss_log.txt",
        "loss_log.jsonl",
        "web",
    }
    records = [json.loads(line) for line in (run_dir / "loss_log.jsonl").read_text().splitlines()]
    assert [r["total_iters"] for r in records] == [2, 4, 6]
    assert set(records[0]["losses"]) == {"D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"}
    assert "(epoch: 2, iters: 1, total: 4" in (run_dir / "loss_log.txt").read_text()
    web = (run_dir / "web" / "index.html").read_text()  # display steps 2 and 6 (4 is too soon), newest first
    assert web.index("iteration [6]") < web.index("iteration [2]") and "iteration [4]" not in web
    assert len(re.findall(r'<img[^>]*src="images/epoch00\d_iter0000\d\d_\w+\.png"', web)) == 2 * 8

    ckpt = load_checkpoint(run_dir / "latest.pth")
    assert (ckpt["epoch"], ckpt["epoch_samples"], ckpt["total_iters"]) == (3, 0, 6)
    assert set(ckpt["nets"]) == {"G_A", "G_B", "D_A", "D_B"} and set(ckpt["optimizers"]) == {"G", "D"}
    assert set(ckpt["pools"]) == {"A", "B"} and len(ckpt["pools"]["A"]["images"]) == 6
    assert ckpt["options"]["ngf"] == 8 and ckpt["schedulers"]["G"]["last_epoch"] == 2

    # test.py takes the architecture from the run: no --ngf/--netG/--crop_size needed
    assert test_script.main(eval_args(tiny_dataset, tmp_path)) == 0
    out = tmp_path / "res" / "run" / "test_latest"
    images = {p.name for p in (out / "images").iterdir()}
    for stem in [f"{i:04d}" for i in range(52)]:
        assert {f"{stem}_real_A.png", f"{stem}_fake_B.png", f"{stem}_rec_A.png"} <= images
    assert {"0000_real_B.png", "0001_fake_A.png", "0001_rec_B.png"} <= images
    assert len(images) == 52 * 3 + 2 * 3
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == len(images) and all((out / s).is_file() for s in sources)
    assert Image.open(out / "images" / "0051_fake_B.png").size == (32, 32)

    # the saved translation is the generator's output for that image
    opt = parse_options(eval_args(tiny_dataset, tmp_path), is_train=False)
    model = create_model(opt, torch.device("cpu"))
    model.load_networks(ckpt["nets"], "latest")
    model.train()
    from data import create_dataset

    image = create_dataset(opt, "test", "A")[7]["A"]
    fake = model.inference("A", image[None])["fake_B"][0]
    expected = ((fake.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)
    assert (read_png(out / "images" / "0007_fake_B.png") - expected).abs().max() <= 1


def test_save_then_load_gives_identical_outputs(tiny_dataset: Path, tmp_path: Path) -> None:
    opt = parse_options([*run_args(tiny_dataset, tmp_path), "--seed", "2"])
    model = create_model(opt, torch.device("cpu"))
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    for _ in range(2):
        model.train_step(batch)
    save_checkpoint(tmp_path / "c.pth", {"options": opt.to_dict(), **model.state_dict()})
    torch.manual_seed(123)
    fresh = create_model(opt, torch.device("cpu"))
    fresh.load_state_dict(load_checkpoint(tmp_path / "c.pth"), "c.pth")
    for side in ("A", "B"):
        a, b = model.inference(side, batch[side]), fresh.inference(side, batch[side])
        assert all(torch.equal(a[k], b[k]) for k in a)
    # optimizer state came back too: one more identical step on both gives identical weights
    torch.manual_seed(0)
    model.train_step(batch)
    torch.manual_seed(0)
    fresh.train_step(batch)
    for name in model.nets:
        for (k, v), w in zip(
            model.nets[name].state_dict().items(), fresh.nets[name].state_dict().values(), strict=True
        ):
            assert torch.equal(v, w), f"{name}.{k} differs after one more step"


def test_resume_is_exact(tiny_dataset: Path, tmp_path: Path) -> None:
    # 3 items per epoch: iteration 4 is in the middle of epoch 2; the run ends mid epoch 3, during
    # the learning-rate decay; a pool of 2 makes the pool's random draws matter. Losses are logged
    # every 3 iterations, so the stop at 4 falls inside a logging window (the one logged at 6).
    common = ["--n_epochs", "2", "--n_epochs_decay", "2", "--pool_size", "2", "--seed", "3", "--print_freq", "3"]
    common += ["--max_iters", "8"]
    assert train.main([*run_args(tiny_dataset, tmp_path, "full"), *common]) == 0
    split = run_args(tiny_dataset, tmp_path, "split")
    assert train.main([*split, *common[:-1], "4"]) == 0
    halfway = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert (halfway["epoch"], halfway["epoch_samples"], halfway["total_iters"]) == (2, 1, 4)
    # data loading in a worker process this time: augmentation must not depend on it
    i = split.index("--num_threads")
    resumed = [*split[:i], "--num_threads", "1", *split[i + 2 :]]
    assert train.main([*resumed, "--print_freq", "3", "--continue_train", "--max_iters", "8"]) == 0

    full = load_checkpoint(tmp_path / "ck/full/latest.pth")
    again = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert again["total_iters"] == 8 and (again["epoch"], again["epoch_samples"]) == (3, 2)
    for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)
    logs = {
        name: [json.loads(x) for x in (tmp_path / "ck" / name / "loss_log.jsonl").read_text().splitlines()]
        for name in ("full", "split")
    }
    assert [r["kind"] for r in logs["split"]].count("resume") == 1  # the log says where the resume happened
    losses = {name: [r["losses"] for r in records if r["kind"] == "train"] for name, records in logs.items()}
    assert losses["full"] == losses["split"]


def start_training(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a session of its own, so a signal can go to the whole process group, as Ctrl-C in a terminal
    # or a cluster's SIGTERM does: the data-loading worker gets it too
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_latest_and_exits_cleanly(tiny_dataset: Path, tmp_path: Path, sig: signal.Signals) -> None:
    write_images(tiny_dataset / "trainA", 40, seed=9)  # a long epoch: the worker is busy when the signal comes
    args = [*run_args(tiny_dataset, tmp_path), "--n_epochs", "1000", "--print_freq", "1", "--seed", "4"]
    args[args.index("--num_threads") + 1] = "1"  # with a worker process
    proc = start_training(args)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("(epoch:") or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "stopped at iteration" in err
    state = load_checkpoint(tmp_path / "ck/run/latest.pth")
    done = state["total_iters"]
    assert done >= 1
    # the run's options come from its opt.yaml: name and place are enough to resume
    minimal = ["--name", "run", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1", "--num_threads", "0"]
    assert train.main([*minimal, "--continue_train", "--max_iters", str(done + 2)]) == 0
    resumed = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert resumed["total_iters"] == done + 2 and resumed["options"]["ngf"] == 8 and resumed["options"]["seed"] == 4


def test_nan_loss_stops_with_the_loss_and_iteration_and_keeps_the_checkpoint(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    args = [*run_args(tiny_dataset, tmp_path), "--seed", "5", "--save_latest_freq", "1"]
    assert train.main([*args, "--max_iters", "4"]) == 0
    good = (tmp_path / "ck/run/latest.pth").read_bytes()
    capsys.readouterr()
    status = train.main([*args, "--continue_train", "--max_iters", "8", "--lambda_A", "nan"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 3 and len(err) == 1
    assert "loss cycle_A, idt_B became NaN or infinite at iteration 5" in err[0]  # both weighted by lambda_A
    assert (tmp_path / "ck/run/latest.pth").read_bytes() == good


def test_batched_inference_equals_batch_one(tiny_dataset: Path, tmp_path: Path) -> None:
    write_images(tiny_dataset / "testA", 9, seed=6)
    assert train.main([*run_args(tiny_dataset, tmp_path), "--max_iters", "2", "--seed", "6"]) == 0
    assert test_script.main([*eval_args(tiny_dataset, tmp_path, results="b1"), "--test_batch_size", "1"]) == 0
    assert test_script.main([*eval_args(tiny_dataset, tmp_path, results="b4"), "--test_batch_size", "4"]) == 0
    one = sorted((tmp_path / "b1/run/test_latest/images").iterdir())
    four = sorted((tmp_path / "b4/run/test_latest/images").iterdir())
    assert [p.name for p in one] == [p.name for p in four] and len(one) == 9 * 3 + 2 * 3
    worst = max((read_png(a) - read_png(b)).abs().max().item() for a, b in zip(one, four, strict=True))
    assert worst <= 1  # float summation order may move a value across a rounding boundary


def test_batched_inference_equals_batch_one_with_dropout_in_train_mode(tiny_dataset: Path, tmp_path: Path) -> None:
    """Dropout in train mode draws a mask per image: batching would draw them in another order,
    so such a model translates one image at a time and --test_batch_size changes nothing."""
    write_images(tiny_dataset / "testA", 5, seed=6)
    config = tmp_path / "dropout.yaml"
    config.write_text("no_dropout: false\n")  # cycle_gan turns dropout off by default
    args = [*run_args(tiny_dataset, tmp_path), "--config", str(config), "--max_iters", "1", "--seed", "6"]
    assert train.main(args) == 0
    for batch in ("1", "4"):
        test_args = [*eval_args(tiny_dataset, tmp_path, results=f"b{batch}"), "--test_batch_size", batch]
        assert test_script.main([*test_args, "--seed", "3"]) == 0
    one = sorted((tmp_path / "b1/run/test_latest/images").glob("*_fake_B.png"))
    four = sorted((tmp_path / "b4/run/test_latest/images").glob("*_fake_B.png"))
    assert len(one) == 5 and all(torch.equal(read_png(a), read_png(b)) for a, b in zip(one, four, strict=True))
    # dropout is really on: a second run with another seed translates differently
    again = [*eval_args(tiny_dataset, tmp_path, results="b1s"), "--test_batch_size", "1", "--seed", "4"]
    assert test_script.main(again) == 0
    other = sorted((tmp_path / "b1s/run/test_latest/images").glob("*_fake_B.png"))
    assert any(not torch.equal(read_png(a), read_png(b)) for a, b in zip(one, other, strict=True))


def cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_bad_input_gives_one_line_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    result = cli("train.py", "--dataroot", str(tiny_dataset), "--model", "cyclegan")
    assert result.returncode == 2 and "invalid choice: 'cyclegan' (choose from " in result.stderr
    assert "'cycle_gan'" in result.stderr.splitlines()[-1]  # the valid names, in the registry's order
    result = cli("train.py", "--dataroot", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    (tiny_dataset / "trainA" / "0001.png").write_bytes(b"\x89PNG broken")
    result = cli(
        "train.py",
        *run_args(tiny_dataset, tmp_path)[:-2],
        "--gpu_ids",
        "-1",
        "--num_threads",
        "1",
        "--serial_batches",
        "--max_iters",
        "3",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(r"train.py: error: cannot read image \S*0001.png", result.stderr.strip().splitlines()[-1])
    result = cli("test.py", *eval_args(tiny_dataset, tmp_path, name="never_trained"))
    assert result.returncode == 2 and "no checkpoint 'latest'" in result.stderr and "Traceback" not in result.stderr


def test_the_products_own_example_without_a_dataset_is_two_short_lines(tmp_path: Path) -> None:
    """``python train.py --dataroot photos2vangogh`` before any download: the message is what a
    user sees, under one short usage line (not argparse's 36 lines of usage)."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "--dataroot", "photos2vangogh"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2, result.stderr
    assert lines[0] == "usage: train.py [options]; train.py --help lists them"
    assert lines[1].startswith("train.py: error: --dataroot photos2vangogh does not exist")
    assert "bash scripts/download_cyclegan_dataset.sh vangogh2photo" in lines[1]


def test_template_model_and_dataset_run(tiny_dataset: Path, tmp_path: Path) -> None:
    args = [*run_args(tiny_dataset, tmp_path), "--model", "template", "--max_iters", "3", "--seed", "7"]
    assert train.main(args) == 0
    records = (tmp_path / "ck/run/loss_log.jsonl").read_text().splitlines()
    assert set(json.loads(records[0])["losses"]) == {"L1"}
    losses = [json.loads(r)["losses"]["L1"] for r in records]
    assert len(losses) == 1 and losses[0] > 0  # print_freq 2: one log of 3 iterations
    # the saved translation is the template's trained G applied to the saved input (--eval: its
    # generator has dropout, whose masks would differ in train mode)
    test_args = [*eval_args(tiny_dataset, tmp_path), "--model", "template", "--eval"]
    assert test_script.main(test_args) == 0
    model = create_model(parse_options(test_args, is_train=False), torch.device("cpu"))
    model.load_networks(load_checkpoint(tmp_path / "ck/run/latest.pth")["nets"], "latest")
    model.eval()
    images = tmp_path / "res/run/test_latest/images"
    real = read_png(images / "0002_real_A.png").permute(2, 0, 1)[None].float() / 127.5 - 1
    expected = ((model.inference("A", real)["fake_B"][0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0)
    assert (read_png(images / "0002_fake_B.png") - expected.to(torch.int16)).abs().max() <= 1
    assert sorted(p.name for p in images.iterdir())[:2] == ["0000_fake_B.png", "0000_real_A.png"]


def test_reference_style_weight_files_are_loaded(tiny_dataset: Path, tmp_path: Path) -> None:
    """Pretrained generators come as bare state dicts: <epoch>_net_G.pth (--model test), or a
    run folder of latest_net_G_A.pth / latest_net_G_B.pth (cycle_gan)."""
    torch.manual_seed(8)
    net = define_G("resnet_6blocks", 3, 3, 8, "instance")
    run_dir = tmp_path / "ck" / "pretrained"
    run_dir.mkdir(parents=True)
    torch.save(net.state_dict(), run_dir / "latest_net_G_A.pth")
    net_B = define_G("resnet_6blocks", 3, 3, 8, "instance")
    torch.save(net_B.state_dict(), run_dir / "latest_net_G_B.pth")
    arch = ["--netG", "resnet_6blocks", "--ngf", "8", "--crop_size", "32", "--no_dropout"]
    args = [
        "--name",
        "pretrained",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--results_dir",
        str(tmp_path / "r"),
        "--gpu_ids",
        "-1",
        *arch,
    ]
    assert (
        test_script.main(["--dataroot", str(tiny_dataset / "testA"), "--model", "test", "--model_suffix", "_A", *args])
        == 0
    )
    out = tmp_path / "r/pretrained/test_latest/images"
    assert sorted(p.name for p in out.iterdir())[:2] == ["0000_fake.png", "0000_real.png"]
    with torch.no_grad():
        image = read_png(out / "0001_real.png").permute(2, 0, 1)[None].float() / 127.5 - 1
        expected = ((net.train()(image)[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)
    assert (read_png(out / "0001_fake.png") - expected).abs().max() <= 1
    assert test_script.main(["--dataroot", str(tiny_dataset), *args]) == 0  # cycle_gan, both files
    # B's translation is G_B's, its reconstruction G_A(G_B(b)): both files are in use, each in its place
    with torch.no_grad():
        real_B = read_png(out / "0001_real_B.png").permute(2, 0, 1)[None].float() / 127.5 - 1
        fake_A = net_B.train()(real_B)
        for label, image in (("fake_A", fake_A), ("rec_B", net(fake_A))):
            expected = ((image[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)
            assert (read_png(out / f"0001_{label}.png") - expected).abs().max() <= 2, label


def test_max_iters_zero_saves_the_initial_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    args = [*run_args(tiny_dataset, tmp_path), "--seed", "9"]
    assert train.main([*args, "--max_iters", "0"]) == 0
    state = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert state["total_iters"] == 0 and (state["epoch"], state["epoch_samples"]) == (1, 0)
    torch.manual_seed(9)
    fresh = create_model(parse_options(args), torch.device("cpu"))
    assert_same_state(state["nets"], fresh.state_dict()["nets"], "nets")


def test_epoch_count_moves_the_start_not_the_end(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    # as the reference: epochs 3..5 of a 3 + 2 epoch schedule, learning rate never below 0
    args = [*run_args(tiny_dataset, tmp_path), *"--n_epochs 3 --n_epochs_decay 2 --save_epoch_freq 1".split()]
    assert train.main([*args, "--epoch_count", "3", "--seed", "1", "--print_freq", "1"]) == 0
    run_dir = tmp_path / "ck" / "run"
    assert sorted(p.name for p in run_dir.glob("[0-9].pth")) == ["3.pth", "4.pth", "5.pth"]
    records = [json.loads(x) for x in (run_dir / "loss_log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    assert len(lrs) == 9 and lrs[0] == pytest.approx(2e-4) and lrs[-1] == pytest.approx(2e-4 * (1 - 2 / 3))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # an options error: argparse's usage line and exit status 2
        train.main([*args, "--epoch_count", "6"])
    assert exc.value.code == 2
    assert "--epoch_count 6 is past the last epoch, n_epochs + n_epochs_decay = 5" in capsys.readouterr().err


def test_resume_keeps_the_runs_epoch_count(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    args = [*run_args(tiny_dataset, tmp_path), *"--n_epochs 2 --n_epochs_decay 2 --seed 2".split()]
    assert train.main([*args, "--max_iters", "4"]) == 0
    capsys.readouterr()
    assert train.main([*args, "--continue_train", "--epoch_count", "3"]) == 0
    assert "--epoch_count 3 ignored: the checkpoint continues at epoch 2" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert state["total_iters"] == 12 and state["options"]["epoch_count"] == 1
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # 1 - (5-2)/3: the end


def test_save_by_iter_keeps_the_save_latest_freq_points(tiny_dataset: Path, tmp_path: Path) -> None:
    extra = "--save_latest_freq 2 --save_by_iter --max_iters 6 --seed 3".split()
    assert train.main([*run_args(tiny_dataset, tmp_path), *extra]) == 0
    names = sorted(p.name for p in (tmp_path / "ck/run").glob("iter_*.pth"))
    assert names == ["iter_2.pth", "iter_4.pth", "iter_6.pth"]  # iteration 6 is an epoch's end: one file
    assert load_checkpoint(tmp_path / "ck/run/iter_6.pth")["epoch"] == 3


def test_uncropped_preprocessing_trains_and_mixed_sizes_in_a_batch_fail_clearly(tmp_path: Path, capsys) -> None:
    root = tmp_path / "sizes"
    for domain, seed in (("trainA", 1), ("trainB", 2)):
        write_images(root / domain, 2, size=36, seed=seed)
        write_images(root / domain, 1, size=44, seed=seed + 5, ext=".jpg")
    base = ["--dataroot", str(root), "--name", "s", "--checkpoints_dir", str(tmp_path / "ck"), *TINY, "--seed", "0"]
    # scale_width to 30 px: sides are rounded to the generator's multiple of 4 (28)
    assert (
        train.main([*base, "--preprocess", "scale_width", "--load_size", "30", "--crop_size", "24", "--max_iters", "3"])
        == 0
    )
    assert train.main([*base, "--name", "n", "--preprocess", "none", "--max_iters", "3"]) == 0
    capsys.readouterr()
    status = train.main(
        [*base, "--name", "b", "--preprocess", "none", "--batch_size", "3", "--serial_batches", "--max_iters", "1"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "one batch holds images of different sizes (36x36, 44x44)" in err[0]


def test_same_seed_same_run_other_seed_other_run(tiny_dataset: Path, tmp_path: Path) -> None:
    for name, seed in (("a", "11"), ("b", "11"), ("c", "12")):
        assert train.main([*run_args(tiny_dataset, tmp_path, name), "--max_iters", "3", "--seed", seed]) == 0
    a, b, c = (load_checkpoint(tmp_path / "ck" / n / "latest.pth")["nets"] for n in "abc")
    assert_same_state(a, b, "nets")
    assert not torch.equal(a["G_A"]["model.1.weight"], c["G_A"]["model.1.weight"])


def test_demo_ground_truth_is_scored_and_epoch_picks_the_checkpoint(tmp_path: Path) -> None:
    from scripts.make_demo_dataset import make_dataset

    root = tmp_path / "demo"
    manifest = make_dataset(root, seed=0, size=32, n_train=4, n_test=3, force=False)
    args = ["--dataroot", str(root), "--name", "d", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    extra = "--n_epochs 1 --n_epochs_decay 1 --save_epoch_freq 1 --seed 0 --load_size 32"
    assert train.main([*args, *extra.split()]) == 0
    assert test_script.main([*eval_args(root, tmp_path, name="d"), "--epoch", "1"]) == 0
    # the translation is epoch 1's generator (not latest's) applied to the input
    opt = parse_options(eval_args(root, tmp_path, name="d"), is_train=False)
    model = create_model(opt, torch.device("cpu"))
    model.load_networks(load_checkpoint(tmp_path / "ck/d/1.pth")["nets"], "1.pth")
    model.train()
    real = read_png(tmp_path / "res/d/test_1/images/0001_real_A.png").permute(2, 0, 1)[None].float() / 127.5 - 1
    expected = ((model.inference("A", real)["fake_B"][0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0)
    assert (read_png(tmp_path / "res/d/test_1/images/0001_fake_B.png") - expected.to(torch.int16)).abs().max() <= 1
    model.load_networks(load_checkpoint(tmp_path / "ck/d/latest.pth")["nets"], "latest.pth")
    other = ((model.inference("A", real)["fake_B"][0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0)
    assert (other - expected).abs().max() > 1  # epoch 2 translates differently: the check can fail
    report = json.loads((tmp_path / "res/d/test_1/metrics.json").read_text())
    assert set(report) == {"A", "B"} and report["A"]["images"] == 3
    # the do-nothing row reproduces the generator's own baseline: same files, same metric code
    baseline = manifest["baseline_identity"]["testA"]
    assert report["A"]["real_A"]["l1"] == pytest.approx(baseline["l1"], abs=1e-6)
    assert report["A"]["real_A"]["psnr"] == pytest.approx(baseline["psnr"], abs=1e-4)
    assert 0 < report["A"]["fake_B"]["l1"] < 1 and report["B"]["fake_A"]["ssim"] <= 1
    images = {p.name for p in (tmp_path / "res/d/test_1/images").iterdir()}
    assert {"0000_gt_B.png", "0000_gt_A.png"} <= images
    page = (tmp_path / "res/d/test_1/index.html").read_text()
    assert "Translation vs ground truth" in page and "0002_gt_B" in page


def test_resume_honours_a_changed_lr_and_schedule(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    """--continue_train --lr X trains at X from there on (the reference honours --lr), and the
    schedule's lengths follow the new options; opt.yaml and the checkpoint record what was used."""
    args = [*run_args(tiny_dataset, tmp_path), *"--n_epochs 2 --n_epochs_decay 2 --seed 2".split()]
    assert train.main([*args, "--max_iters", "4"]) == 0  # mid epoch 2 (3 iterations per epoch)
    capsys.readouterr()
    assert train.main([*args, "--continue_train", "--lr", "1e-4", "--max_iters", "7"]) == 0
    assert "note: resuming with changed options: --lr 0.0001 (was 0.0002)" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert state["total_iters"] == 7 and state["epoch"] == 3  # in epoch 3: factor 1 - (3 - 2) / 3
    for name in ("G", "D"):
        assert state["optimizers"][name]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 2 / 3, rel=1e-12)
        assert state["schedulers"][name]["base_lrs"] == [1e-4]
    records = [json.loads(x) for x in (tmp_path / "ck/run/loss_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records if r["kind"] == "train" and r["total_iters"] == 6] == [pytest.approx(1e-4)]
    assert state["options"]["lr"] == 1e-4 and yaml.safe_load((tmp_path / "ck/run/opt.yaml").read_text())["lr"] == 1e-4

    # the step policy keeps its step size in its state: a new --lr_decay_iters must still win
    step = [*run_args(tiny_dataset, tmp_path, "step"), *"--lr_policy step --seed 2".split()]
    assert train.main([*step, "--lr_decay_iters", "1", "--max_iters", "4"]) == 0
    assert load_checkpoint(tmp_path / "ck/step/latest.pth")["optimizers"]["G"]["param_groups"][0]["lr"] == (
        pytest.approx(2e-5)
    )
    assert train.main([*step, "--lr_decay_iters", "2", "--continue_train", "--max_iters", "7"]) == 0
    state = load_checkpoint(tmp_path / "ck/step/latest.pth")
    assert state["schedulers"]["G"]["step_size"] == 2
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-5)  # 2e-4 * 0.1^(2 // 2)
    records = [json.loads(x) for x in (tmp_path / "ck/step/loss_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records if r["kind"] == "train" and r["total_iters"] == 6] == [pytest.approx(2e-4)]


@pytest.mark.parametrize(
    ("flag", "value", "saved"),
    [("lr_policy", "cosine", "linear"), ("ngf", "16", "8"), ("seed", "5", "2"), ("pool_size", "3", "50")],
)
def test_resume_refuses_a_change_it_cannot_honour(
    tiny_dataset: Path, tmp_path: Path, capsys, flag: str, value: str, saved: str
) -> None:
    args = [*run_args(tiny_dataset, tmp_path), "--seed", "2"]
    assert train.main([*args, "--max_iters", "2"]) == 0
    latest = tmp_path / "ck/run/latest.pth"
    before = latest.read_bytes()
    capsys.readouterr()
    i = args.index(f"--{flag}") if f"--{flag}" in args else len(args)
    changed = [*args[:i], *args[i + 2 :], f"--{flag}", value]
    assert train.main([*changed, "--continue_train", "--max_iters", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"train.py: error: --continue_train cannot change --{flag} {value} (the checkpoint's: {saved}): it is part "
        "of what the checkpoint holds; drop the flag, or start a new run with another --name"
    ]
    assert latest.read_bytes() == before  # nothing was written


def test_aspect_ratio_shapes_results_and_ground_truth_as_the_reference(tmp_path: Path) -> None:
    """The reference's --aspect_ratio: above 1 the saved height grows by it, below 1 the width
    grows by its inverse; the ground truth is shaped alike, so paired metrics still compare."""
    from scripts.make_demo_dataset import make_dataset

    root = tmp_path / "demo"
    make_dataset(root, seed=0, size=32, n_train=2, n_test=2, force=False)
    args = ["--dataroot", str(root), "--name", "d", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    assert train.main([*args, "--max_iters", "1", "--seed", "0", "--load_size", "32"]) == 0
    plain = tmp_path / "res/d/test_latest"
    assert test_script.main(eval_args(root, tmp_path, name="d")) == 0
    base = json.loads((plain / "metrics.json").read_text())
    for ratio, size, results in ((2.0, (32, 64), "tall"), (0.5, (64, 32), "wide")):
        assert (
            test_script.main([*eval_args(root, tmp_path, name="d", results=results), "--aspect_ratio", str(ratio)]) == 0
        )
        images = tmp_path / results / "d/test_latest/images"
        for name in ("0000_real_A.png", "0000_fake_B.png", "0000_gt_B.png", "0001_rec_B.png", "0001_gt_A.png"):
            with Image.open(images / name) as img:
                assert img.size == size, (name, img.size)  # (width, height)
        expected = Image.open(plain / "images/0000_fake_B.png").resize(size, Image.BICUBIC)
        assert torch.equal(read_png(images / "0000_fake_B.png"), read_png_image(expected))
        report = json.loads((tmp_path / results / "d/test_latest/metrics.json").read_text())
        # stretched alike, translation and truth still agree about as well as unstretched
        assert report["A"]["fake_B"]["l1"] == pytest.approx(base["A"]["fake_B"]["l1"], abs=0.02)


def read_png_image(img: Image.Image) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.int16))


def test_epoch_checkpoints_are_lean_and_full_checkpoints_resume_exactly(tiny_dataset: Path, tmp_path: Path) -> None:
    """Epoch files hold weights, schedule and position (about the reference's size); latest.pth
    holds the full state. With --full_checkpoints an older epoch resumes exactly."""
    import io

    common = "--n_epochs 1 --n_epochs_decay 1 --save_epoch_freq 1 --pool_size 2 --seed 4".split()
    assert train.main([*run_args(tiny_dataset, tmp_path), *common]) == 0
    run_dir = tmp_path / "ck/run"
    epoch, latest = load_checkpoint(run_dir / "1.pth"), load_checkpoint(run_dir / "latest.pth")
    assert "optimizers" not in epoch and "pools" not in epoch
    assert {"optimizers", "pools"} <= set(latest)
    nets_only = io.BytesIO()
    torch.save(epoch["nets"], nets_only)
    size = (run_dir / "1.pth").stat().st_size
    assert size < 1.05 * nets_only.getbuffer().nbytes + 20_000  # the weights, plus a few KB of position
    assert (run_dir / "latest.pth").stat().st_size > 2.5 * size  # Adam's two moments, the pools

    # --full_checkpoints: resume from epoch 1 of a finished run and land exactly where it ended
    full = [*run_args(tiny_dataset, tmp_path, "full"), *common, "--full_checkpoints"]
    assert train.main(full) == 0
    assert {"optimizers", "pools"} <= set(load_checkpoint(tmp_path / "ck/full/1.pth"))
    end = load_checkpoint(tmp_path / "ck/full/latest.pth")
    (tmp_path / "ck/full/latest.pth").unlink()
    assert train.main([*full, "--continue_train", "--epoch", "1"]) == 0
    again = load_checkpoint(tmp_path / "ck/full/latest.pth")
    for part in ("nets", "optimizers", "schedulers", "pools", "rng"):
        assert_same_state(end[part], again[part], part)


def test_resume_from_a_lean_epoch_checkpoint_keeps_the_schedule(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    args = [*run_args(tiny_dataset, tmp_path), *"--n_epochs 1 --n_epochs_decay 2 --save_epoch_freq 1 --seed 4".split()]
    assert train.main([*args, "--max_iters", "6"]) == 0
    capsys.readouterr()
    assert train.main([*args, "--continue_train", "--epoch", "2", "--max_iters", "7"]) == 0
    out = capsys.readouterr().out
    assert "2.pth holds weights, schedule and position only: optimizer moments and image pools start afresh" in out
    state = load_checkpoint(tmp_path / "ck/run/latest.pth")
    assert (state["epoch"], state["total_iters"]) == (3, 7)
    # epoch 3 of 1 + 2: factor 1 - (3 - 1) / 3, although the optimizers were rebuilt at the base lr
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)
    assert int(state["optimizers"]["G"]["state"][0]["step"]) == 1  # fresh moments: one step since the resume


def test_cudnn_autotuning_only_for_fixed_input_sizes(tiny_dataset: Path, tmp_path: Path) -> None:
    """cuDNN's benchmark mode re-tunes for every new shape: on only when every batch has one size."""
    previous = torch.backends.cudnn.benchmark
    try:
        for preprocess, fixed in (("scale_width", False), ("none", False), ("resize_and_crop", True), ("crop", True)):
            torch.backends.cudnn.benchmark = not fixed
            args = [*run_args(tiny_dataset, tmp_path, preprocess), "--preprocess", preprocess, "--dry_run"]
            assert train.main(args) == 0
            assert torch.backends.cudnn.benchmark is fixed, preprocess
        # test time: scale_width_and_crop translates whole images (scale_width), so sizes vary
        assert train.main([*run_args(tiny_dataset, tmp_path, "swc"), "--preprocess", "scale_width_and_crop",
                           "--max_iters", "1", "--seed", "0"]) == 0  # fmt: skip
        assert torch.backends.cudnn.benchmark is True
        assert test_script.main([*eval_args(tiny_dataset, tmp_path, name="swc"), "--num_test", "1"]) == 0
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = previous


def test_paired_metrics_with_ground_truth_for_one_side_only(tmp_path: Path) -> None:
    """--metrics l1 when only testA_gt/ exists: side A is scored, side B has no value, and the
    page and summary say so instead of failing."""
    import shutil

    from scripts.make_demo_dataset import make_dataset

    root = tmp_path / "demo"
    make_dataset(root, seed=0, size=32, n_train=2, n_test=2, force=False)
    shutil.rmtree(root / "testB_gt")
    args = ["--dataroot", str(root), "--name", "d", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    assert train.main([*args, "--max_iters", "1", "--seed", "0", "--load_size", "32"]) == 0
    for epoch in ("latest", "all"):
        assert test_script.main([*eval_args(root, tmp_path, name="d"), "--metrics", "l1", "--epoch", epoch]) == 0
    report = json.loads((tmp_path / "res/d/test_latest/metrics.json").read_text())
    assert 0 < report["A"]["metrics"]["values"]["l1"] < 1 and report["B"]["metrics"]["values"] == {}
    page = (tmp_path / "res/d/test_latest/index.html").read_text()
    assert "<td>–</td>" in page
