"""Data: image files of every kind on disk, preprocessing, unaligned pairing, reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_dataset
from data.image_folder import load_image, make_dataset
from data.sampler import EpochSampler
from data.single_dataset import SingleDataset
from data.transforms import Preprocess, sample_rng
from options import parse_options
from tests.conftest import TINY, write_images
from util.errors import UserError


def test_extensions_any_case_sorted_recursive_and_limited(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.JpEg", "d.bmp", "e.webp", "f.tif", "g.TIFF", "sub/h.png"]:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(
            path,
            format={"jpg": "JPEG", "jpeg": "JPEG"}.get(
                path.suffix[1:].lower(), path.suffix[1:].upper().replace("TIF", "TIFF").replace("TIFFF", "TIFF")
            ),
        )
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in make_dataset(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "c.JpEg", "d.bmp", "e.webp", "f.tif", "g.TIFF", "sub/h.png"]
    assert len(make_dataset(tmp_path, max_dataset_size=3)) == 3
    for path in make_dataset(tmp_path):
        assert load_image(path).getpixel((4, 4))[2] in range(25, 36)  # decodes (jpeg is lossy)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :2, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = np.asarray(load_image(tmp_path / "a.png"))
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[0, 3]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    array = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(array[0, 0]) == (255, 255, 255) and tuple(array[1, 1]) == (0, 0, 255)


def test_16_bit_greyscale_keeps_its_range(tmp_path: Path) -> None:
    values = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as raw:
        assert raw.mode.startswith("I")
    array = np.asarray(load_image(tmp_path / "g16.png"))[..., 0]
    assert array.tolist() == [[0, 64], [128, 255]]  # PIL's plain convert would give [[0,255],[255,255]]


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    r, g, b = np.asarray(load_image(tmp_path / "c.jpg"))[4, 4]
    assert r > 200 and g < 60 and b < 60


def test_greyscale_channels_and_corrupt_file(tmp_path: Path) -> None:
    write_images(tmp_path, 1)
    assert load_image(tmp_path / "0000.png", channels=1).mode == "L"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        load_image(tmp_path / "broken.png")


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("resize_and_crop", (50, 30), (3, 32, 32)),
        ("crop", (50, 40), (3, 32, 32)),
        ("scale_width", (80, 40), (3, 32, 48)),  # width 48, height max(24, crop 32)
        ("scale_width_and_crop", (96, 48), (3, 32, 32)),
        ("none", (54, 29), (3, 28, 56)),  # sides rounded to multiples of 4
    ],
)
def test_preprocess_modes(mode: str, size: tuple[int, int], expected: tuple[int, int, int]) -> None:
    pre = Preprocess(mode=mode, load_size=48 if "scale" in mode else 40, crop_size=32, flip=True)
    img = Image.new("RGB", size, (255, 0, 0))
    out = pre(img, sample_rng(0, 0, 0))
    assert tuple(out.shape) == expected
    assert out.min() >= -1 and out.max() <= 1 and out[0].mean() == pytest.approx(1.0, abs=1e-4)


def test_flip_and_crop_follow_the_sample_rng() -> None:
    """Each output is the crop at the sampled position, mirrored exactly when the sampled flip
    says so (pixels compared: a sum cannot see a flip)."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # no symmetry: a flip moves pixels
    img = Image.fromarray(array)
    pre = Preprocess(mode="crop", load_size=64, crop_size=32, flip=True)
    flips, positions = [], set()
    for i in range(16):
        (x, y), flip = pre.sample(64, 64, sample_rng(0, 0, i))
        expected = array[y : y + 32, x : x + 32]
        expected = expected[:, ::-1] if flip else expected
        expected = torch.from_numpy(np.ascontiguousarray(expected).transpose(2, 0, 1).astype(np.float32) / 127.5 - 1)
        out = pre(img, sample_rng(0, 0, i))
        assert torch.equal(out, expected), i
        assert torch.equal(out, pre(img, sample_rng(0, 0, i)))  # same stream, same result
        flips.append(flip)
        positions.add((x, y))
    assert any(flips) and not all(flips) and len(positions) > 8
    no_flip = Preprocess(mode="crop", load_size=64, crop_size=32, flip=False)
    assert not any(no_flip.sample(64, 64, sample_rng(0, 0, i))[1] for i in range(16))
    test_pre = Preprocess(mode="resize_and_crop", load_size=64, crop_size=32, flip=False, random_crop=False)
    assert torch.equal(test_pre(img, sample_rng(0, 0, 1)), test_pre(img, sample_rng(9, 9, 9)))  # deterministic
    assert torch.equal(test_pre(img, sample_rng(0, 0, 1)), pre_centre(array))


