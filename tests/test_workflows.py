"""Workflows end to end (train.main / test.main on real image files) that no other test covers:
batches with a partial last batch and their exact resume, --no_flip, test.py with --direction
BtoA, --eval, --num_test and --epoch all, the shipped demo config, and the errors of --config
files and --gpu_ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image

import test as test_script
import train
from data import create_dataset
from engine.checkpoint import load_checkpoint
from models.networks import define_G
from options import parse_options
from tests.conftest import REPO_ROOT, assert_same_state, write_images
from tests.test_train_test import eval_args, read_png, run_args


def write_named(folder: Path, names: list[str], seed: int, tint: tuple = (1.0, 1.0, 1.0)) -> None:
    """Images named ``<name>.png``, written in the order given (not sorted)."""
    scratch = folder.parent / f".{folder.name}_scratch"
    for name, path in zip(names, write_images(scratch, len(names), seed=seed, tint=tint), strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        path.rename(folder / f"{name}.png")
    scratch.rmdir()


@pytest.fixture
def named_dataset(tmp_path: Path) -> Path:
    """Like ``tiny_dataset``, but testA and testB have file names of their own, out of order."""
    root = tmp_path / "named"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 2, seed=2, tint=(1.0, 0.4, 0.4))
    write_named(root / "testA", ["d", "b", "e", "a", "c"], seed=3)
    write_named(root / "testB", ["z", "x", "y"], seed=4, tint=(1.0, 0.4, 0.4))
    return root


def generator(state: dict, key: str, norm: str = "instance") -> nn.Module:
    """The generator ``key`` of a checkpoint, rebuilt from its state dict alone (the TINY architecture)."""
    net = define_G("resnet_6blocks", 3, 3, 8, norm)
    net.load_state_dict(state["nets"][key])
    return net


def translate(net: nn.Module, image_file: Path, train_mode: bool = True) -> torch.Tensor:
    """``net`` applied to a 32x32 image file (test-time preprocessing leaves it as it is), as
    the 0..255 HWC int16 values a result PNG holds."""
    x = read_png(image_file).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = net.train(train_mode)(x)[0]
    return ((y.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a - b).abs().max().item())


def train_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "loss_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


# ---- 1. batches of 2 on a dataset of 3: a partial last batch ----------------------------------


def test_batch_size_2_with_a_partial_last_batch_and_its_exact_resume(tiny_dataset: Path, tmp_path: Path) -> None:
    # tiny_dataset: 3 A images, 2 B images -> 3 items per epoch: batches of 2 and 1, ceil(3/2) = 2 iterations
    common = "--batch_size 2 --n_epochs 2 --n_epochs_decay 1 --save_epoch_freq 1 --pool_size 2 --seed 3".split()
    common += ["--print_freq", "1"]
    assert train.main([*run_args(tiny_dataset, tmp_path, "full"), *common]) == 0
    full_dir = tmp_path / "ck" / "full"
    for epoch in (1, 2, 3):
        state = load_checkpoint(full_dir / f"{epoch}.pth")
        assert (state["epoch"], state["epoch_samples"], state["total_iters"]) == (epoch + 1, 0, 2 * epoch)
    positions = [(r["epoch"], r["epoch_iter"], r["total_iters"]) for r in train_records(full_dir)]
    assert positions == [(1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4), (3, 1, 5), (3, 2, 6)]
    full = load_checkpoint(full_dir / "latest.pth")
    assert full["total_iters"] == 6 and full["schedulers"]["G"]["last_epoch"] == 3

    # stop after the first batch of epoch 2, resume: the rest of the epoch is the partial batch
    split = run_args(tiny_dataset, tmp_path, "split")
    assert train.main([*split, *common, "--max_iters", "3"]) == 0
    halfway = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert (halfway["epoch"], halfway["epoch_samples"], halfway["total_iters"]) == (2, 2, 3)
    assert train.main([*split, *common, "--continue_train"]) == 0
    again = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert (again["epoch"], again["epoch_samples"], again["total_iters"]) == (4, 0, 6)
    for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)
    losses = {name: [r["losses"] for r in train_records(tmp_path / "ck" / name)] for name in ("full", "split")}
    assert losses["full"] == losses["split"]


# ---- 2. --no_flip ------------------------------------------------------------------------------


def as_tensor(path: str | Path) -> torch.Tensor:
    """The image file as the network sees it without any augmentation: CHW in [-1, 1]."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def test_no_flip_gives_the_images_unmirrored(tiny_dataset: Path) -> None:
    # load_size = crop_size = the images' size: no resize, no crop margin, so only a flip can change them
    base = ["--dataroot", str(tiny_dataset), "--seed", "0", "--load_size", "32", "--crop_size", "32"]
    files = sorted((tiny_dataset / "trainA").iterdir()) + sorted((tiny_dataset / "trainB").iterdir())
    plain = {str(p): as_tensor(p) for p in files}
    assert all(not torch.equal(image, image.flip(-1)) for image in plain.values())  # a flip changes every image

    def kinds(dataset) -> list[str]:
        found = []
        for epoch in range(1, 5):
            dataset.set_epoch(epoch)
            for index in range(len(dataset)):
                item = dataset[index]
                for side in ("A", "B"):
                    original = plain[item[f"{side}_paths"]]
                    if torch.equal(item[side], original):
                        found.append("as is")
                    elif torch.equal(item[side], original.flip(-1)):
                        found.append("mirrored")
                    else:
                        found.append(f"other: {item[f'{side}_paths']}")
        return found

    flipping = kinds(create_dataset(parse_options(base)))
    assert set(flipping) == {"as is", "mirrored"}  # the default flips some samples, and nothing else
    assert set(kinds(create_dataset(parse_options([*base, "--no_flip"])))) == {"as is"}


