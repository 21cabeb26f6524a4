"""Arbitrary style transfer (``--model adain``, ``--attention none|sanet``): the decoder, AdaIN,
the style-attentional modules, the content_style dataset, training steps, exact resume, and
train.py / test.py end to end, all with a random-initialised VGG-19 (no weights can be had
offline) at 32-40 px."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import test as test_script
import train
from data import create_dataset
from engine.checkpoint import load_checkpoint, save_checkpoint
from models import create_model
from models.adain_model import VARIANTS, to_signed_range, to_unit_range
from models.networks.arbitrary_style import Decoder, SAModule, StyleAttention, pad_to_multiple
from models.networks.perceptual import adain, channel_mean_std, normalize_channels
from models.style_losses import mean_std_loss
from options import parse_options
from tests.conftest import QUIET_CPU, assert_same_state, picture, write_images

TINY_ADAIN = [
    *"--model adain --random_backbone --crop_size 32 --load_size 36 --batch_size 2".split(),
    *QUIET_CPU,
    "--print_freq",
    "1",
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """trainA: 5 content images, trainB: 2 reddish styles (40x40); testA: a 53x37 and a 40x40
    content image; testB: two styles of other sizes."""
    root = tmp_path / "data"
    write_images(root / "trainA", 5, size=40, seed=1)
    write_images(root / "trainB", 2, size=40, seed=2, tint=(1.0, 0.4, 0.4))
    picture(root / "testA" / "odd.png", 53, 37, seed=3)
    write_images(root / "testA", 1, size=40, seed=4)
    picture(root / "testB" / "waves.png", 44, 36, seed=5)
    picture(root / "testB" / "dots.png", 36, 48, seed=6)
    return root


def train_args(root: Path, tmp_path: Path, name: str = "run", *extra: str) -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(tmp_path / "ck"), *TINY_ADAIN, *extra]


def eval_args(root: Path | str, tmp_path: Path, name: str = "run", results: str = "res") -> list[str]:
    ck, out = str(tmp_path / "ck"), str(tmp_path / results)
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", ck, "--results_dir", out, "--gpu_ids", "-1"]


def tiny_model(root: Path, tmp_path: Path, attention: str = "none", *extra: str):
    opt = parse_options([*train_args(root, tmp_path), "--attention", attention, "--seed", "0", *extra])
    torch.manual_seed(opt.seed)
    model = create_model(opt, torch.device("cpu"))
    dataset = create_dataset(opt)
    batch = {k: torch.stack([dataset[0][k], dataset[1][k]]) for k in ("A", "B")}
    return model, batch


def responsive(model) -> None:
    """He-initialise the trained networks: torch's default initialisation (the papers') shrinks
    the signal about 2.5x per convolution, so an untrained decoder's output hardly depends on
    its input, and comparisons of outputs could not tell one style from another."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for net in model.nets.values():
            for module in net.modules():
                if isinstance(module, nn.Conv2d):
                    std = math.sqrt(2 / (module.in_channels * module.kernel_size[0] * module.kernel_size[1]))
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    module.bias.zero_()


