"""Real-time style transfer (issue 11, part 3): the transformation network, the style dataset,
the fast_style model's losses, and train.py / test.py end to end with tiny networks and a
random-initialised VGG-16 (no weights can be had offline)."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import test as test_script
import train
from data import create_dataset
from engine.checkpoint import load_checkpoint
from models import create_model
from models.fast_style_model import CONTENT_LAYER, STYLE_LAYERS
from models.networks import GENERATORS, define_G
from models.networks.transformer_net import ResidualBlock, TransformerNet, UpsampleConv
from models.style_losses import gram_matrix, total_variation
from options import parse_options
from tests.conftest import QUIET_CPU, REPO_ROOT, assert_same_state, picture, write_images

TINY_STYLE = [
    *"--model fast_style --ngf 8 --ndf 8 --crop_size 32 --load_size 36 --batch_size 2 --random_backbone".split(),
    *QUIET_CPU,
    "--print_freq",
    "1",
]


@pytest.fixture
def style_data(tmp_path: Path) -> tuple[Path, Path]:
    """5 content images of 40x40 in a folder, and a 60x45 style image elsewhere."""
    content = tmp_path / "content"
    write_images(content, 5, size=40, seed=1)
    return content, picture(tmp_path / "style.png", 60, 45, seed=2)


def run_args(content: Path, style: Path, tmp_path: Path, name: str = "run", *extra: str) -> list[str]:
    ck = str(tmp_path / "ck")
    return ["--dataroot", str(content), "--style_image", str(style), "--name", name, "--checkpoints_dir", ck, *extra]


def test_the_network_is_johnsons_and_keeps_any_input_size() -> None:
    torch.manual_seed(0)
    net = define_G("transformer_net", 3, 3, ngf=8, norm="instance")
    assert isinstance(net, TransformerNet) and GENERATORS.spec("transformer_net").size_multiple == 1
    modules = list(net.modules())
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in modules)  # no checkerboard-prone upsampling
    assert sum(isinstance(m, UpsampleConv) for m in modules) == 2
    assert sum(isinstance(m, ResidualBlock) for m in modules) == 5
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0]) for c in (convs[0], convs[1], convs[2], convs[-1])] == [
        (9, 1),
        (3, 2),
        (3, 2),
        (9, 1),
    ]
    assert [c.out_channels for c in convs[:3]] == [8, 16, 32] and convs[-1].out_channels == 3
    norms = [m for m in modules if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine for m in norms)
    assert any(isinstance(m, nn.ReflectionPad2d) and m.padding[0] == 4 for m in modules)
    # the paper's width (32): PyTorch's fast_neural_style TransformerNet has 1,679,235 parameters too
    assert sum(p.numel() for p in define_G("transformer_net", 3, 3, ngf=32).parameters()) == 1_679_235
    for height, width in ((37, 53), (32, 32), (6, 9)):
        y = net(torch.rand(2, 3, height, width) * 2 - 1)
        assert y.shape == (2, 3, height, width) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="at least 5x5"):
        net(torch.rand(1, 3, 4, 16))


def test_the_style_dataset_serves_content_crops_and_the_style_image(style_data, tmp_path: Path) -> None:
    content, style = style_data
    opt = parse_options([*run_args(content, style, tmp_path), *TINY_STYLE, "--seed", "0", "--style_size", "40"])
    dataset = create_dataset(opt)
    assert dataset.folder == content and len(dataset) == 5
    item = dataset[3]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
    assert item["style"].shape == (3, 40, 53)  # 60x45 with its shorter side at --style_size 40
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    # the style crop comes from the style image: some 32x32 window of it (flips aside)
    full = item["style"]
    windows = [full[:, y : y + 32, x : x + 32] for y in range(9) for x in range(22)]
    crop = item["B"]
    assert any(torch.equal(crop, w) or torch.equal(crop, w.flip(-1)) for w in windows)
    # trainA/ when there is one, and a style image inside the content folder is not content
    root = tmp_path / "layout"
    write_images(root / "trainA", 2, size=40, seed=3)
    write_images(root / "other", 4, size=40, seed=4)
    nested = parse_options([*run_args(root, style, tmp_path), *TINY_STYLE, "--seed", "0"])
    assert create_dataset(nested).folder == root / "trainA" and len(create_dataset(nested)) == 2
    inside = parse_options([*run_args(content, content / "0004.png", tmp_path), *TINY_STYLE, "--seed", "0"])
    assert [p.name for p in create_dataset(inside).paths] == ["0000.png", "0001.png", "0002.png", "0003.png"]
    # test time: a single image of any size, kept at its size
    odd = picture(tmp_path / "odd.png", 53, 37, seed=5)
    test_opt = parse_options(["--dataroot", str(odd), "--model", "fast_style", "--gpu_ids", "-1"], is_train=False)
    single = create_dataset(test_opt, "test", "A")
    assert single.folder == tmp_path and len(single) == 1 and single[0]["A"].shape == (3, 37, 53)


def tiny_model(content: Path, style: Path, tmp_path: Path, *extra: str):
    opt = parse_options([*run_args(content, style, tmp_path), *TINY_STYLE, "--seed", "0", *extra])
    torch.manual_seed(opt.seed)
    model = create_model(opt, torch.device("cpu"))
    dataset = create_dataset(opt)
    batch = {k: torch.stack([dataset[0][k], dataset[1][k]]) for k in ("A", "B", "style")}
    return model, batch


def test_a_training_step_gives_the_perceptual_losses_and_leaves_the_vgg_alone(style_data, tmp_path: Path) -> None:
    content, style = style_data
    model, batch = tiny_model(content, style, tmp_path, "--tv_weight", "3")
    assert model.loss_names == ("content", "style", "tv") and set(model.nets) == {"G"}
    assert set(model.optimizers) == {"G"}
    vgg, G_before = model.vgg, copy.deepcopy(model.nets["G"])
    vgg_before = {k: v.clone() for k, v in vgg.state_dict().items()}

    # what the losses must be: the weighted perceptual losses of G's output before its update
    with torch.no_grad():
        x, y, s = (batch["A"] + 1) / 2, (G_before(batch["A"]) + 1) / 2, (batch["style"][:1] + 1) / 2
        fy, fx, fs = vgg(y, STYLE_LAYERS), vgg(x, [CONTENT_LAYER]), vgg(s, STYLE_LAYERS)
        content_expected = 1e5 * ((fy[CONTENT_LAYER] - fx[CONTENT_LAYER]) ** 2).mean()
        style_expected = 1e10 * sum(((gram_matrix(fy[n]) - gram_matrix(fs[n])) ** 2).mean() for n in STYLE_LAYERS)
        tv_expected = 3 * total_variation(y)
    losses = model.train_step(batch)
    assert tuple(losses) == model.loss_names
    assert all(v.dim() == 0 and not v.requires_grad and math.isfinite(v.item()) for v in losses.values())
    assert losses["content"].item() == pytest.approx(content_expected.item(), rel=1e-4)
    assert losses["style"].item() == pytest.approx(style_expected.item(), rel=1e-4)
    assert losses["tv"].item() == pytest.approx(tv_expected.item(), rel=1e-4) and losses["tv"].item() > 0
    # G was updated; the VGG is frozen, got no gradient and is not one of the saved networks
    assert any(not torch.equal(a, b) for a, b in zip(model.nets["G"].parameters(), G_before.parameters(), strict=True))
    assert all(not p.requires_grad and p.grad is None for p in vgg.parameters())
    assert all(torch.equal(v, vgg_before[k]) for k, v in vgg.state_dict().items())
    state = model.state_dict()
    assert set(state["nets"]) == {"G"} and set(state["nets"]["G"]) == set(model.nets["G"].state_dict())
    assert list(model.visuals()) == ["content", "stylized", "style"]
    assert model.visuals()["style"].shape == (1, 3, 32, 43)  # the whole style image: 60x45 at --style_size 32


def test_the_adversarial_term_adds_a_discriminator_of_style_crops(style_data, tmp_path: Path) -> None:
    content, style = style_data
    model, batch = tiny_model(content, style, tmp_path, "--lambda_gan", "0.5")
    assert model.loss_names == ("content", "style", "tv", "G_GAN", "D")
    assert set(model.nets) == {"G", "D"} and set(model.optimizers) == {"G", "D"}
    D = model.nets["D"]
    judged: list[torch.Tensor] = []
    D.register_forward_pre_hook(lambda module, args: judged.append(args[0].detach().clone()))
    grads = {"during G": 0}
    for p in D.parameters():
        p.register_hook(lambda g: grads.__setitem__("during G", grads["during G"] + (not model.in_D)))
    model.in_D = False
    backward_D = model.backward_D

    def tracked(*args):
        model.in_D = True
        return backward_D(*args)

    model.backward_D = tracked
    D_before = copy.deepcopy(D)
    losses = model.train_step(batch)
    assert all(math.isfinite(v.item()) for v in losses.values()) and losses["G_GAN"].item() > 0
    assert grads["during G"] == 0  # the generator's step sends no gradient into D
    # G's step judges the output; D's step the style crops (real) and the same output (fake)
    assert len(judged) == 3 and torch.equal(judged[1], batch["B"]) and torch.equal(judged[2], judged[0])
    assert any(not torch.equal(a, b) for a, b in zip(D.parameters(), D_before.parameters(), strict=True))
    assert all(p.requires_grad for p in D.parameters())
    assert set(model.state_dict()["nets"]) == {"G", "D"}


def test_train_saves_and_resumes_exactly_and_test_stylises_at_the_input_size(style_data, tmp_path: Path) -> None:
    """The real command line trains 2 iterations and saves; --continue_train goes on to 5 and
    ends bit for bit as 5 uninterrupted iterations (G, D, both optimizers, losses). test.py then
    stylises a folder and a single image of another size, each at its own size, with G."""
    content, style = style_data
    common = [*TINY_STYLE, "--lambda_gan", "0.5", "--seed", "3", "--display_freq", "1", "--update_html_freq", "1"]
    assert train.main([*run_args(content, style, tmp_path, "full"), *common, "--max_iters", "5"]) == 0
    split = [*run_args(content, style, tmp_path, "split"), *common]
    first = subprocess.run(
        [sys.executable, "train.py", *split, "--max_iters", "2"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    halfway = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert (halfway["epoch"], halfway["epoch_samples"], halfway["total_iters"]) == (1, 4, 2)
    assert set(halfway["nets"]) == {"G", "D"}  # no VGG in the checkpoint
    resume = ["--name", "split", "--checkpoints_dir", str(tmp_path / "ck"), "--continue_train", "--max_iters", "5"]
    assert train.main(resume) == 0  # the run's options, style image included, come from its opt.yaml
    full, again = (load_checkpoint(tmp_path / f"ck/{name}/latest.pth") for name in ("full", "split"))
    assert again["total_iters"] == 5 and (again["epoch"], again["epoch_samples"]) == (2, 4)
    for part in ("nets", "optimizers", "schedulers", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)
    logs = {
        name: [json.loads(x) for x in (tmp_path / f"ck/{name}/loss_log.jsonl").read_text().splitlines()]
        for name in ("full", "split")
    }
    losses = {name: [r["losses"] for r in records if r["kind"] == "train"] for name, records in logs.items()}
    assert len(losses["full"]) == 5 and losses["full"] == losses["split"]
    assert set(losses["full"][0]) == {"content", "style", "tv", "G_GAN", "D"}
    web = (tmp_path / "ck/full/web/index.html").read_text()  # the visuals of the last step, displayed
    for label in ("content", "stylized", "style"):
        assert re.search(rf'src="images/epoch002_iter000005_{label}\.png"', web), label

    # test.py: the content folder (40x40) and one 53x37 image, each stylised at its size by G
    args = ["--dataroot", str(content), "--name", "full", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    G = create_model(parse_options(args, is_train=False), torch.device("cpu")).nets["G"]  # the run's architecture
    G.load_state_dict(full["nets"]["G"])
    odd = picture(tmp_path / "photos" / "odd.png", 53, 37, seed=7)
    for dataroot, results, stems, size in ((content, "folder", 5, (40, 40)), (odd, "single", 1, (53, 37))):
        args = ["--dataroot", str(dataroot), "--name", "full", "--checkpoints_dir", str(tmp_path / "ck")]
        assert test_script.main([*args, "--results_dir", str(tmp_path / results), "--gpu_ids", "-1"]) == 0
        out = tmp_path / results / "full/test_latest"
        fakes = sorted((out / "images").glob("*_fake_B.png"))
        assert len(fakes) == stems and len(list((out / "images").glob("*_real_A.png"))) == stems
        assert all(Image.open(p).size == size for p in fakes)
        page = (out / "index.html").read_text()
        assert all(f"images/{p.name}" in page for p in fakes)
        real = np.asarray(Image.open(str(fakes[-1]).replace("_fake_B", "_real_A")), dtype=np.float32)
        with torch.no_grad():
            y = G(torch.from_numpy(real).permute(2, 0, 1)[None] / 127.5 - 1)[0]
        expected = ((y.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
        assert np.abs(np.asarray(Image.open(fakes[-1]), dtype=np.float32) - expected).max() <= 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no style image", "--dataset_mode style needs --style_image PATH"),
        ("unreadable style image", "--style_image: cannot read image "),
        ("missing style image", "--style_image {tmp}/nope.png does not exist"),
        ("empty content folder", "no content images found in {tmp}/empty"),
        ("fid during training", "--metrics fid/kid need real images of the target domain: a style is one image"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(style_data, tmp_path: Path, capsys, case: str, message: str) -> None:
    content, style = style_data
    args = run_args(content, style, tmp_path)
    if case == "no style image":
        args = args[:2] + args[4:]
    elif case == "unreadable style image":
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG not really")
        args[3] = str(broken)
    elif case == "missing style image":
        args[3] = str(tmp_path / "nope.png")
    elif case == "empty content folder":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    else:
        args += ["--eval_freq", "1", "--metrics", "fid"]
    capsys.readouterr()
    assert train.main([*args, *TINY_STYLE, "--seed", "0", "--max_iters", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: " + message.format(tmp=tmp_path)), err
    assert not (tmp_path / "ck/run/latest.pth").exists()
