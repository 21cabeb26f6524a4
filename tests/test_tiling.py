"""Tiled inference (models/tiling.py, BaseModel.generate, test.py --tile) and full-resolution
translation of any image size (--preprocess none at test time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import train
from models.networks import define_G
from models.tiling import measure_stats, pad_to_multiple, run_generator, run_tiled, tile_starts, tiled_stats
from tests.conftest import TINY, picture, write_images


def image_tensor(width: int, height: int, seed: int, tmp_path: Path) -> torch.Tensor:
    """A smooth random picture as a 1x3xHxW tensor in [-1, 1], as the datasets load it."""
    path = picture(tmp_path / f"p{seed}.png", width, height, seed)
    array = np.asarray(Image.open(path), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())[None]


def generator(name: str, norm: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return define_G(name, 3, 3, 8, norm, False, "normal", 0.02)


@torch.no_grad()
def test_shared_statistics_reproduce_the_whole_image_and_tiles_stay_close(tmp_path: Path) -> None:
    """ResNet with instance norm: one tile covering the image through the hooked path equals the
    plain forward (the hooks normalise exactly as InstanceNorm2d does); 128-px tiles with a 64-px
    overlap stay within bounds measured on this picture (max 0.082, mean 0.0021 in [-1, 1] units:
    the 9-block ResNet's receptive field is wider than the overlap, so the tiles' reflection
    padding at their edges is seen, a little, in the blend); naive tiles, each normalised by its
    own statistics, are several times worse, so the shared statistics are what makes tiles agree."""
    net = generator("resnet_9blocks", "instance")
    x = image_tensor(256, 192, 1, tmp_path)
    full = run_generator(net, x, 4)
    assert (run_tiled(net, x, 4, 256, 0) - full).abs().max() < 1e-5
    tiled = run_tiled(net, x, 4, 128, 64)
    naive = run_tiled(net, x, 4, 128, 64, shared_stats=False)
    error, naive_error = (tiled - full).abs(), (naive - full).abs()
    assert error.max() < 0.12 and error.mean() < 0.004, (error.max(), error.mean())
    assert naive_error.mean() > 5 * error.mean() and naive_error.max() > 2 * error.max()


@torch.no_grad()
def test_blend_leaves_no_seam(tmp_path: Path) -> None:
    """A seam is a jump between neighbouring pixels that the untiled output does not have. Tiles
    pasted edge to edge (overlap 0) have their worst such jumps at the line where they meet; the
    blend's worst jump is 20x smaller (measured 0.071 vs 1.41, against 1.8 for the untiled
    output's own largest jump between neighbours); and at the tiles' edges, where the blend's
    weights reach 0, the jumps are as small as the median elsewhere (float noise)."""
    net = generator("resnet_6blocks", "instance")
    x = image_tensor(256, 128, 2, tmp_path)
    full = run_generator(net, x, 4)

    def column_jumps(out: torch.Tensor) -> torch.Tensor:  # per column boundary: worst jump over rows
        error = out - full
        return (error[..., 1:] - error[..., :-1]).abs().amax(dim=(0, 1, 2))

    assert tile_starts(256, 128, 0, 4) == [0, 128] and tile_starts(256, 128, 64, 4) == [0, 64, 128]
    hard = column_jumps(run_tiled(net, x, 4, 128, 0))
    blended = column_jumps(run_tiled(net, x, 4, 128, 64))
    own = (full[..., 1:] - full[..., :-1]).abs().max()
    assert 119 <= int(hard.argmax()) <= 135  # the hard seam: between columns 127 and 128
    assert hard.max() > 10 * blended.max() and blended.max() < 0.1 * own
    assert blended[[63, 127, 191]].max() <= 10 * blended.median()


@torch.no_grad()
def test_unet_batch_norm_tiles(tmp_path: Path) -> None:
    """U-Net with batch norm: in eval mode (running statistics) tiles need no shared statistics
    and match to float precision relative to the output's scale; in train mode (test.py's default
    without --eval) batch statistics are shared like instance norm's, and naive tiles are worse."""
    net = generator("unet_128", "batch")
    x = image_tensor(384, 256, 3, tmp_path)
    net.eval()
    full = run_generator(net, x, 128)
    tiled = run_tiled(net, x, 128, 256, 128)
    assert (tiled - full).abs().max() < 0.05 * full.abs().max()
    net.train()
    full = run_generator(net, x, 128)
    shared = (run_tiled(net, x, 128, 256, 128) - full).abs().mean()
    naive = (run_tiled(net, x, 128, 256, 128, shared_stats=False) - full).abs().mean()
    assert naive > 1.5 * shared


@torch.no_grad()
def test_any_size_comes_back_at_its_size(tmp_path: Path) -> None:
    net = generator("resnet_6blocks", "instance")
    x = image_tensor(93, 70, 4, tmp_path)
    assert run_generator(net, x, 4).shape[-2:] == (70, 93)
    assert run_generator(net, x, 4, tile=32, overlap=16).shape[-2:] == (70, 93)
    assert run_generator(generator("unet_128", "batch").eval(), x, 128).shape[-2:] == (70, 93)