def image(seed: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """A (1, 3, H, W) smooth random image in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 4, generator=generator)
    return nn.functional.interpolate(small, size=(height, width), mode="bilinear", align_corners=False) * 2 - 1


# ---- networks ----------------------------------------------------------------------------------


def test_the_decoder_mirrors_vgg_to_relu4_1_and_stylize_keeps_any_size(data: Path, tmp_path: Path) -> None:
    decoder = Decoder()
    convs = [m for m in decoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (512, 256),
        (256, 256),
        (256, 256),
        (256, 256),
        (256, 128),
        (128, 128),
        (128, 64),
        (64, 64),
        (64, 3),
    ]
    assert sum(p.numel() for p in decoder.parameters()) == 3_505_219  # AdaIN's decoder
    layers = list(decoder.layers)
    assert sum(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in layers) == 3
    assert (
        sum(isinstance(m, nn.ReflectionPad2d) for m in layers) == 9 and sum(isinstance(m, nn.ReLU) for m in layers) == 8
    )
    assert isinstance(layers[-1], nn.Conv2d)  # no ReLU (nor tanh) after the last convolution
    assert not any("Norm" in type(m).__name__ for m in layers)
    for h, w in ((2, 2), (3, 5), (4, 7)):
        assert decoder(torch.rand(1, 512, h, w)).shape == (1, 3, 8 * h, 8 * w)
    assert pad_to_multiple(torch.rand(1, 3, 37, 53), 8, 16).shape[-2:] == (40, 56)
    assert pad_to_multiple(torch.rand(1, 3, 5, 9), 16, 32).shape[-2:] == (32, 32)
    # whole images of any size in, the same size out (padded to 8 or 16, cropped back)
    for attention in ("none", "sanet"):
        model, _ = tiny_model(data, tmp_path, attention)
        assert model.variant.size_multiple == {"none": 8, "sanet": 16}[attention]
        for h, w in ((37, 53), (32, 32), (5, 9), (40, 24)):
            out = model.stylize(image(1, h, w), [image(2, 33, 41)])
            assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()


def test_adain_gives_each_channel_the_style_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 16, 6, 7) * 3 + 1
    style = torch.randn(2, 16, 9, 5) * 0.5 - 2
    out = adain(content, style)
    out_mean, out_std = channel_mean_std(out)
    style_mean, style_std = channel_mean_std(style)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_std, style_std, atol=1e-4, rtol=1e-4)
    # and keeps the content's normalised pattern
    torch.testing.assert_close(normalize_channels(out), normalize_channels(content), atol=1e-4, rtol=1e-4)


def test_the_attention_module_mixes_style_features_by_content_similarity() -> None:
    torch.manual_seed(0)
    sa = SAModule(8)
    content, style = torch.randn(2, 8, 3, 4), torch.randn(1, 8, 5, 6)  # other sizes; one style for the batch
    out = sa(content, style)
    assert out.shape == (2, 8, 3, 4)
    # a uniform style: whatever the attention, each position receives h(s) -> content + out(h(s))
    uniform = torch.randn(1, 8, 1, 1).expand(1, 8, 5, 6).contiguous()
    expected = content + sa.out(sa.value(uniform[..., :1, :1]))
    torch.testing.assert_close(sa(content, uniform + 1e-3 * torch.randn(1, 8, 5, 6)), expected, atol=2e-3, rtol=0)
    # the softmax weights of each content position sum to 1: value 1 everywhere (h = identity,
    # out = identity with bias 0) gives content + 1
    with torch.no_grad():
        for conv in (sa.value, sa.out):
            conv.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
            conv.bias.zero_()
    torch.testing.assert_close(sa(content, torch.ones(1, 8, 5, 6)), content + 1)
    attention = StyleAttention(8)
    merged = attention(
        torch.randn(2, 8, 4, 6), torch.randn(2, 8, 3, 3), torch.randn(2, 8, 2, 3), torch.randn(2, 8, 1, 2)
    )
    assert merged.shape == (2, 8, 4, 6)
    assert sum(p.numel() for p in StyleAttention().parameters()) == 4_461_056  # 2 x 4 1x1 convs + the 3x3 merge


# ---- test-time fusion: alpha and blends --------------------------------------------------------


@pytest.mark.parametrize("attention", ["none", "sanet"])
def test_alpha_and_style_weights_blend_the_fused_features(data: Path, tmp_path: Path, attention: str) -> None:
    model, _ = tiny_model(data, tmp_path, attention)
    responsive(model)
    layers = model.variant.content_layers
    content, style1, style2 = image(1), image(2, 40, 36), image(3, 33, 47)
    decoder = model.nets["decoder"]
    with torch.no_grad():
        c = model.encoder(to_unit_range(content), layers)
        s1, s2 = model.encoder(to_unit_range(style1), layers), model.encoder(to_unit_range(style2), layers)
        if attention == "none":
            base, fused1, fused2 = c["relu4_1"], adain(c["relu4_1"], s1["relu4_1"]), adain(c["relu4_1"], s2["relu4_1"])
        else:
            sanet = model.nets["sanet"]
            base = sanet(c["relu4_1"], c["relu4_1"], c["relu5_1"], c["relu5_1"])  # the content as its own style
            fused1 = sanet(c["relu4_1"], s1["relu4_1"], c["relu5_1"], s1["relu5_1"])
            fused2 = sanet(c["relu4_1"], s2["relu4_1"], c["relu5_1"], s2["relu5_1"])

        def decoded(features: torch.Tensor) -> torch.Tensor:
            return to_signed_range(decoder(features))

        def close(a: torch.Tensor, b: torch.Tensor) -> None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

        close(model.stylize(content, [style1], alpha=0.0), decoded(base))
        close(model.stylize(content, [style1], alpha=1.0), decoded(fused1))
        close(model.stylize(content, [style1], alpha=0.25), decoded(0.75 * base + 0.25 * fused1))
        close(model.stylize(content, [style1, style2], [1.0, 0.0]), model.stylize(content, [style1]))
        close(model.stylize(content, [style1, style2], [0.0, 1.0]), model.stylize(content, [style2]))
        close(model.stylize(content, [style1, style2], [0.7, 0.3]), decoded(0.7 * fused1 + 0.3 * fused2))
        close(
            model.stylize(content, [style1, style2], [0.7, 0.3], alpha=0.5),
            decoded(0.5 * base + 0.5 * (0.7 * fused1 + 0.3 * fused2)),
        )
    assert (model.stylize(content, [style1]) - model.stylize(content, [style2])).abs().max() > 0.1
    assert (model.stylize(content, [style1], alpha=0.0) - model.stylize(content, [style1])).abs().max() > 0.1


# ---- data ---------------------------------------------------------------------------------------


def test_the_dataset_pairs_content_crops_with_random_style_crops(data: Path, tmp_path: Path) -> None:
    opt = parse_options([*train_args(data, tmp_path), "--seed", "0"])
    assert (opt.dataset_mode, opt.batch_size, opt.style_weight, opt.no_flip) == ("content_style", 2, 10.0, True)
    dataset = create_dataset(opt)
    assert len(dataset) == 5
    item = dataset[3]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    assert Path(item["A_paths"]).parent == data / "trainA" and Path(item["B_paths"]).parent == data / "trainB"
    # the pairing and the crops come from (seed, epoch, index): the same when asked again
    assert all(torch.equal(item[k], dataset[3][k]) for k in ("A", "B"))
    pairings = set()
    for epoch in range(1, 7):
        dataset.set_epoch(epoch)
        pairings.add(tuple(dataset[i]["B_paths"] for i in range(5)))
    assert len({b for pairing in pairings for b in pairing}) == 2 and len(pairings) > 1  # random styles
    serial = create_dataset(parse_options([*train_args(data, tmp_path), "--seed", "0", "--serial_batches"]))
    assert [Path(serial[i]["B_paths"]).name for i in range(3)] == ["0000.png", "0001.png", "0000.png"]
    # SANet's paper defaults
    sanet = parse_options([*train_args(data, tmp_path), "--attention", "sanet"])
    defaults = parse_options(["--dataroot", str(data), "--model", "adain", "--attention", "sanet", "--gpu_ids", "-1"])
    assert (defaults.batch_size, defaults.style_weight, defaults.lr, defaults.lr_decay) == (5, 3.0, 1e-4, 5e-5)
    assert (defaults.lambda_identity1, defaults.lambda_identity2, defaults.content_weight) == (50.0, 1.0, 1.0)
    assert (defaults.load_size, defaults.crop_size, defaults.beta1) == (512, 256, 0.9)
    assert sanet.batch_size == 2  # given: kept
    plain = parse_options(["--dataroot", str(data), "--model", "adain", "--gpu_ids", "-1"])
    assert (plain.batch_size, plain.style_weight) == (8, 10.0)

    # test time: each content with each style, the styles at --style_size, contents at their size
    test_opt = parse_options([*eval_args(data, tmp_path), "--model", "adain", "--style_size", "24"], is_train=False)
    pairs = create_dataset(test_opt, "test", "A")
    assert len(pairs) == 4 and pairs.folder == data / "testA"
    items = [pairs[i] for i in range(4)]
    assert [(Path(x["A_paths"]).name, [Path(p).name for p in x["style_paths"]]) for x in items] == [
        ("0000.png", ["dots.png"]),
        ("0000.png", ["waves.png"]),
        ("odd.png", ["dots.png"]),
        ("odd.png", ["waves.png"]),
    ]
    assert items[2]["A"].shape == (3, 37, 53) and items[0]["A"].shape == (3, 40, 40)
    assert [tuple(x["style"][0].shape) for x in items[:2]] == [(3, 32, 24), (3, 24, 29)]  # shorter side 24
    assert all(x["style_weights"] == [1.0] and x["style"][0].abs().max() <= 1 for x in items)
    waves = str(data / "testB" / "waves.png")
    blend_opt = parse_options(
        [*eval_args(data / "testA" / "odd.png", tmp_path), "--model", "adain", "--style_image", waves, waves]
        + ["--style_weights", "3", "1", "--style_size", "0"],
        is_train=False,
    )
    blend = create_dataset(blend_opt, "test", "A")
    assert len(blend) == 1 and blend.folder == data / "testA"
    assert blend[0]["style_weights"] == [0.75, 0.25] and blend[0]["style_paths"] == [waves, waves]
    assert [tuple(s.shape) for s in blend[0]["style"]] == [(3, 36, 44)] * 2  # --style_size 0: as they are
    # the same from a YAML file: lists for the flags that take several values
    config = tmp_path / "blend.yaml"
    config.write_text(f"style_image: [{waves}, {waves}]\nstyle_weights: [3, 1]\nstyle_size: 0\n")
    yaml_opt = parse_options(
        [*eval_args(data / "testA" / "odd.png", tmp_path), "--model", "adain", "--config", str(config)], is_train=False
    )
    assert (yaml_opt.style_image, yaml_opt.style_weights) == ([waves, waves], [3.0, 1.0])


# ---- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["none", "sanet"])
def test_a_training_step_trains_the_decoder_and_leaves_the_encoder_alone(
    data: Path, tmp_path: Path, attention: str
) -> None:
    model, batch = tiny_model(data, tmp_path, attention)
    variant = VARIANTS[attention]
    trained = {"none": {"decoder"}, "sanet": {"decoder", "sanet"}}[attention]
    assert model.loss_names == variant.loss_names and set(model.nets) == trained and set(model.optimizers) == {"G"}
    encoder = model.encoder
    encoder_before = {k: v.clone() for k, v in encoder.state_dict().items()}
    nets_before = {name: copy.deepcopy(net) for name, net in model.nets.items()}

    # what the losses must be, from the networks before the step
    with torch.no_grad():
        content, style = to_unit_range(batch["A"]), to_unit_range(batch["B"])
        c = encoder(content, variant.style_layers)
        s = encoder(style, variant.style_layers)
        decoder = nets_before["decoder"]
        if attention == "none":
            t = adain(c["relu4_1"], s["relu4_1"])
            out = encoder(decoder(t), variant.style_layers)
            expected = {"content": ((out["relu4_1"] - t) ** 2).mean(), "style": 10 * mean_std_loss(out, s)}
        else:
            sanet = nets_before["sanet"]
            out = encoder(decoder(sanet(c["relu4_1"], s["relu4_1"], c["relu5_1"], s["relu5_1"])), variant.style_layers)
            cc = decoder(sanet(c["relu4_1"], c["relu4_1"], c["relu5_1"], c["relu5_1"]))
            ss = decoder(sanet(s["relu4_1"], s["relu4_1"], s["relu5_1"], s["relu5_1"]))
            content_loss = sum(
                ((normalize_channels(out[n]) - normalize_channels(c[n])) ** 2).mean() for n in ("relu4_1", "relu5_1")
            )
            expected = {
                "content": content_loss,
                "style": 3 * mean_std_loss(out, s),
                "identity1": 50 * (((cc - content) ** 2).mean() + ((ss - style) ** 2).mean()),
            }
    losses = model.train_step(batch)
    assert tuple(losses) == model.loss_names
    assert all(v.dim() == 0 and not v.requires_grad and math.isfinite(v.item()) for v in losses.values())
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value.item(), rel=1e-3), name
    assert losses["style"].item() > 0
    for name, net in model.nets.items():  # every trained network changed
        before = nets_before[name].parameters()
        assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), before, strict=True)), name
    assert all(not p.requires_grad and p.grad is None for p in encoder.parameters())
    assert all(torch.equal(v, encoder_before[k]) for k, v in encoder.state_dict().items())
    state = model.state_dict()
    assert set(state["nets"]) == trained  # the encoder is not saved
    visuals = model.visuals()
    assert list(visuals) == ["content", "style", "stylized"] and all(
        v.shape == (2, 3, 32, 32) for v in visuals.values()
    )


def test_sanet_learns_the_identity_of_one_image_used_as_content_and_style(data: Path, tmp_path: Path) -> None:
    model, batch = tiny_model(data, tmp_path, "sanet")  # at the paper's lr, 1e-4
    same = {"A": batch["A"], "B": batch["A"].clone()}
    identity = [model.train_step(same)["identity1"].item() for _ in range(7)]
    assert all(math.isfinite(x) and x > 0 for x in identity)
    assert identity[-1] < 0.5 * identity[0], identity


def test_the_learning_rate_decays_every_iteration_as_the_papers_code(data: Path, tmp_path: Path) -> None:
    model, batch = tiny_model(data, tmp_path, "none", "--lr", "2e-4", "--lr_decay", "0.5")
    used: list[float] = []
    model.optimizers["G"].register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    for _ in range(3):
        model.train_step(batch)
    assert used == pytest.approx([2e-4, 2e-4 / 1.5, 2e-4 / 2])  # lr / (1 + lr_decay * t)
    assert model.optimizers["G"].param_groups[0]["lr"] == 2e-4  # the schedule's value is kept between steps
    assert model.current_lr() == pytest.approx(2e-4 / 2.5)


def test_two_plus_two_iterations_resume_exactly(data: Path, tmp_path: Path) -> None:
    """SANet, 5 content images at batch 2: iteration 2 is in the middle of epoch 1. The split run
    resumes with its options from opt.yaml and ends bit for bit as the one of 4 iterations
    (networks, Adam, the schedule, the decayed rate's clock, random state, losses)."""
    common = ["--attention", "sanet", "--seed", "3", "--display_freq", "1", "--update_html_freq", "1"]
    assert train.main([*train_args(data, tmp_path, "full"), *common, "--max_iters", "4"]) == 0
    assert train.main([*train_args(data, tmp_path, "split"), *common, "--max_iters", "2"]) == 0
    halfway = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert (halfway["epoch"], halfway["epoch_samples"], halfway["total_iters"]) == (1, 4, 2)
    assert set(halfway["nets"]) == {"decoder", "sanet"}  # no encoder in the checkpoint
    resume = ["--name", "split", "--checkpoints_dir", str(tmp_path / "ck"), "--continue_train", "--max_iters", "4"]
    assert train.main(resume) == 0
    full, again = (load_checkpoint(tmp_path / f"ck/{name}/latest.pth") for name in ("full", "split"))
    assert again["total_iters"] == 4 and (again["epoch"], again["epoch_samples"]) == (2, 2)
    for part in ("nets", "optimizers", "schedulers", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)
    logs = {
        name: [json.loads(x) for x in (tmp_path / f"ck/{name}/loss_log.jsonl").read_text().splitlines()]
        for name in ("full", "split")
    }
    losses = {name: [r["losses"] for r in records if r["kind"] == "train"] for name, records in logs.items()}
    assert len(losses["full"]) == 4 and losses["full"] == losses["split"]
    assert set(losses["full"][0]) == {"content", "style", "identity1", "identity2"}
    web = (tmp_path / "ck/full/web/index.html").read_text()  # the last step's visuals, displayed
    assert all(f"images/epoch002_iter000004_{label}.png" in web for label in ("content", "style", "stylized"))


# ---- train.py then test.py --------------------------------------------------------------------


def read_png(path: Path) -> torch.Tensor:
    """A PNG as a (1, 3, H, W) tensor in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def test_train_then_test_stylises_each_content_with_each_style_or_a_blend(data: Path, tmp_path: Path) -> None:
    assert train.main([*train_args(data, tmp_path), "--seed", "1", "--max_iters", "2"]) == 0
    # a decoder whose output depends on its input, so that the results of two styles differ
    trained = create_model(parse_options([*train_args(data, tmp_path), "--seed", "1"]), torch.device("cpu"))
    responsive(trained)
    latest = tmp_path / "ck/run/latest.pth"
    save_checkpoint(latest, {**load_checkpoint(latest), "nets": trained.state_dict()["nets"]})
    # test.py rebuilds the run's encoder from opt.yaml (its --backbone_seed), whatever test.py's --seed
    tested = create_model(
        parse_options([*eval_args(data, tmp_path), "--seed", "9"], is_train=False), torch.device("cpu")
    )
    assert tested.variant == VARIANTS["none"] and not tested.is_train
    assert_same_state(trained.encoder.state_dict(), tested.encoder.state_dict(), "encoder")
    tested.load_networks(load_checkpoint(tmp_path / "ck/run/latest.pth")["nets"], "latest")

    assert test_script.main([*eval_args(data, tmp_path), "--style_size", "32"]) == 0
    images = tmp_path / "res/run/test_latest/images"
    results = sorted(p.name for p in images.glob("*_stylized.png"))
    assert results == [
        "0000__dots_stylized.png",
        "0000__waves_stylized.png",
        "odd__dots_stylized.png",
        "odd__waves_stylized.png",
    ]
    assert Image.open(images / "odd__waves_stylized.png").size == (53, 37)
    assert Image.open(images / "0000__dots_stylized.png").size == (40, 40)
    page = (tmp_path / "res/run/test_latest/index.html").read_text()
    assert all(f"images/{name}" in page for name in results)
    # the saved pixels are the model's stylisation of that content with that style
    content = read_png(data / "testA" / "odd.png")
    styles = create_dataset(parse_options([*eval_args(data, tmp_path), "--style_size", "32"], is_train=False), "test")
    waves = styles[3]["style"][0]
    expected = tested.stylize(content, [waves]).clamp(-1, 1)
    saved = read_png(images / "odd__waves_stylized.png")
    assert (saved - expected).abs().max() <= 1.01 / 127.5
    assert (saved - read_png(images / "odd__dots_stylized.png")).abs().max() > 2 / 127.5  # the style matters

    # --style_image a b --style_weights 0.7 0.3: one blended result per content image
    a, b = str(data / "testB" / "waves.png"), str(data / "testB" / "dots.png")
    blend = [*eval_args(data, tmp_path, results="blend"), "--style_image", a, b, "--style_weights", "0.7", "0.3"]
    assert test_script.main([*blend, "--style_size", "32"]) == 0
    blended = tmp_path / "blend/run/test_latest/images"
    assert sorted(p.name for p in blended.glob("*_stylized.png")) == [
        "0000__waves+dots_stylized.png",
        "odd__waves+dots_stylized.png",
    ]
    pair = create_dataset(parse_options([*blend, "--style_size", "32"], is_train=False), "test")[1]
    expected = tested.stylize(content, pair["style"], [0.7, 0.3]).clamp(-1, 1)
    saved = read_png(blended / "odd__waves+dots_stylized.png")
    assert saved.shape == (1, 3, 37, 53) and (saved - expected).abs().max() <= 1.01 / 127.5


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing style image", "test.py: error: --style_image {tmp}/nope.png does not exist"),
        (
            "weights do not match",
            "test.py: error: --style_weights gives 1 weight(s) for 2 style image(s): give one weight per style",
        ),
        ("negative weight", "test.py: error: --style_weights must be non-negative numbers, got 1.5 -0.5"),
        ("no styles", "test.py: error: no style images: give test.py --style_image PATH [PATH ...], or put"),
        ("alpha", "test.py: error: --alpha must be in [0, 1], got 1.5"),
        ("no trainB", "train.py: error: no style images found in {tmp}/data/trainB: --dataset_mode content_style"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(data: Path, tmp_path: Path, capsys, case: str, message: str) -> None:
    assert train.main([*train_args(data, tmp_path), "--seed", "0", "--max_iters", "0"]) == 0  # the initial weights
    waves, dots = str(data / "testB" / "waves.png"), str(data / "testB" / "dots.png")
    args = eval_args(data, tmp_path)
    if case == "missing style image":
        args += ["--style_image", waves, str(tmp_path / "nope.png")]
    elif case == "weights do not match":
        args += ["--style_image", waves, dots, "--style_weights", "1"]
    elif case == "negative weight":
        args += ["--style_image", waves, dots, "--style_weights", "1.5", "-0.5"]
    elif case == "no styles":
        (data / "testB" / "waves.png").unlink()
        (data / "testB" / "dots.png").unlink()
        (data / "testB").rmdir()
    elif case == "alpha":
        args += ["--alpha", "1.5"]
    capsys.readouterr()
    if case == "no trainB":
        for path in (data / "trainB").iterdir():
            path.unlink()
        status = train.main([*train_args(data, tmp_path, "other"), "--seed", "0", "--max_iters", "1"])
    else:
        status = test_script.main(args)
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message.format(tmp=tmp_path)), err
    assert not (tmp_path / "res").exists()