# ---- 3. test.py --direction BtoA -----------------------------------------------------------------


def test_direction_btoa_translates_testB_with_G_A(named_dataset: Path, tmp_path: Path) -> None:
    run = run_args(named_dataset, tmp_path, "btoa")
    assert train.main([*run, "--direction", "BtoA", "--max_iters", "2", "--seed", "4"]) == 0
    assert test_script.main([*eval_args(named_dataset, tmp_path, "btoa"), "--direction", "BtoA"]) == 0
    out = tmp_path / "res/btoa/test_latest/images"
    # the model's side A is the testB folder: its files get the A-side labels (as the reference names them)
    expected_names = {f"{s}_{label}.png" for s in "xyz" for label in ("real_A", "fake_B", "rec_A")}
    expected_names |= {f"{s}_{label}.png" for s in "abcde" for label in ("real_B", "fake_A", "rec_B")}
    assert {p.name for p in out.iterdir()} == expected_names

    state = load_checkpoint(tmp_path / "ck/btoa/latest.pth")
    G_A, G_B = generator(state, "G_A"), generator(state, "G_B")  # in a BtoA run G_A maps B -> A
    for stem in "xyz":
        source = named_dataset / "testB" / f"{stem}.png"
        assert torch.equal(read_png(out / f"{stem}_real_A.png"), read_png(source))
        assert max_diff(read_png(out / f"{stem}_fake_B.png"), translate(G_A, source)) <= 1
        assert max_diff(translate(G_B, source), translate(G_A, source)) > 1  # the wrong generator would show
    for stem in "abcde":
        source = named_dataset / "testA" / f"{stem}.png"
        assert torch.equal(read_png(out / f"{stem}_real_B.png"), read_png(source))
        assert max_diff(read_png(out / f"{stem}_fake_A.png"), translate(G_B, source)) <= 1

    # test.py takes the direction from the run's opt.yaml when it is not given
    assert test_script.main(eval_args(named_dataset, tmp_path, "btoa", results="res2")) == 0
    again = tmp_path / "res2/btoa/test_latest/images"
    assert {p.name for p in again.iterdir()} == expected_names
    assert torch.equal(read_png(again / "x_fake_B.png"), read_png(out / "x_fake_B.png"))


# ---- 4. test.py --eval -----------------------------------------------------------------------------