def sizes_dataset(root: Path) -> Path:
    write_images(root / "trainA", 2, seed=1)
    write_images(root / "trainB", 2, seed=2, tint=(1.0, 0.4, 0.4))
    for i, (w, h) in enumerate([(93, 70), (130, 96), (32, 32)]):
        picture(root / "testA" / f"a{i}.png", w, h, seed=10 + i)
    picture(root / "testB" / "b0.png", 51, 77, seed=20)
    return root


def test_folder_of_sizes_full_resolution_and_tiled_end_to_end(tmp_path: Path) -> None:
    """test.py --preprocess none translates a folder of different sizes at their own sizes (no
    resampling: the models pad and crop back), and --tile gives nearly the same pictures."""
    root = sizes_dataset(tmp_path / "sizes")
    common = ["--dataroot", str(root), "--name", "s", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    assert train.main([*common, *TINY, "--max_iters", "2", "--seed", "0"]) == 0
    test_args = [*common, "--preprocess", "none", "--test_batch_size", "2"]
    assert test_script.main([*test_args, "--results_dir", str(tmp_path / "full")]) == 0
    tile_args = ["--tile", "96", "--tile_overlap", "64", "--results_dir", str(tmp_path / "tiled")]
    assert test_script.main([*test_args, *tile_args]) == 0
    full_dir, tiled_dir = (tmp_path / d / "s/test_latest/images" for d in ("full", "tiled"))
    inputs = {p.stem: Image.open(p).size for side in ("testA", "testB") for p in (root / side).iterdir()}
    differences = {}
    for stem, size in inputs.items():
        side = "A" if stem.startswith("a") else "B"
        other = "B" if side == "A" else "A"
        real = np.asarray(Image.open(full_dir / f"{stem}_real_{side}.png"), dtype=np.int16)
        source = np.asarray(Image.open(root / f"test{side}" / f"{stem}.png"), dtype=np.int16)
        assert np.abs(real - source).max() <= 1  # the input itself, not resampled
        labels = (f"fake_{other}", f"rec_{side}")
        for label in labels:
            full = np.asarray(Image.open(full_dir / f"{stem}_{label}.png"), dtype=np.int16)
            tiled = np.asarray(Image.open(tiled_dir / f"{stem}_{label}.png"), dtype=np.int16)
            assert full.shape[:2] == tiled.shape[:2] == (size[1], size[0])
            differences[stem, label] = int(np.abs(full - tiled).max())
    # measured on a1 (130x96, two tiles; the others fit in one tile and are equal): 4 levels of 255 for
    # fake_B, 11 for rec_A, which is two tiled generators one after the other
    assert differences["a1", "fake_B"] <= 8 and differences["a1", "rec_A"] <= 16, differences
    assert (
        differences["a1", "fake_B"] > 0
        and sum(differences.values()) == differences["a1", "fake_B"] + differences["a1", "rec_A"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "30"], "--tile 30 must be a multiple of this network's size multiple 4"),
        (["--tile", "64", "--tile_overlap", "64"], "--tile_overlap 64 must be smaller than --tile 64"),
        (["--tile", "64", "--tile_overlap", "-1"], "must not be negative"),
    ],
)
def test_bad_tile_values_are_one_line_errors(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    root = sizes_dataset(tmp_path / "sizes")
    common = ["--dataroot", str(root), "--name", "s", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    assert train.main([*common, *TINY, "--max_iters", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    status = test_script.main([*common, "--results_dir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.png"))


@torch.no_grad()
def test_tile_by_tile_statistics_equal_whole_image_statistics(tmp_path: Path) -> None:
    """The exact, tile-by-tile statistics (the default) agree with one whole-image pass's for every
    layer (measured: means within 5e-4, variances within 0.6 %: tile-edge effects on the owned
    parts of deep layers); one whole-image pass (--tile_stats_size at least the image's side) gives
    the same tiles; a copy downscaled 4x gives statistics far enough off to be worse than none."""
    net = generator("resnet_9blocks", "instance")
    x = image_tensor(256, 192, 5, tmp_path)
    whole = measure_stats(net, x, 4)
    tiled = tiled_stats(net, pad_to_multiple(x, 4), 4, 128, 64)
    assert list(tiled) == list(whole) and len(whole) == 23  # every InstanceNorm, in execution order
    for layer, (mean, var) in whole.items():
        assert (tiled[layer][0] - mean).abs().max() < 2e-3 and ((tiled[layer][1] / var) - 1).abs().max() < 0.01
    full = run_generator(net, x, 4)
    exact = (run_tiled(net, x, 4, 128, 64) - full).abs().mean()
    assert (run_tiled(net, x, 4, 128, 64, stats_size=256) - full).abs().mean() < 1.05 * exact
    downscaled = (run_tiled(net, x, 4, 128, 64, stats_size=64) - full).abs().mean()
    naive = (run_tiled(net, x, 4, 128, 64, shared_stats=False) - full).abs().mean()
    assert downscaled > 5 * exact and naive > 5 * exact