def pre_centre(array: np.ndarray) -> torch.Tensor:
    centre = array[16:48, 16:48]
    return torch.from_numpy(np.ascontiguousarray(centre).transpose(2, 0, 1).astype(np.float32) / 127.5 - 1)


def test_unaligned_pairs_and_reproducibility(tiny_dataset: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset), "--seed", "7", "--crop_size", "32", "--load_size", "36"])
    ds = create_dataset(opt)
    assert len(ds) == 3  # max(|A|=3, |B|=2)
    item = ds[4 % 3]
    assert item["A"].shape == (3, 32, 32) and Path(item["A_paths"]).parent.name == "trainA"
    assert Path(item["B_paths"]).parent.name == "trainB"
    # B is drawn at random, but reproducibly per (seed, epoch, index)
    draws = {ds[0]["B_paths"] for ds.epoch in range(12)}
    assert len(draws) == 2
    ds.set_epoch(3)
    first = ds[1]
    assert torch.equal(first["A"], ds[1]["A"]) and first["B_paths"] == ds[1]["B_paths"]
    serial = create_dataset(opt.replace(serial_batches=True))
    assert [Path(serial[i]["B_paths"]).name for i in range(3)] == ["0000.png", "0001.png", "0000.png"]


def test_direction_swaps_domains_and_channels(tiny_dataset: Path) -> None:
    opt = parse_options(
        [
            "--dataroot",
            str(tiny_dataset),
            "--direction",
            "BtoA",
            "--input_nc",
            "1",
            "--crop_size",
            "32",
            "--load_size",
            "32",
            "--lambda_identity",
            "0",
        ]
    )
    item = create_dataset(opt)[0]
    assert Path(item["A_paths"]).parent.name == "trainB" and item["A"].shape[0] == 1
    assert Path(item["B_paths"]).parent.name == "trainA" and item["B"].shape[0] == 3


def test_single_dataset_and_empty_folder(tmp_path: Path, tiny_dataset: Path) -> None:
    opt = parse_options(["--dataroot", str(tiny_dataset / "testA"), "--model", "test"], is_train=False)
    ds = SingleDataset(opt)
    assert len(ds) == 3 and ds[0]["A"].shape == (3, 256, 256)
    assert create_dataset(opt, "test").paths == ds.paths  # test time: --dataroot itself
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        SingleDataset(opt.replace(dataroot=tmp_path / "empty"))


def test_test_split_goes_through_the_dataset_registry(tiny_dataset: Path) -> None:
    """create_dataset(opt, "test", side): unaligned data translates <phase>A for side A and
    <phase>B for side B, swapped by --direction BtoA, at the test-time size with no flips."""
    opt = parse_options(["--dataroot", str(tiny_dataset), "--crop_size", "32"], is_train=False)
    for direction, (a, b) in (("AtoB", ("testA", "testB")), ("BtoA", ("testB", "testA"))):
        view = opt.replace(direction=direction)
        side_a, side_b = create_dataset(view, "test", "A"), create_dataset(view, "test", "B")
        assert (side_a.folder.name, side_b.folder.name) == (a, b)
        assert [p.name for p in side_a.paths] == sorted(p.name for p in (tiny_dataset / a).iterdir())
        assert side_a[0]["A"].shape == (3, 32, 32) and torch.equal(side_a[0]["A"], side_a[0]["A"])
    with pytest.raises(UserError, match="testB does not exist: test.py translates testA/ and testB/"):
        (tiny_dataset / "testB").rename(tiny_dataset / "elsewhere")
        create_dataset(opt, "test", "B")


def test_sampler_order_is_seeded_and_resumable() -> None:
    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(full) == list(range(10)) and full != list(range(10))
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full
    assert list(EpochSampler(5, shuffle=False, seed=0)) == [0, 1, 2, 3, 4]


