"""Style metrics (content_loss, style_loss): their values against a computation written out here
(a VGG-19 forward and the Gram/MSE by hand on the same weights), their zeros, blends, and test.py /
train.py --eval_freq with fast_style end to end, on a random VGG-19 (no weights exist offline)
and tiny images (32-40 px)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import test as test_script
import train
from data import create_dataset
from data.style_dataset import load_style_image
from data.transforms import to_tensor
from engine.evaluation import MetricScorer
from metrics import METRICS, StyleMetric, StyleScorer, evaluate_dirs
from models.networks.perceptual import perceptual_backbone
from options import parse_options
from tests.conftest import TINY, write_images
from tests.test_fast_style import TINY_STYLE, picture
from util.errors import UserError

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CPU = torch.device("cpu")


# ---- an independent computation -------------------------------------------------------------


def vgg19_by_hand(net: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """VGG-19's relu<b>_<i> activations computed with plain conv/relu/max-pool calls on ``net``'s
    convolution weights, in the order of the paper's configuration E (2, 2, 4, 4, 4 convolutions),
    after ImageNet normalisation of images in [0, 1]."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, out, k = (images - mean) / std, {}, 0
    for block, count in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, count + 1):
            x = F.relu(F.conv2d(x, convs[k].weight, convs[k].bias, padding=1))
            out[f"relu{block}_{i}"] = x
            k += 1
        x = F.max_pool2d(x, 2)
    return out


def gram_by_hand(features: torch.Tensor) -> torch.Tensor:
    c, h, w = features.shape[1:]
    return torch.einsum("ihw,jhw->ij", features[0], features[0]) / (c * h * w)


def content_by_hand(net: nn.Module, output: torch.Tensor, content: torch.Tensor) -> float:
    a, b = vgg19_by_hand(net, output[None])["relu4_1"], vgg19_by_hand(net, content[None])["relu4_1"]
    return (((a - b) ** 2).sum() / a.numel()).item()


def style_by_hand(net: nn.Module, output: torch.Tensor, styles: list[torch.Tensor], weights: list[float]) -> float:
    out = vgg19_by_hand(net, output[None])
    per_style = [vgg19_by_hand(net, s[None]) for s in styles]
    total = 0.0
    for layer in STYLE_LAYERS:
        target = sum(w * gram_by_hand(f[layer]) for w, f in zip(weights, per_style, strict=True))
        diff = gram_by_hand(out[layer]) - target
        total += ((diff**2).sum() / diff.numel()).item()
    return total


@pytest.fixture(scope="module")
def scorer() -> StyleScorer:
    """Both style metrics on the random VGG-19 that --random_backbone gives test.py."""
    with torch.no_grad():
        return MetricScorer(["content_loss", "style_loss"], CPU, random_backbone=True).style_scorer()


