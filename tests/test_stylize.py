"""stylize.py (Gatys et al.) end to end with a random-initialised VGG-19 (no weights can be had
offline), and its parts: scales, colour preservation, style blends, optimisers, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylize
from models.gatys import GatysConfig, rgb_to_yiq, scale_sizes
from models.gatys import stylize as run_gatys
from models.networks.perceptual import perceptual_backbone


def picture(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A smooth random colour picture (width, height) written as PNG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path, Path]:
    return (
        picture(tmp_path / "content.png", (40, 30), 1),
        picture(tmp_path / "a.png", (24, 24), 2),
        picture(tmp_path / "b.png", (20, 28), 3),
    )


def small_extractor():
    torch.manual_seed(0)
    return perceptual_backbone("vgg19", pooling="avg", random_init=True)


def test_the_command_line_writes_the_result_and_its_snapshots(images, tmp_path: Path) -> None:
    """Content 40x30 at --size 64 over 2 scales of 3 steps: a 64x48 result; snapshots every
    step at each scale's size, the last one being the result; the result is not the content."""
    content, style_a, style_b = images
    out = tmp_path / "out" / "result.png"
    argv = ["--content", str(content), "--style", str(style_a), str(style_b), "--style_weights", "2", "1"]
    argv += ["--output", str(out), "--size", "64", "--scales", "2", "--steps", "3", "--snapshot_every", "1"]
    assert stylize.main([*argv, "--random_backbone"]) == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (48, 64, 3)
    snapshots = sorted(p.name for p in out.parent.glob("result_s*.png"))
    assert snapshots == [f"result_s{scale}_{step}.png" for scale in (0, 1) for step in (1, 2, 3)]
    assert np.asarray(Image.open(out.parent / "result_s0_3.png")).shape == (24, 32, 3)
    assert np.array_equal(np.asarray(Image.open(out.parent / "result_s1_3.png")), result)
    resized_content = np.asarray(Image.open(content).resize((64, 48), Image.BILINEAR))
    assert np.abs(result.astype(int) - resized_content.astype(int)).mean() > 1


def test_scales_go_coarse_to_fine_by_halves() -> None:
    assert scale_sizes(100, 60, 3) == [(25, 15), (50, 30), (100, 60)]
    assert scale_sizes(100, 60, 1) == [(100, 60)]


def test_preserve_color_keeps_the_contents_chroma() -> None:
    torch.manual_seed(5)
    content, style = torch.rand(1, 3, 24, 24) * 0.5 + 0.25, torch.rand(1, 3, 24, 24)
    config = GatysConfig(steps=3, preserve_color=True)
    result = run_gatys(small_extractor(), content, [style], [1.0], config)
    iq, content_iq = rgb_to_yiq(result)[:, 1:], rgb_to_yiq(content)[:, 1:]
    assert torch.allclose(iq, content_iq, atol=1e-4)  # colours from the content: only Y was optimised
    plain = run_gatys(small_extractor(), content, [style], [1.0], GatysConfig(steps=3))
    assert not torch.allclose(rgb_to_yiq(plain)[:, 1:], content_iq, atol=1e-2)


def test_a_blend_with_weights_1_and_0_is_the_first_style_alone() -> None:
    torch.manual_seed(6)
    content, a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 20, 12)
    config = GatysConfig(steps=2)
    alone = run_gatys(small_extractor(), content, [a], [3.0], config)
    blended = run_gatys(small_extractor(), content, [a, b], [1.0, 0.0], config)
    assert torch.allclose(alone, blended, atol=1e-6)
    mixed = run_gatys(small_extractor(), content, [a, b], [1.0, 1.0], config)
    assert not torch.allclose(alone, mixed, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_both_optimisers_lower_the_loss_from_noise(optimizer: str) -> None:
    torch.manual_seed(7)
    content, style = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    totals: list[float] = []
    config = GatysConfig(steps=8, optimizer=optimizer, init="noise", style_weight=1e3, lr=0.05)
    run_gatys(
        small_extractor(),
        content,
        [style],
        [1.0],
        config,
        torch.Generator().manual_seed(0),
        lambda scale, step, image, losses: totals.append(losses["total"]),
    )
    assert len(totals) == 8 and totals[-1] < totals[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--style_weights", "1", "2"], "1 style image(s) but 2 --style_weights"),
        (["--output", "x.jpg"], "--output must be a .png file"),
        (["--steps", "0"], "--steps and --scales must be at least 1"),
        (["--size", "4"], "--size must be at least 16"),
        (["--gpu_ids", "0,1"], "stylize.py runs on one device"),
        (["--size", "32", "--scales", "2"], "the coarsest scale is 12 pixels on its shorter side"),
    ],
)
def test_bad_input_is_one_line(images, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    content, style, _ = images
    argv = ["--content", str(content), "--style", str(style), "--output", str(tmp_path / "o.png"), "--random_backbone"]
    assert stylize.main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"stylize.py: error: {message}"), err


def test_missing_images_and_weights_are_one_line_errors(images, tmp_path: Path, capsys, monkeypatch) -> None:
    content, style, _ = images
    assert stylize.main(["--content", str(tmp_path / "none.png"), "--style", str(style), "--random_backbone"]) == 2
    assert capsys.readouterr().err.strip() == f"stylize.py: error: image {tmp_path / 'none.png'} does not exist"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    assert stylize.main(["--content", str(content), "--style", str(style), "--output", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylize.py: error: no vgg19 weights: put torchvision's vgg19-dcbb9e9d.pth in ")
    assert "\n" not in err and not (tmp_path / "o.png").exists()