def test_eval_uses_batch_norm_running_statistics(tiny_dataset: Path, tmp_path: Path) -> None:
    run = run_args(tiny_dataset, tmp_path)
    assert train.main([*run, "--norm", "batch", "--max_iters", "3", "--seed", "5"]) == 0
    assert test_script.main(eval_args(tiny_dataset, tmp_path, results="train_mode")) == 0
    assert test_script.main([*eval_args(tiny_dataset, tmp_path, results="eval_mode"), "--eval"]) == 0
    G_A = generator(load_checkpoint(tmp_path / "ck/run/latest.pth"), "G_A", norm="batch")
    for source in sorted((tiny_dataset / "testA").iterdir()):
        stem = source.stem
        in_eval = read_png(tmp_path / f"eval_mode/run/test_latest/images/{stem}_fake_B.png")
        in_train = read_png(tmp_path / f"train_mode/run/test_latest/images/{stem}_fake_B.png")
        assert max_diff(in_eval, translate(G_A, source, train_mode=False)) <= 1
        assert max_diff(in_train, translate(G_A, source, train_mode=True)) <= 1  # the default: train mode
        assert max_diff(in_eval, in_train) > 8


# ---- 5. test.py --num_test -----------------------------------------------------------------------


def test_num_test_translates_the_first_n_images_in_sorted_order(named_dataset: Path, tmp_path: Path) -> None:
    assert train.main([*run_args(named_dataset, tmp_path), "--max_iters", "1", "--seed", "6"]) == 0
    assert test_script.main([*eval_args(named_dataset, tmp_path), "--num_test", "2"]) == 0
    out = tmp_path / "res/run/test_latest/images"
    # testA holds d b e a c, testB z x y (written in that order): the first two of each, sorted
    expected = {f"{s}_{label}.png" for s in "ab" for label in ("real_A", "fake_B", "rec_A")}
    expected |= {f"{s}_{label}.png" for s in "xy" for label in ("real_B", "fake_A", "rec_B")}
    assert {p.name for p in out.iterdir()} == expected
    for stem, folder in (("a", "testA"), ("b", "testA"), ("x", "testB"), ("y", "testB")):
        label = "real_A" if folder == "testA" else "real_B"
        assert torch.equal(read_png(out / f"{stem}_{label}.png"), read_png(named_dataset / folder / f"{stem}.png"))


# ---- 6. test.py --epoch all without --metrics --------------------------------------------------


