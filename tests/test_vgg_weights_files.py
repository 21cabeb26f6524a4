"""The style models with a VGG weights file, as a user with torchvision's ``vgg19-dcbb9e9d.pth`` /
``vgg16-397923af.pth`` runs them (``--vgg_weights PATH``). No ImageNet weights can be had here, so
the files hold random VGGs in torchvision's layout: what is checked is that the file's tensors
are the networks' weights, in training and in test.py (which reads the path from the run)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

import test as test_script
import train
from models import create_model
from options import parse_options
from tests.conftest import picture
from tests.test_adain import TINY_ADAIN, data  # noqa: F401  (a fixture)
from tests.test_adain import eval_args as adain_eval_args
from tests.test_fast_style import TINY_STYLE

# torchvision's features.<index> of the convolutions, in order
VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def weights_file(path: Path, builder, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = builder().state_dict()
    torch.save(state, path)
    return state


def assert_convs_are_the_files(net: nn.Module, state: dict[str, torch.Tensor], indices: tuple[int, ...]) -> None:
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs, "no convolutions"
    for conv, index in zip(convs, indices, strict=True):
        assert torch.equal(conv.weight, state[f"features.{index}.weight"]), index
        assert torch.equal(conv.bias, state[f"features.{index}.bias"]), index


def test_adain_encodes_with_the_files_vgg19_in_training_and_in_test_py(data: Path, tmp_path: Path) -> None:  # noqa: F811
    state = weights_file(tmp_path / "vgg19.pth", torchvision.models.vgg19, seed=3)
    args = ["--dataroot", str(data), "--name", "run", "--checkpoints_dir", str(tmp_path / "ck")]
    args += [a for a in TINY_ADAIN if a != "--random_backbone"]
    args += ["--vgg_weights", str(tmp_path / "vgg19.pth"), "--seed", "0"]
    trained = create_model(parse_options(args), torch.device("cpu"))
    assert_convs_are_the_files(trained.encoder, state, VGG19_CONVS)
    assert train.main([*args, "--max_iters", "1"]) == 0

    tested = create_model(parse_options(adain_eval_args(data, tmp_path), is_train=False), torch.device("cpu"))
    assert tested.opt.vgg_weights == str(tmp_path / "vgg19.pth")  # from the run's opt.yaml
    assert_convs_are_the_files(tested.encoder, state, VGG19_CONVS)
    assert test_script.main([*adain_eval_args(data, tmp_path), "--style_size", "32"]) == 0
    assert len(list((tmp_path / "res/run/test_latest/images").glob("*_stylized.png"))) == 4  # 2 contents x 2 styles


def test_fast_style_measures_with_the_files_vgg16(tmp_path: Path) -> None:
    state = weights_file(tmp_path / "vgg16.pth", torchvision.models.vgg16, seed=4)
    root = tmp_path / "content"
    for i in range(2):
        picture(root / f"{i}.png", 40, 40, seed=i)
    style = picture(tmp_path / "style.png", 48, 48, seed=9)
    args = ["--dataroot", str(root), "--name", "fs", "--checkpoints_dir", str(tmp_path / "ck")]
    args += [a for a in TINY_STYLE if a != "--random_backbone"]
    args += ["--style_image", str(style), "--vgg_weights", str(tmp_path / "vgg16.pth"), "--seed", "0"]
    model = create_model(parse_options(args), torch.device("cpu"))
    assert_convs_are_the_files(model.vgg, state, VGG16_CONVS)
    assert train.main([*args, "--max_iters", "1"]) == 0