def images(seed: int, *shape: int) -> torch.Tensor:
    """Smooth random images in [0, 1] (upsampled noise: VGG features of some size at every layer)."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(shape[0], 3, 4, 4, generator=generator)
    return F.interpolate(small, size=shape[1:], mode="bilinear", align_corners=False)


# ---- the metrics ---------------------------------------------------------------------------


def test_the_style_metrics_are_registered_lower_is_better_with_their_protocol() -> None:
    for name in ("content_loss", "style_loss"):
        metric = METRICS.get(name)
        assert isinstance(metric, StyleMetric) and metric.kind == "style" and not metric.higher_is_better
        assert metric.backbone == "vgg19" and "C*H*W" in METRICS.get("style_loss").protocol
    assert METRICS.get("content_loss").content_layers == ("relu4_1",)
    assert METRICS.get("style_loss").style_layers == STYLE_LAYERS


def test_values_equal_a_computation_by_hand(scorer: StyleScorer) -> None:
    outputs, contents = images(0, 2, 32, 32), images(1, 2, 32, 32)
    style_a, style_b, style_c = images(2, 1, 40, 36)[0], images(3, 1, 32, 48)[0], images(4, 1, 32, 32)[0]
    styles = [[style_a, style_b], [style_c]]
    weights = [[0.3, 0.7], [1.0]]
    values = scorer.score(outputs, contents, styles, [["a.png", "b.png"], ["c.png"]], weights)
    net = scorer.net
    with torch.no_grad():
        for i in range(2):
            content = content_by_hand(net, outputs[i], contents[i])
            style = style_by_hand(net, outputs[i], styles[i], weights[i])
            assert values[i]["content_loss"] == pytest.approx(content, rel=1e-4)
            assert values[i]["style_loss"] == pytest.approx(style, rel=1e-4)
            assert content > 0 and style > 0
    # the blend is against the blended Gram, not the weighted sum of the two losses (which is larger)
    with torch.no_grad():
        separate = sum(
            w * style_by_hand(net, outputs[0], [s], [1.0]) for w, s in zip(weights[0], styles[0], strict=True)
        )
    assert separate > values[0]["style_loss"] * (1 + 1e-3)


def test_an_image_against_itself_scores_zero(scorer: StyleScorer) -> None:
    content, style = images(5, 2, 32, 32), images(6, 1, 32, 32)[0]
    # the content image as the output: content loss 0
    values = scorer.score(content, content, [[style], [style]], [["s.png"], ["s.png"]], [[1.0], [1.0]])
    assert [v["content_loss"] for v in values] == [0.0, 0.0]
    assert all(v["style_loss"] > 0 for v in values)
    # the style image as the output: style loss 0 (up to float rounding: the image went through the
    # network in another batch), against a clearly positive loss for another image
    values = scorer.score(style[None], content[:1], [[style]], [["s.png"]], [[1.0]])
    other = scorer.score(content[:1], content[:1], [[style]], [["s.png"]], [[1.0]])
    assert values[0]["style_loss"] <= 1e-6 * other[0]["style_loss"]


def test_a_blend_with_weights_one_and_zero_is_the_single_style(scorer: StyleScorer) -> None:
    output, content = images(7, 1, 32, 32), images(8, 1, 32, 32)
    style_a, style_b = images(9, 1, 36, 36)[0], images(10, 1, 32, 40)[0]
    single = scorer.score(output, content, [[style_a]], [["a.png"]], [[1.0]])[0]
    blend = scorer.score(output, content, [[style_a, style_b]], [["a.png", "b.png"]], [[1.0, 0.0]])[0]
    assert blend == pytest.approx(single, rel=1e-6)
    other = scorer.score(output, content, [[style_a, style_b]], [["a.png", "b.png"]], [[0.0, 1.0]])[0]
    assert other["style_loss"] != pytest.approx(single["style_loss"], rel=1e-3)  # the weights do count


def test_a_style_file_whose_pixels_change_is_not_served_from_the_cache(scorer: StyleScorer) -> None:
    output, content = images(11, 1, 32, 32), images(12, 1, 32, 32)
    first, second = images(13, 1, 32, 32)[0], images(14, 1, 32, 32)[0]
    one = scorer.score(output, content, [[first]], [["same.png"]], [[1.0]])[0]["style_loss"]
    two = scorer.score(output, content, [[second]], [["same.png"]], [[1.0]])[0]["style_loss"]
    with torch.no_grad():
        assert two == pytest.approx(style_by_hand(scorer.net, output[0], [second], [1.0]), rel=1e-4)
    assert one != pytest.approx(two, rel=1e-3)


@pytest.mark.parametrize(
    ("paths", "weights", "message"),
    [
        (["a.png"], [0.5], r"style weights \[0.5\] of a.png must be non-negative and sum to 1"),
        (["a.png"], [1.0, 0.0], r"1 style image\(s\), 1 style path\(s\) and 2 style weight\(s\)"),
    ],
)
def test_a_bad_blend_is_a_one_line_error(scorer: StyleScorer, paths, weights, message) -> None:
    output = images(15, 1, 32, 32)
    with pytest.raises(UserError, match=message):
        scorer.score(output, output, [[output[0]]], [paths], [weights])


def test_folders_cannot_be_scored_by_style_metrics(tmp_path: Path) -> None:
    write_images(tmp_path / "fake", 2)
    with pytest.raises(UserError, match="content_loss compare each output with its content and style images"):
        evaluate_dirs(tmp_path / "fake", tmp_path / "fake", ["content_loss"])


# ---- end to end with fast_style -------------------------------------------------------------------


@pytest.fixture
def style_run(tmp_path: Path) -> dict:
    """fast_style trained 2 epochs of 3 iterations (5 content images of 40x40, batch 2) with a
    random VGG, each epoch saved; a 60x45 style image."""
    content = tmp_path / "content"
    write_images(content, 5, size=40, seed=1)
    style = picture(tmp_path / "style.png", 60, 45, seed=2)
    ck = tmp_path / "ck"
    args = ["--dataroot", str(content), "--style_image", str(style), "--name", "run", "--checkpoints_dir", str(ck)]
    assert train.main([*args, *TINY_STYLE, "--seed", "0", "--save_epoch_freq", "1"]) == 0
    test_args = ["--dataroot", str(content), "--name", "run", "--checkpoints_dir", str(ck), "--gpu_ids", "-1"]
    return {"content": content, "style": style, "ck": ck, "train": args, "test": test_args, "tmp": tmp_path}


def expected_from_files(images_dir: Path, style: Path, net: nn.Module) -> dict[str, float]:
    """The metrics written out from the saved outputs and inputs (8-bit PNGs) and the style image at
    the run's --style_size (default --crop_size 32), averaged over the images."""
    style_image = (to_tensor(load_style_image(str(style), 3, 32)) + 1) / 2
    content_values, style_values = [], []
    for fake in sorted(images_dir.glob("*_fake_B.png")):
        real = Path(str(fake).replace("_fake_B", "_real_A"))
        output, content = (
            torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255).permute(2, 0, 1) for p in (fake, real)
        )
        with torch.no_grad():
            content_values.append(content_by_hand(net, output, content))
            style_values.append(style_by_hand(net, output, [style_image], [1.0]))
    assert len(content_values) == 5
    return {"content_loss": sum(content_values) / 5, "style_loss": sum(style_values) / 5}


