"""The reference's ``--norm none`` checkpoints: its norm-tied convs have no bias there (ours keep
one), so such a file loads with those biases set to zero and computes the same function."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import test as test_script
import train
from engine.checkpoint import load_checkpoint
from models.networks import define_D, define_G, load_net_state, reference_bias_free_keys
from tests.conftest import QUIET_CPU, TINY, write_images
from tests.test_train_test import read_png
from util.errors import UserError

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def conv_bias_keys(net: nn.Module) -> list[str]:
    return [f"{name}.bias" for name, m in net.named_modules() if isinstance(m, CONVS) and m.bias is not None]


def reference_rule_bias_free(kind: str, net: nn.Module) -> set[str]:
    """The biases the reference omits under --norm none, from its rule written out independently of
    our marks: use_bias is False unless instance norm, except the convs it builds with a bias
    always: the ResNet's final 7x7 conv, the PatchGAN's first and last convs, the U-Net's
    outermost up-conv (models/networks.py of junyanz/pytorch-CycleGAN-and-pix2pix)."""
    convs = [name for name, m in net.named_modules() if isinstance(m, CONVS)]
    always = {"resnet": {convs[-1]}, "basic": {convs[0], convs[-1]}, "unet": {"model.model.3"}}[kind]
    return {f"{name}.bias" for name in convs if name not in always}


BUILD = {
    "resnet": lambda norm: define_G("resnet_9blocks", 3, 3, 8, norm),
    "unet": lambda norm: define_G("unet_128", 3, 3, 8, norm),
    "basic": lambda norm: define_D("basic", 3, 8, 3, norm),
}


@pytest.mark.parametrize("kind", sorted(BUILD))
def test_norm_none_layout_is_the_reference_rule(kind: str) -> None:
    net = BUILD[kind]("none")
    ours = set(reference_bias_free_keys(net))
    assert ours == reference_rule_bias_free(kind, net)
    assert set(net.state_dict()) - ours  # the rest (weights, the always-bias convs) stays
    # with instance norm the reference has every bias; with batch norm neither has the tied ones
    assert reference_bias_free_keys(BUILD[kind]("instance")) == []
    assert set(conv_bias_keys(BUILD[kind]("batch"))) == set(conv_bias_keys(net)) - ours


def test_unet_norm_none_layout_matches_the_reference_made_unet(reference_fixtures: Path) -> None:
    """The reference's use_bias is False for batch norm as for none: the conv biases of its
    batch-norm unet_128 fixture are the ones its none build keeps."""
    listing = (reference_fixtures / "keys_small.txt").read_text()
    unet = listing.split("# G_unet128_ngf8")[1].split("\n# ")[0]
    keys = {line.split("\t")[0] for line in unet.splitlines() if "\t" in line}
    net = define_G("unet_128", 3, 3, 8, "none")
    kept_conv_biases = {k for k in conv_bias_keys(net) if k in keys}
    assert kept_conv_biases == {"model.model.3.bias"}
    assert set(reference_bias_free_keys(net)) == set(conv_bias_keys(net)) - kept_conv_biases


def reference_style_none_file(kind: str, seed: int) -> tuple[nn.Module, dict]:
    """A network as the reference builds it under --norm none (ours with the tied biases at zero,
    every other tensor random) and its state dict as the reference saves it (without them)."""
    torch.manual_seed(seed)
    net = BUILD[kind]("none")
    tied = set(reference_bias_free_keys(net))
    with torch.no_grad():
        for key, tensor in net.state_dict().items():
            tensor.copy_(torch.zeros_like(tensor) if key in tied else torch.randn_like(tensor) * 0.05)
    return net, {k: v.clone() for k, v in net.state_dict().items() if k not in tied}


@pytest.mark.parametrize("kind", sorted(BUILD))
def test_norm_none_file_loads_with_zero_biases_and_gives_the_same_outputs(kind: str) -> None:
    original, state = reference_style_none_file(kind, 1)
    torch.manual_seed(2)
    fresh = BUILD[kind]("none")  # its biases start at 0 by init: make them non-zero to see them set
    with torch.no_grad():
        for key in reference_bias_free_keys(fresh):
            fresh.state_dict()[key].fill_(0.3)
    filled = load_net_state(fresh, state, "file")
    assert sorted(filled) == sorted(reference_bias_free_keys(fresh))
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), original(x), atol=0, rtol=0)


def test_other_missing_keys_still_fail_with_the_mismatch_error() -> None:
    _, state = reference_style_none_file("resnet", 1)
    no_final_bias = {k: v for k, v in state.items() if k != "model.26.bias"}  # a bias the reference always has
    with pytest.raises(UserError, match=r"file does not fit the network: 24 missing keys"):  # 23 tied + this
        load_net_state(BUILD["resnet"]("none"), no_final_bias, "file")
    no_weight = {k: v for k, v in state.items() if k != "model.4.weight"}
    with pytest.raises(UserError, match="does not fit the network: 24 missing keys"):
        load_net_state(BUILD["resnet"]("none"), no_weight, "file")
    one_less = dict(state)
    one_less.pop("model.1.weight")
    one_less["model.1.bias"] = torch.zeros(8)  # some of the tied biases there: not the reference's layout
    with pytest.raises(UserError, match="missing keys"):
        load_net_state(BUILD["resnet"]("none"), one_less, "file")
    with pytest.raises(UserError, match="missing keys"):  # an instance-norm run: the file is not for it
        load_net_state(BUILD["resnet"]("instance"), state, "file")


def test_norm_none_reference_file_in_test_py(tmp_path: Path, capsys) -> None:
    original, state = reference_style_none_file("resnet", 3)
    run = tmp_path / "ck" / "none_pretrained"
    run.mkdir(parents=True)
    torch.save(state, run / "latest_net_G.pth")
    write_images(tmp_path / "imgs", 2, size=32)
    args = ["--dataroot", str(tmp_path / "imgs"), "--name", "none_pretrained", "--model", "test", "--no_dropout"]
    args += ["--netG", "resnet_9blocks", "--ngf", "8", "--norm", "none", "--crop_size", "32"]
    args += ["--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path / "r"), *QUIET_CPU[:2]]
    capsys.readouterr()
    assert test_script.main([*args, "--gpu_ids", "-1"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "--norm none layout" in line]
    assert len(notes) == 1 and re.search(r"set to zero \(G: 23\)", notes[0]), notes  # 1 + 2 + 9 * 2 + 2 convs
    out = tmp_path / "r/none_pretrained/test_latest/images"
    with torch.no_grad():
        real = read_png(out / "0001_real.png").permute(2, 0, 1)[None].float() / 127.5 - 1
        expected = ((original(real)[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).to(torch.int16)
    assert (read_png(out / "0001_fake.png") - expected).abs().max() <= 1


def test_continued_training_learns_the_zeroed_biases(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    """A reference cycle_gan run of --norm none resumed here: its missing biases start at zero and
    are trained like every other weight."""
    run = tmp_path / "ck" / "none"
    run.mkdir(parents=True)
    torch.manual_seed(0)
    for name, net in (("G_A", "G"), ("G_B", "G"), ("D_A", "D"), ("D_B", "D")):
        built = define_G("resnet_6blocks", 3, 3, 8, "none") if net == "G" else define_D("basic", 3, 8, 3, "none")
        tied = set(reference_bias_free_keys(built))
        torch.save({k: v for k, v in built.state_dict().items() if k not in tied}, run / f"latest_net_{name}.pth")
    args = ["--dataroot", str(tiny_dataset), "--name", "none", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    assert train.main([*args, "--norm", "none", "--continue_train", "--max_iters", "2", "--seed", "0"]) == 0
    assert "is in the reference's --norm none layout" in capsys.readouterr().out
    nets = load_checkpoint(run / "latest.pth")["nets"]
    for name in ("G_A", "D_A"):
        fresh = define_G("resnet_6blocks", 3, 3, 8, "none") if name[0] == "G" else define_D("basic", 3, 8, 3, "none")
        learnt = [key for key in reference_bias_free_keys(fresh) if torch.count_nonzero(nets[name][key])]
        assert learnt == reference_bias_free_keys(fresh), name  # every one of them moved off zero