def test_epoch_all_translates_every_epoch_checkpoint(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    extra = "--n_epochs 1 --n_epochs_decay 1 --save_epoch_freq 1 --lr 0.002 --seed 7".split()
    assert train.main([*run_args(tiny_dataset, tmp_path), *extra]) == 0
    capsys.readouterr()
    assert test_script.main([*eval_args(tiny_dataset, tmp_path), "--epoch", "all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "latest holds the networks of epoch 2: not evaluated again" in out
    assert out[-1] == "translated 2 checkpoints; add --metrics (e.g. fid,kid) to compare them"
    results = tmp_path / "res" / "run"
    assert sorted(p.name for p in results.iterdir()) == ["test_1", "test_2"]  # no run summary without metrics
    source = tiny_dataset / "testA" / "0001.png"
    saved = {}
    for epoch in (1, 2):
        G_A = generator(load_checkpoint(tmp_path / f"ck/run/{epoch}.pth"), "G_A")
        saved[epoch] = read_png(results / f"test_{epoch}/images/0001_fake_B.png")
        assert max_diff(saved[epoch], translate(G_A, source)) <= 1
    assert max_diff(saved[1], saved[2]) > 1  # epoch 2 was trained further


# ---- 7. the shipped demo config ------------------------------------------------------------------


@pytest.mark.parametrize("is_train", [True, False])
def test_demo_config_values_are_the_options(tiny_dataset: Path, tmp_path: Path, is_train: bool) -> None:
    config = REPO_ROOT / "configs" / "demo.yaml"
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert isinstance(values, dict) and len(values) > 10
    args = ["--config", str(config), "--dataroot", str(tiny_dataset), "--checkpoints_dir", str(tmp_path), "--dry_run"]
    opt = parse_options(args, is_train=is_train)
    assert opt.dataroot == tiny_dataset  # the command line overrides the file
    train_opt = parse_options(args, is_train=True)
    for key, value in values.items():
        if key == "dataroot":
            continue
        if not is_train and key not in opt:
            assert key in train_opt, f"{key} is an option of neither script"  # train-only: test.py ignores it
            continue
        assert opt.get(key) == value, f"{key}: option {opt.get(key)!r}, demo.yaml {value!r}"
        assert key in opt.explicit


def test_demo_config_builds_its_model(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    config = REPO_ROOT / "configs" / "demo.yaml"
    args = ["--config", str(config), "--dataroot", str(tiny_dataset), "--checkpoints_dir", str(tmp_path), "--dry_run"]
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "dataset: 3 items per epoch (3 iterations); parameters: G_A " in out and "dry run: nothing trained" in out
    assert not (tmp_path / "demo_day2night").exists()


# ---- 8. --config file errors -------------------------------------------------------------------


def error_lines(capsys) -> tuple[str, list[str]]:
    err = capsys.readouterr().err
    return err, [line for line in err.strip().splitlines() if line]


@pytest.mark.parametrize("script", ["train.py", "test.py"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"--config {path}: no such file"),
        ("lr: [0.1\n", r"--config {path} is not valid YAML: while parsing a flow sequence"),
        ("- lr\n- 0.1\n", r"--config {path} must hold a mapping of option: value"),
        ("learning_rate: 0.1\n", r"unknown key\(s\) in {path}: learning_rate\. Valid keys: .*\blambda_identity\b.*"),
        ("crop_size: many\n", r"config key 'crop_size': invalid literal for int\(\) with base 10: 'many'"),
        ("no_flip: 1\n", r"config key 'no_flip' must be true or false, got 1"),
    ],
    ids=["missing", "invalid-yaml", "not-a-mapping", "unknown-key", "not-an-int", "not-a-bool"],
)
def test_config_file_errors_are_one_line(
    tiny_dataset: Path, tmp_path: Path, capsys, script: str, content: str | None, message: str
) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    main = train.main if script == "train.py" else test_script.main
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(path), "--dataroot", str(tiny_dataset), "--checkpoints_dir", str(tmp_path / "ck")])
    err, lines = error_lines(capsys)
    assert exc.value.code == 2 and "Traceback" not in err
    errors = [line for line in lines if line.startswith(f"{script}: error:")]
    assert errors == [lines[-1]]  # one error line, the last
    assert re.fullmatch(f"{script}: error: " + message.format(path=re.escape(str(path))), lines[-1]), lines[-1]


# ---- 9. --gpu_ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["train.py", "test.py"])
def test_gpu_ids_that_are_not_integers_are_refused(tiny_dataset: Path, capsys, script: str) -> None:
    main = train.main if script == "train.py" else test_script.main
    with pytest.raises(SystemExit) as exc:
        main(["--dataroot", str(tiny_dataset), "--gpu_ids", "a,b"])
    err, lines = error_lines(capsys)
    assert exc.value.code == 2 and "Traceback" not in err
    assert lines[-1] == f"{script}: error: --gpu_ids must be comma-separated integers, got 'a,b'"


def test_gpu_ids_minus_one_runs_on_the_cpu(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    run = run_args(tiny_dataset, tmp_path)  # TINY passes --gpu_ids -1
    assert run[run.index("--gpu_ids") + 1] == "-1"
    assert train.main([*run, "--max_iters", "1", "--seed", "8"]) == 0
    out = capsys.readouterr().out
    # a CUDA run also checkpoints the GPU's random state; a GPU id on a machine without CUDA prints a note
    assert set(load_checkpoint(tmp_path / "ck/run/latest.pth")["rng"]) == {"torch"}
    assert "CUDA is not available" not in out
    gpu = [*run_args(tiny_dataset, tmp_path, "gpu"), "--gpu_ids", "0", "--max_iters", "1", "--seed", "8"]
    assert train.main(gpu) == 0  # the last --gpu_ids wins
    out = capsys.readouterr().out
    rng = set(load_checkpoint(tmp_path / "ck/gpu/latest.pth")["rng"])
    if torch.cuda.is_available():
        assert rng == {"torch", "cuda"}
    else:
        assert rng == {"torch"} and "note: CUDA is not available; running on the CPU" in out