def test_test_py_writes_the_style_metrics_and_ranks_checkpoints(style_run: dict, scorer: StyleScorer, capsys) -> None:
    results = style_run["tmp"] / "res"
    args = [*style_run["test"], "--results_dir", str(results), "--metrics", "content_loss,style_loss"]
    # the test items carry the run's style image (from its opt.yaml) at its --style_size
    opt = parse_options(args, is_train=False)
    assert opt.style_image == str(style_run["style"]) and opt.random_backbone
    item = create_dataset(opt, "test", "A")[0]
    assert item["style_paths"] == [str(style_run["style"])] and item["style_weights"] == [1.0]
    assert len(item["style"]) == 1 and item["style"][0].shape == (3, 32, 43)

    assert test_script.main(args) == 0
    out = results / "run" / "test_latest"
    report = json.loads((out / "metrics.json").read_text())["A"]["metrics"]
    assert report["direction"] == "AtoB" and report["images"] == 5 and report["styles"] == [str(style_run["style"])]
    expected = expected_from_files(out / "images", style_run["style"], scorer.net)
    assert report["values"] == pytest.approx(expected, rel=1e-4)
    protocol = report["style_protocol"]
    assert (
        "relu4_1" in protocol["content_loss"]
        and "relu1_1, relu2_1, relu3_1, relu4_1, relu5_1" in protocol["style_loss"]
    )
    assert protocol["vgg_weights"] == {"random_init": True, "seed": 0, "source": "--random_backbone"}

    # --epoch all: epochs 1 and 2 (latest holds epoch 2's networks), one record each, best vs last
    capsys.readouterr()
    assert test_script.main([*args, "--epoch", "all"]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (results / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["tag"] for r in records] == ["1", "2"]
    for record in records:
        values = record["metrics"]["AtoB"]
        assert set(values) == {"content_loss", "style_loss"} and all(
            math.isfinite(v) and v > 0 for v in values.values()
        )
        expected = expected_from_files(
            results / "run" / f"test_{record['tag']}" / "images", style_run["style"], scorer.net
        )
        assert values == pytest.approx(expected, rel=1e-4)
        assert record["protocol"]["vgg_weights"]["source"] == "--random_backbone"
        assert record["protocol"]["sets"]["AtoB"]["styles"] == [str(style_run["style"])]
    assert records[1]["metrics"]["AtoB"] == pytest.approx(report["values"], rel=1e-6)  # latest is epoch 2
    assert records[0]["metrics"] != records[1]["metrics"]
    summary = printed[printed.index("best vs last of 2 checkpoints") :].splitlines()
    assert "content_loss, style_loss: lower is better" in summary[0]
    for name in ("content_loss", "style_loss"):
        lines = [line.split() for line in summary if line.split()[:1] == [name]]
        assert len(lines) == 1, summary
        best = min(records, key=lambda r: r["metrics"]["AtoB"][name])
        assert lines[0][:4] == [name, "AtoB", "epoch", best["tag"]]
        assert lines[0][-2:] == ["2", f"{records[1]['metrics']['AtoB'][name]:.4g}"]
    assert (results / "run" / "metrics_style_loss.png").is_file()
    assert "content_loss_AtoB" in (results / "run" / "metrics.csv").read_text().splitlines()[0]


def test_eval_freq_scores_a_style_model_as_test_py_does(style_run: dict, tmp_path: Path) -> None:
    args = [*style_run["train"], *TINY_STYLE, "--seed", "0", "--save_epoch_freq", "1"]
    args[args.index("--name") + 1] = "evaluated"
    assert train.main([*args, "--eval_freq", "1", "--metrics", "style_loss,content_loss"]) == 0
    log = [json.loads(x) for x in (style_run["ck"] / "evaluated" / "loss_log.jsonl").read_text().splitlines()]
    logged = [r for r in log if r["kind"] == "metrics"]
    assert [r["epoch"] for r in logged] == [1, 2]
    assert all(set(r["metrics"]) == {"style_loss_AtoB", "content_loss_AtoB"} for r in logged)
    assert logged[0]["vgg_weights"]["source"] == "--random_backbone"
    # training is unchanged by it: the same weights as the run trained without evaluations
    plain = torch.load(style_run["ck"] / "run" / "latest.pth", weights_only=True)["nets"]["G"]
    evaluated = torch.load(style_run["ck"] / "evaluated" / "latest.pth", weights_only=True)["nets"]["G"]
    assert all(torch.equal(plain[k], evaluated[k]) for k in plain)
    # the same numbers as test.py --epoch all afterwards
    test_args = [*style_run["test"], "--results_dir", str(tmp_path / "res"), "--metrics", "content_loss,style_loss"]
    test_args[test_args.index("--name") + 1] = "evaluated"
    assert test_script.main([*test_args, "--epoch", "all"]) == 0
    records = [json.loads(x) for x in (tmp_path / "res" / "evaluated" / "metrics.jsonl").read_text().splitlines()]
    for record, during in zip(records, logged, strict=True):
        flat = {f"{k}_AtoB": v for k, v in record["metrics"]["AtoB"].items()}
        assert flat == pytest.approx(during["metrics"], rel=1e-5)


def test_vgg_weights_come_from_the_training_run_unless_given(style_run: dict, tmp_path: Path, capsys) -> None:
    """A file of (random) VGG-19 weights recorded by the run is what test.py's style metrics use,
    named with its SHA-256 in metrics.json; test.py --vgg_weights overrides it; a missing file is
    one line."""
    torch.manual_seed(1)
    vgg19 = perceptual_backbone("vgg19", random_init=True).features
    weights = tmp_path / "vgg19-test.pth"
    torch.save({f"features.{k}": v.half() for k, v in vgg19.state_dict().items()}, weights)  # half: a smaller file
    args = [*style_run["train"], *TINY_STYLE, "--seed", "0", "--vgg_weights", str(weights)]
    args[args.index("--name") + 1] = "recorded"  # trains on a random VGG-16; the file is only recorded
    assert train.main([*args, "--max_iters", "1"]) == 0
    real_vgg = tmp_path / "real.yaml"
    real_vgg.write_text("random_backbone: false\n")  # the run's --random_backbone would win otherwise
    test_args = [*style_run["test"], "--results_dir", str(tmp_path / "res"), "--metrics", "style_loss"]
    test_args[test_args.index("--name") + 1] = "recorded"
    assert test_script.main([*test_args, "--config", str(real_vgg)]) == 0
    report = json.loads((tmp_path / "res" / "recorded" / "test_latest" / "metrics.json").read_text())["A"]["metrics"]
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert report["style_protocol"]["vgg_weights"] == {
        "file": str(weights),
        "sha256": sha,
        "source": "the training run's --vgg_weights",
    }
    # the value is the one of those weights (loaded into float32), not of the random network
    loaded = perceptual_backbone("vgg19", weights)
    expected = expected_from_files(tmp_path / "res" / "recorded" / "test_latest" / "images", style_run["style"], loaded)
    assert report["values"]["style_loss"] == pytest.approx(expected["style_loss"], rel=1e-4)

    capsys.readouterr()
    missing = tmp_path / "nope.pth"
    assert test_script.main([*test_args, "--config", str(real_vgg), "--vgg_weights", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"test.py: error: --metrics style_loss: vgg19 weights {missing} do not exist (from --vgg_weights)"]


def test_a_style_metric_on_a_model_without_style_images_is_a_one_line_error(
    tiny_dataset: Path, tmp_path: Path, capsys
) -> None:
    ck = str(tmp_path / "ck")
    base = ["--dataroot", str(tiny_dataset), "--name", "cg", "--checkpoints_dir", ck]
    assert train.main([*base, *TINY, "--max_iters", "0"]) == 0  # a cycle_gan run (its initial weights)
    capsys.readouterr()
    args = [*base, "--gpu_ids", "-1", "--results_dir", str(tmp_path / "res"), "--metrics", "style_loss"]
    assert test_script.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "test.py: error: --metrics style_loss compare each output with its style image: the test images of "
        "--model cycle_gan (--dataset_mode unaligned) carry none"
    ]
    assert not (tmp_path / "res").exists()  # nothing was translated
    # train.py --eval_freq: refused before training
    assert train.main([*base, *TINY, "--name", "cg2", "--eval_freq", "1", "--metrics", "fid,content_loss"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: --metrics content_loss compare each output")
    assert not (tmp_path / "ck" / "cg2" / "latest.pth").exists()


def test_a_missing_style_image_stops_only_the_style_metrics(style_run: dict, tmp_path: Path, capsys) -> None:
    moved = style_run["style"].rename(tmp_path / "moved.png")
    assert moved.is_file()
    capsys.readouterr()
    args = [*style_run["test"], "--results_dir", str(tmp_path / "res")]
    assert test_script.main([*args, "--metrics", "content_loss,style_loss"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "test.py: error: --metrics content_loss,style_loss compare each output with its style image: "
        f"the style image {style_run['style']} (--style_image) no longer exists"
    ]
    assert not (tmp_path / "res").exists()
    assert test_script.main(args) == 0  # stylising needs no style image
    assert len(list((tmp_path / "res" / "run" / "test_latest" / "images").glob("*_fake_B.png"))) == 5
    # another style image given to test.py replaces the run's
    assert test_script.main([*args, "--metrics", "style_loss", "--style_image", str(moved)]) == 0
    report = json.loads((tmp_path / "res" / "run" / "test_latest" / "metrics.json").read_text())["A"]["metrics"]
    assert report["styles"] == [str(moved)] and report["values"]["style_loss"] > 0
