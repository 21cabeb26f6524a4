"""Perceptual features and style-transfer losses (issue 11, part 1) and the documents' worked
examples. No VGG weights can be had offline here: backbones are random-initialised, and the
weight loading is tested with files written in torchvision's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from models.networks.perceptual import (
    BACKBONES,
    FeatureExtractor,
    adain,
    channel_mean_std,
    default_weights_path,
    perceptual_backbone,
    vgg_layer_names,
)
from models.style_losses import content_loss, gram_matrix, mean_std_loss, style_loss, total_variation
from util.errors import UserError

GATYS_STYLE = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
JOHNSON_STYLE = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def test_the_gram_example_of_the_documents() -> None:
    """F = [[1, 2], [3, 4]], one row per position and one column per channel as the documents
    write it: the Gram matrix of the channels is [[10, 14], [14, 20]]; the normalised one
    divides by C·H·W = 2·1·2."""
    per_position = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    features = per_position.T.reshape(1, 2, 1, 2)  # (N, C, H, W): channel 1 is (1, 3), channel 2 is (2, 4)
    assert gram_matrix(features, normalize=False).tolist() == [[[10.0, 14.0], [14.0, 20.0]]]
    assert gram_matrix(features).tolist() == [[[2.5, 3.5], [3.5, 5.0]]]


def test_instance_norm_of_the_documents_example_has_its_true_value() -> None:
    """x = [1, 2, 3], γ = 2, β = 0, ε = 1e-5: (x - 2) / sqrt(2/3 + ε) · 2 ≈ [-2.449, 0, 2.449]
    (the documents print ≈ [-1.732, 0, 1.732], which is neither the biased nor the unbiased
    normalisation times γ)."""
    norm = nn.InstanceNorm1d(1, affine=True, eps=1e-5)
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.zero_()
    out = norm(torch.tensor([[[1.0, 2.0, 3.0]]]))[0, 0]
    assert out.tolist() == pytest.approx([-2.449474, 0.0, 2.449474], abs=1e-5)
    assert not out.tolist() == pytest.approx([-1.732, 0.0, 1.732], abs=1e-2)


def test_vgg_layers_are_named_as_the_papers_name_them() -> None:
    vgg19 = perceptual_backbone("vgg19", random_init=True)
    convs = [n for n in vgg19.names if n.startswith("conv")]
    assert len(convs) == 16 and sum(n.startswith("pool") for n in vgg19.names) == 5
    assert convs[:3] == ["conv1_1", "conv1_2", "conv2_1"] and convs[-1] == "conv5_4"
    assert {"conv4_2", *GATYS_STYLE} <= set(vgg19.names)
    vgg16 = perceptual_backbone("vgg16", random_init=True)
    assert sum(n.startswith("conv") for n in vgg16.names) == 13
    assert {"relu2_2", *JOHNSON_STYLE} <= set(vgg16.names) and "conv5_4" not in vgg16.names
    assert set(BACKBONES.names()) == {"vgg16", "vgg19"}


def test_average_pooling_replaces_every_max_pooling() -> None:
    avg = perceptual_backbone("vgg19", pooling="avg", random_init=True)
    pools = [m for m in avg.features if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert len(pools) == 5 and all(isinstance(m, nn.AvgPool2d) and m.kernel_size == 2 for m in pools)
    x = torch.rand(1, 3, 16, 16)
    maxed = perceptual_backbone("vgg19", pooling="max", random_init=True)
    maxed.load_state_dict(avg.state_dict())
    a, m = avg(x, ["conv2_1"])["conv2_1"], maxed(x, ["conv2_1"])["conv2_1"]
    assert a.shape == m.shape == (1, 128, 8, 8) and not torch.allclose(a, m)
    with pytest.raises(UserError, match="pooling must be one of max, avg"):
        perceptual_backbone("vgg19", pooling="min", random_init=True)


def test_the_extractor_normalises_returns_the_layers_asked_for_and_stops_there() -> None:
    torch.manual_seed(0)
    extractor = perceptual_backbone("vgg16", random_init=True)
    calls = []
    for index, module in enumerate(extractor.features):
        module.register_forward_hook(lambda *_, i=index: calls.append(i))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = extractor(x, ["relu2_2", "relu1_2"])
    assert list(out) == ["relu2_2", "relu1_2"]
    assert out["relu1_2"].shape == (2, 64, 32, 32) and out["relu2_2"].shape == (2, 128, 16, 16)
    assert calls == list(range(extractor.names.index("relu2_2") + 1))  # nothing after relu2_2 ran
    # ImageNet normalisation first: the first conv sees (x - mean) / std
    first = extractor.features[0]
    expected = first(
        (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    )
    assert torch.allclose(extractor(x, ["conv1_1"])["conv1_1"], expected, atol=1e-6)
    # a convolution's output as it was, not rectified by the ReLU after it
    both = extractor(x, ["conv1_1", "relu1_1"])
    assert (both["conv1_1"] < 0).any() and torch.equal(both["relu1_1"], both["conv1_1"].clamp(min=0))
    # frozen weights, gradients reach the image
    out["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training
    with pytest.raises(UserError, match="no layer relu9_9 in this backbone"):
        extractor(x, ["relu9_9"])


def test_any_sequential_with_names_is_a_backbone() -> None:
    features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
    extractor = FeatureExtractor(features, ["c", "r", "p"], normalize=False)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(extractor(x, ["p"])["p"], features(x))
    with pytest.raises(ValueError, match="2 names for 3 modules"):
        FeatureExtractor(features, ["c", "r"])
    with pytest.raises(ValueError, match="unexpected module"):
        vgg_layer_names(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_weights_load_from_a_file_in_torchvisions_layout(tmp_path: Path, name: str) -> None:
    """Our VGG stacks have torchvision's parameter names and shapes (compared with torchvision's
    own model, built on the meta device: no memory, no init), so its ImageNet files load. A file
    of the whole network (features + classifier) and a features-only file load strictly; the
    result holds exactly those weights."""
    import torchvision.models

    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(weights=None).state_dict()
    ours = perceptual_backbone(name, random_init=True).features.state_dict()
    features = {k.removeprefix("features."): v.shape for k, v in theirs.items() if k.startswith("features.")}
    assert features == {k: v.shape for k, v in ours.items()}

    torch.manual_seed(1)
    source = perceptual_backbone(name, random_init=True).features.state_dict()
    whole, only = tmp_path / "whole.pth", tmp_path / "features.pth"
    torch.save({**{f"features.{k}": v for k, v in source.items()}, "classifier.0.weight": torch.zeros(2, 2)}, whole)
    torch.save(source, only)
    for path in (whole, only):
        loaded = perceptual_backbone(name, weights=path).features.state_dict()
        assert loaded.keys() == source.keys() and all(torch.equal(loaded[k], source[k]) for k in source)


def test_missing_or_wrong_weights_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(UserError) as missing:
        perceptual_backbone("vgg19")
    where = default_weights_path("vgg19")
    assert str(missing.value) == (
        f"no vgg19 weights: put torchvision's vgg19-dcbb9e9d.pth in {where.parent} or pass --vgg_weights PATH "
        "(nothing is downloaded)"
    )
    with pytest.raises(UserError, match="vgg19 weights .*nope.pth do not exist"):
        perceptual_backbone("vgg19", weights=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read vgg19 weights"):
        perceptual_backbone("vgg19", weights=garbage)
    other = tmp_path / "vgg16.pth"
    torch.save(perceptual_backbone("vgg16", random_init=True).features.state_dict(), other)
    with pytest.raises(UserError, match="is not a vgg19 state dict"):
        perceptual_backbone("vgg19", weights=other)
    # a file under torchvision's cache name whose hash does not match is not trusted
    where.parent.mkdir(parents=True)
    torch.save(perceptual_backbone("vgg19", random_init=True).features.state_dict(), where)
    with pytest.raises(UserError, match="SHA-256 does not start with dcbb9e9d"):
        perceptual_backbone("vgg19")


def test_style_and_content_losses_of_an_image_against_itself_are_zero() -> None:
    torch.manual_seed(2)
    extractor = perceptual_backbone("vgg19", random_init=True)
    image = torch.rand(1, 3, 32, 32)
    feats = extractor(image, ["conv4_2", *GATYS_STYLE])
    grams = {name: gram_matrix(feats[name]) for name in GATYS_STYLE}
    assert style_loss(feats, grams).item() == 0.0
    assert content_loss(feats["conv4_2"], feats["conv4_2"]).item() == 0.0
    assert mean_std_loss(feats, {name: feats[name] for name in GATYS_STYLE}).item() == 0.0
    other = extractor(torch.rand(1, 3, 32, 32), GATYS_STYLE)
    style_feats = {name: feats[name] for name in GATYS_STYLE}
    assert style_loss(other, grams).item() > 0 and mean_std_loss(other, style_feats).item() > 0
    weighted = style_loss(other, grams, {"conv1_1": 0.0, "conv2_1": 0.0, "conv3_1": 0.0, "conv4_1": 0.0})
    assert weighted.item() == pytest.approx(
        style_loss({"conv5_1": other["conv5_1"]}, {"conv5_1": grams["conv5_1"]}).item()
    )


def test_total_variation_of_a_constant_is_zero_and_of_a_step_is_its_height_over_the_rows() -> None:
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:, :] = 1.0  # one jump of 1 between rows 1 and 2: 4 of the 12 vertical differences
    assert total_variation(step).item() == pytest.approx(4 / 12)


def test_adain_gives_the_content_the_style_statistics() -> None:
    torch.manual_seed(3)
    content, style = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 5, 7) * 3 + 1
    out = adain(content, style)
    mean, std = channel_mean_std(out)
    style_mean, style_std = channel_mean_std(style)
    assert torch.allclose(mean, style_mean, atol=1e-5) and torch.allclose(std, style_std, atol=1e-3)
    normalised = (content - channel_mean_std(content)[0]) / channel_mean_std(content)[1]
    assert torch.allclose((out - style_mean) / style_std, normalised, atol=1e-4)  # the content's layout kept


def test_optimising_a_tiny_image_lowers_the_gatys_losses() -> None:
    """Gatys on a 24x24 image with a random VGG-19: a few L-BFGS steps from noise lower the
    content, style and total losses."""
    torch.manual_seed(4)
    extractor = perceptual_backbone("vgg19", pooling="avg", random_init=True)
    content, style = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    content_target = extractor(content, ["conv4_2"])["conv4_2"]
    grams = {name: gram_matrix(f) for name, f in extractor(style, GATYS_STYLE).items()}
    image = torch.rand(1, 3, 24, 24, requires_grad=True)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        feats = extractor(image, ["conv4_2", *GATYS_STYLE])
        return content_loss(feats["conv4_2"], content_target), style_loss(feats, grams)

    with torch.no_grad():
        before = [v.item() for v in losses()]

    def total() -> torch.Tensor:  # each loss relative to where it started (random features are tiny)
        c, s = losses()
        return c / before[0] + s / before[1]

    optimizer = torch.optim.LBFGS([image], max_iter=15)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = total()
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        after = [v.item() for v in losses()]
    assert after[0] < before[0] and after[1] < before[1], (before, after)
