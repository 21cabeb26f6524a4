"""The reference's checkpoints in our scripts, from files its own network code wrote: a pretrained
generator in test.py, a cycle_gan run's four files resumed by train.py (every tag form), and the
same after scripts/convert_checkpoint.py to-ours."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import test as test_script
import train
from engine.checkpoint import load_checkpoint
from engine.evaluation import checkpoints_to_test
from models import create_model
from models.networks import define_G
from options import parse_options
from scripts import convert_checkpoint
from tests.conftest import QUIET_CPU, assert_same_state, write_images
from tests.test_convert_checkpoint import REFERENCE_NAMES, reference_run
from tests.test_train_test import read_png

PRETRAINED_ARGS = ["--model", "test", "--no_dropout", "--ngf", "8", "--netG", "resnet_9blocks", "--gpu_ids", "-1"]


def pretrained_args(tmp_path: Path, images: Path) -> list[str]:
    return [
        *("--dataroot", str(images), "--name", "x_pretrained", "--checkpoints_dir", str(tmp_path / "checkpoints")),
        *("--results_dir", str(tmp_path / "results"), "--load_size", "64", "--crop_size", "64", *PRETRAINED_ARGS),
    ]


def to_float(png: torch.Tensor) -> torch.Tensor:
    return png.permute(2, 0, 1)[None].float() / 127.5 - 1


def to_levels(image: torch.Tensor) -> torch.Tensor:
    return ((image[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)


def with_stale_instance_norm_keys(state: dict) -> dict:
    """The file as PyTorch < 0.4 wrote it: InstanceNorm running stats and a batch counter."""
    state = dict(state)
    for norm in ("model.2", "model.5", "model.10.conv_block.2", "model.23"):
        channels = 8 if norm in ("model.2", "model.23") else (16 if norm == "model.5" else 32)
        state[f"{norm}.running_mean"] = torch.zeros(channels)
        state[f"{norm}.running_var"] = torch.ones(channels)
        state[f"{norm}.num_batches_tracked"] = torch.tensor(7)
    return state


@pytest.mark.parametrize("stale_keys", [False, True], ids=["as_saved", "pytorch_pre_0.4_keys"])
def test_pretrained_generator_in_test_py_reproduces_the_reference_outputs(
    reference_fixtures: Path, tmp_path: Path, capsys, stale_keys: bool
) -> None:
    state = torch.load(reference_fixtures / "G_resnet9_ngf8.pth", map_location="cpu", weights_only=True)
    if stale_keys:
        state = with_stale_instance_norm_keys(state)
        strict = define_G("resnet_9blocks", 3, 3, 8, "instance")
        with pytest.raises(RuntimeError, match="Unexpected key"):  # the keys the patch exists for
            strict.load_state_dict(state, strict=True)
    run = tmp_path / "checkpoints" / "x_pretrained"
    run.mkdir(parents=True)
    torch.save(state, run / "latest_net_G.pth")
    images = tmp_path / "imgs"
    write_images(images, 2, size=64, seed=5)
    args = pretrained_args(tmp_path, images)

    # 1. test.py's loading path (its options, model, checkpoint search and load) on the fixture's
    # float input: the reference's output_eval
    opt = parse_options(args, is_train=False)
    model = create_model(opt, torch.device("cpu"))
    model.train()  # as test.py without --eval
    keys = [model.checkpoint_key(n) for n in model.nets]
    (item,) = checkpoints_to_test(run, opt.epoch, keys)
    assert item.checkpoint.source == str(run / "latest_net_*.pth")
    model.load_networks(item.checkpoint.nets, item.checkpoint.source)
    io = torch.load(reference_fixtures / "G_resnet9_ngf8_io.pt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.inference("A", io["input"])["fake"], io["output_eval"], atol=1e-4, rtol=0)

    # 2. test.py end to end on image files: its outputs are that same path's on those images
    assert test_script.main(args) == 0
    out = tmp_path / "results/x_pretrained/test_latest/images"
    for stem in ("0000", "0001"):
        real = read_png(out / f"{stem}_real.png")
        fake = model.inference("A", to_float(real))["fake"]
        assert (read_png(out / f"{stem}_fake.png") - to_levels(fake)).abs().max() <= 1, stem


def train_args(root: Path, tmp_path: Path, name: str) -> list[str]:
    return [
        *("--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), *QUIET_CPU),
        *("--ngf", "8", "--ndf", "8", "--load_size", "36", "--crop_size", "32", "--seed", "0", "--print_freq", "1"),
    ]


def assert_resumed_from_fixtures(reference_fixtures: Path, nets: dict, exact: bool) -> None:
    """Every network is the fixture's (exact), or a couple of Adam steps away from it (each step
    moves a weight by about lr = 2e-4; a fresh N(0, 0.02) init would be ~100x further)."""
    for net, fixture in REFERENCE_NAMES.items():
        reference = torch.load(reference_fixtures / f"{fixture}.pth", map_location="cpu", weights_only=True)
        if exact:
            assert_same_state(nets[net], reference, net)
            continue
        distance = max((nets[net][k] - v).abs().max().item() for k, v in reference.items())
        assert 0 < distance < 2e-3, (net, distance)


@pytest.mark.parametrize(("tag", "flags"), [("latest", []), ("iter_6", ["--load_iter", "6"]), ("3", ["--epoch", "3"])])
def test_reference_cycle_gan_files_resume_in_train_py(
    reference_fixtures: Path, tiny_dataset: Path, tmp_path: Path, capsys, tag: str, flags: list[str]
) -> None:
    run = reference_run(reference_fixtures, tmp_path / "ck" / "ref", tag)
    capsys.readouterr()
    assert train.main([*train_args(tiny_dataset, tmp_path, "ref"), "--continue_train", *flags, "--max_iters", "2"]) == 0
    out = capsys.readouterr().out
    assert f"note: resumed the weights of {run / f'{tag}_net_*.pth'}; optimizer state" in out
    latest = load_checkpoint(run / "latest.pth")
    assert (latest["total_iters"], latest["epoch"]) == (2, 1)  # at --epoch_count: the files hold no position
    assert_resumed_from_fixtures(reference_fixtures, latest["nets"], exact=False)


def test_converted_reference_files_load_in_test_py_and_resume_in_train_py(
    reference_fixtures: Path, tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    src = reference_run(reference_fixtures, tmp_path / "ref")
    run = tmp_path / "ck" / "conv"
    assert convert_checkpoint.main(["to-ours", str(src), "--out", str(run)]) == 0
    converted = load_checkpoint(run / "latest.pth")
    # test.py: G_A of the converted file is the reference's generator
    results = tmp_path / "res"
    test_args = ["--dataroot", str(tiny_dataset / "testA"), "--name", "conv", "--checkpoints_dir", str(tmp_path / "ck")]
    test_args += ["--results_dir", str(results), "--model_suffix", "_A", "--crop_size", "32", *PRETRAINED_ARGS]
    assert test_script.main(test_args) == 0
    generator = define_G("resnet_9blocks", 3, 3, 8, "instance")
    generator.load_state_dict(converted["nets"]["G_A"])
    real = read_png(results / "conv/test_latest/images/0001_real.png")
    with torch.no_grad():
        expected = to_levels(generator.train()(to_float(real)))
    assert (read_png(results / "conv/test_latest/images/0001_fake.png") - expected).abs().max() <= 1
    # train.py --continue_train: its weights exactly (--max_iters 0 saves the weights it starts from) ...
    capsys.readouterr()
    shutil.copy(run / "latest.pth", tmp_path / "converted.pth")
    assert train.main([*train_args(tiny_dataset, tmp_path, "conv"), "--continue_train", "--max_iters", "0"]) == 0
    assert f"note: resumed the weights of {run / 'latest.pth'}; optimizer state" in capsys.readouterr().out
    assert_resumed_from_fixtures(reference_fixtures, load_checkpoint(run / "latest.pth")["nets"], exact=True)
    # ... and trains on from them, at --epoch_count
    shutil.copy(tmp_path / "converted.pth", run / "latest.pth")
    args = [*train_args(tiny_dataset, tmp_path, "conv"), "--continue_train", "--epoch_count", "4", "--max_iters", "2"]
    assert train.main(args) == 0
    latest = load_checkpoint(run / "latest.pth")
    assert (latest["total_iters"], latest["epoch"]) == (2, 4)
    assert_resumed_from_fixtures(reference_fixtures, latest["nets"], exact=False)