def test_sampler_shards_an_epoch_between_ranks() -> None:
    """DistributedSampler semantics: the order padded by repeating its start to a multiple of the
    world size, rank r takes every world-th index from r; together the ranks' k-th steps walk the
    one-process order; ``start`` counts this rank's samples; the order ignores the world size."""
    whole = EpochSampler(7, shuffle=True, seed=5)
    whole.set_epoch(4)
    order = list(whole)
    padded = order + order[:2]  # 7 -> 9 = 3 ranks x 3
    shards = []
    for rank in range(3):
        sampler = EpochSampler(7, shuffle=True, seed=5, rank=rank, world_size=3)
        sampler.set_epoch(4)
        shards.append(list(sampler))
        assert sampler.epoch_length == 3 and len(sampler) == 3 and shards[-1] == padded[rank::3]
        sampler.set_epoch(4, start=2)
        assert list(sampler) == shards[-1][2:] and len(sampler) == 1
    assert [shard[k] for k in range(3) for shard in shards] == padded
    # disjoint but for the 2 padding samples (the last of ranks 1 and 2), and all samples seen
    assert sorted(shards[0] + shards[1][:2] + shards[2][:2]) == list(range(7))
    # more ranks than samples: every rank still gets one, repeating the order
    assert [list(EpochSampler(2, shuffle=False, seed=0, rank=r, world_size=5)) for r in range(5)] == [
        [0],
        [1],
        [0],
        [1],
        [0],
    ]
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        EpochSampler(3, shuffle=False, seed=0, rank=2, world_size=2)


def test_every_random_stream_of_a_run_is_distinct(tiny_dataset: Path) -> None:
    """Epoch shuffles, image pools, the loader and the global generator never share a stream,
    whatever the seed: with ``seed + k`` offsets, seed 0's first epochs shuffled with the pools'."""
    from data import create_train_loader
    from models import create_model

    for seed in (0, 1, 2, 1_000_003):
        opt = parse_options(["--dataroot", str(tiny_dataset), "--seed", str(seed), *TINY])
        model = create_model(opt, torch.device("cpu"))
        loader, sampler = create_train_loader(create_dataset(opt), opt, torch.device("cpu"))
        seeds = {"global": seed, "loader": loader.generator.initial_seed()}
        seeds.update({f"pool {side}": pool.generator.initial_seed() for side, pool in model.pools.items()})
        for epoch in range(1, 201):
            sampler.set_epoch(epoch)
            seeds[f"shuffle {epoch}"] = sampler.generator().initial_seed()
        assert len(set(seeds.values())) == len(seeds), seed
    # per-sample augmentation streams differ between samples and epochs too
    draws = {(epoch, index): sample_rng(0, epoch, index).random() for epoch in range(3) for index in range(50)}
    assert len(set(draws.values())) == len(draws)


def test_training_testing_and_metrics_list_and_decode_images_alike(tmp_path: Path) -> None:
    """One decoder: the FID/KID real images are the files training reads (.ppm/.pgm included,
    sub-folders included) with the same pixels (EXIF orientation applied, alpha on white)."""
    from metrics.features import list_images as metric_images
    from metrics.features import load_image as metric_load

    folder = tmp_path / "testB"
    rng = np.random.default_rng(0)
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)).save(folder / "a.ppm")
    Image.fromarray(rng.integers(0, 256, (6, 10), dtype=np.uint8)).save(folder / "b.pgm")
    rgba = rng.integers(0, 256, (6, 10, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: white, not black
    Image.fromarray(rgba, "RGBA").save(folder / "c.png")
    rotated = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rotated.save(folder / "d.jpg", exif=exif, quality=100)
    (folder / "sub").mkdir()
    write_images(folder / "sub", 1)

    listed = make_dataset(folder)
    assert [p.relative_to(folder).as_posix() for p in listed] == ["a.ppm", "b.pgm", "c.png", "d.jpg", "sub/0000.png"]
    assert metric_images(folder) == listed
    for path in listed:
        expected = torch.from_numpy(np.asarray(load_image(path), dtype=np.float32).transpose(2, 0, 1) / 255)
        assert torch.equal(metric_load(path), expected), path.name
    assert metric_load(folder / "c.png").min() == 1.0  # transparent is white
    assert tuple(metric_load(folder / "d.jpg").shape) == (3, 10, 6)  # shown upright: 6 wide, 10 high
