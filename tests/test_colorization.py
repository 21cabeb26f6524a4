"""Colorization: the dataset (``--dataset_mode colorization``: RGB -> Lab as scikit-image computes it,
after the crop and flip) and its options; the model (``--model colorization``: pix2pix from L to ab,
its images in RGB as scikit-image's lab2rgb gives them): training, exact resume, test.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color

import test as test_script
import train
from data import DATASETS, collate, create_dataset
from engine.checkpoint import load_checkpoint
from models import create_model
from options import parse_options
from tests.conftest import QUIET_CPU, TINY, assert_same_state, picture
from util.errors import UserError


def colour_folder(folder: Path, count: int, size: int = 40, seed: int = 0) -> list[Path]:
    """``count`` colourful pictures (smooth random colours; no symmetry a flip could hide behind)."""
    return [picture(folder / f"{i:03d}.png", size, size, seed + i) for i in range(count)]


def network_lab(rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's items from an HWC uint8 crop: skimage's Lab to float32, L / 50 - 1, ab / 110."""
    lab = torch.from_numpy(color.rgb2lab(rgb).astype(np.float32)).permute(2, 0, 1)
    return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


def matches(item: dict, rgb: np.ndarray) -> bool:
    light, ab = network_lab(rgb)
    return torch.allclose(item["A"], light, rtol=0, atol=1e-6) and torch.allclose(item["B"], ab, rtol=0, atol=1e-6)


def options(root: Path, *extra: str, is_train: bool = True):
    quiet = QUIET_CPU if is_train else ["--num_threads", "0", "--gpu_ids", "-1"]
    return parse_options(["--dataroot", str(root), "--dataset_mode", "colorization", *quiet, *extra], is_train)


def test_hook_sets_l_to_ab(tmp_path: Path) -> None:
    colour_folder(tmp_path / "train", 1)
    opt = options(tmp_path, "--model", "cycle_gan")
    assert (opt.input_nc, opt.output_nc, opt.direction) == (1, 2, "AtoB")
    assert opt.defaults["input_nc"] == 1 and opt.defaults["output_nc"] == 2  # the hook's defaults, not flags


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--input_nc", "3"], "--input_nc 3"),
        (["--output_nc", "3"], "--output_nc 3"),
        (["--direction", "BtoA"], "--direction BtoA"),
    ],
)
def test_conflicting_flags_are_one_line_errors(tmp_path: Path, capsys, flags: list[str], named: str) -> None:
    colour_folder(tmp_path / "train", 1)
    colour_folder(tmp_path / "test", 1)
    for is_train in (True, False):
        with pytest.raises(SystemExit) as exit_info:
            options(tmp_path, *flags, is_train=is_train)
        assert exit_info.value.code == 2
        error = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(error) == 1
        assert f"needs --input_nc 1 --output_nc 2 --direction AtoB, got {named}" in error[0]


def test_items_are_skimage_lab_of_the_random_crop_and_flip(tmp_path: Path) -> None:
    """Each training item is skimage's Lab (scaled) of one 32x32 crop of the 40x40 image, mirrored
    or not: found by trying every crop and flip of the source pixels. Over items and epochs,
    different crops and both flips occur, and the same (seed, epoch, index) gives the same item."""
    paths = colour_folder(tmp_path / "train", 3)
    opt = options(tmp_path, "--preprocess", "crop", "--crop_size", "32", "--seed", "3")
    dataset = create_dataset(opt)
    assert len(dataset) == 3
    seen = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(3):
            item = dataset[index]
            assert item["A"].shape == (1, 32, 32) and item["B"].shape == (2, 32, 32)
            assert item["A"].dtype == item["B"].dtype == torch.float32
            assert item["A_paths"] == item["B_paths"] == str(paths[index])
            source = np.asarray(Image.open(paths[index]).convert("RGB"))
            found = [
                (x, y, flip)
                for y in range(9)
                for x in range(9)
                for flip in (False, True)
                if matches(item, crop_of(source, x, y, flip))
            ]
            assert len(found) == 1, (epoch, index, found)
            seen.add(found[0])
            assert torch.equal(item["A"], dataset[index]["A"])
    assert len({(x, y) for x, y, _ in seen}) > 6 and {flip for *_, flip in seen} == {False, True}


def crop_of(source: np.ndarray, x: int, y: int, flip: bool) -> np.ndarray:
    crop = source[y : y + 32, x : x + 32]
    return np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def test_resize_happens_on_the_rgb_pixels(tmp_path: Path) -> None:
    """resize_and_crop: the 8-bit RGB image is resized (bicubic, as PIL) and cropped, then
    converted, as in the reference; not the Lab values resized."""
    path = colour_folder(tmp_path / "train", 1, size=50)[0]
    opt = options(tmp_path, "--load_size", "36", "--crop_size", "32", "--no_flip")
    item = create_dataset(opt)[0]
    resized = np.asarray(Image.open(path).convert("RGB").resize((36, 36), Image.BICUBIC))
    found = [(x, y) for y in range(5) for x in range(5) if matches(item, crop_of(resized, x, y, False))]
    assert len(found) == 1


def test_greyscale_and_rgba_sources_become_rgb_first(tmp_path: Path) -> None:
    """A greyscale file is its grey repeated in R, G and B (so ab is near 0); an RGBA file is
    composited on white (the project's decoder, util.image) before the conversion."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    (tmp_path / "train").mkdir()
    Image.fromarray(grey, "L").save(tmp_path / "train" / "a_grey.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "train" / "b_rgba.png")
    opt = options(tmp_path, "--preprocess", "none", "--no_flip")
    dataset = create_dataset(opt)
    grey_item, rgba_item = dataset[0], dataset[1]
    assert matches(grey_item, np.repeat(grey[:, :, None], 3, axis=2))
    assert grey_item["B"].abs().max() * 110 < 0.01  # |a|, |b| under 0.01
    alpha = rgba[..., 3:].astype(np.float64) / 255
    composited = rgba[..., :3] * alpha + 255 * (1 - alpha)
    light, ab = network_lab(composited.round().astype(np.uint8))
    # PIL composites in integers: a level off at most, well under 0.5 L or ab units
    assert (rgba_item["A"] - light).abs().max() * 50 < 0.5
    assert (rgba_item["B"] - ab).abs().max() * 110 < 1.0
    assert not matches(rgba_item, rgba[..., :3])  # the alpha was not simply dropped


def test_test_items_carry_the_true_colours(tmp_path: Path) -> None:
    """test.py's dataset: <dataroot>/test (--phase test), the centre, no flip, each item with its
    ground-truth ab channels as "B"."""
    colour_folder(tmp_path / "train", 1)
    paths = colour_folder(tmp_path / "test", 2, size=48, seed=10)
    opt = options(tmp_path, "--crop_size", "32", "--preprocess", "crop", is_train=False)
    dataset = create_dataset(opt, "test", "A")
    assert dataset.folder == tmp_path / "test" and dataset.paths == paths
    for index, path in enumerate(paths):
        item = dataset[index]
        source = np.asarray(Image.open(path).convert("RGB"))
        assert matches(item, crop_of(source, 8, 8, False))
    # FID/KID's real images of the colourised: the colour images themselves
    real = DATASETS.spec("colorization").real_folders(opt, "A", ["test", "train"])
    assert real == [tmp_path / "test", tmp_path / "train"]


def test_missing_or_empty_folders(tmp_path: Path) -> None:
    colour_folder(tmp_path / "train", 1)
    with pytest.raises(UserError, match=r"test does not exist: --dataset_mode colorization reads colour images"):
        create_dataset(options(tmp_path, is_train=False), "test", "A")
    (tmp_path / "test").mkdir()
    with pytest.raises(UserError, match="no images found"):
        create_dataset(options(tmp_path, is_train=False), "test", "A")


# ---- the model -------------------------------------------------------------------------------------


@pytest.fixture
def colour_dataset(tmp_path: Path) -> Path:
    """train/: 4 colourful 40x40 pictures; test/: 3 at 32x32 (the test-time size: no resize)."""
    root = tmp_path / "colour"
    colour_folder(root / "train", 4, size=40)
    colour_folder(root / "test", 3, size=32, seed=20)
    return root


def train_args(root: Path, tmp_path: Path, name: str = "run") -> list[str]:
    return [
        "--dataroot",
        str(root),
        "--model",
        "colorization",
        "--name",
        name,
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        *TINY,
    ]


def skimage_rgb(light: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The reference's display of one (L / 50 - 1, ab / 110) pair: skimage.color.lab2rgb on
    float64, in [-1, 1] here (CHW)."""
    lab = torch.cat([(light.double() + 1) * 50, ab.double() * 110]).permute(1, 2, 0).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative z clipped: G's early outputs are often out of gamut
        rgb = color.lab2rgb(lab)
    return torch.from_numpy(rgb).permute(2, 0, 1) * 2 - 1


def test_model_defaults_are_the_references(colour_dataset: Path, tmp_path: Path) -> None:
    opt = parse_options(["--dataroot", str(colour_dataset), "--model", "colorization", *QUIET_CPU])
    assert (opt.dataset_mode, opt.input_nc, opt.output_nc, opt.direction) == ("colorization", 1, 2, "AtoB")
    assert (opt.netG, opt.norm, opt.gan_mode, opt.pool_size, opt.lambda_L1) == ("unet_256", "batch", "vanilla", 0, 100)
    model = create_model(opt.replace(ngf=8, ndf=8), torch.device("cpu"))
    assert model.nets["G"](torch.zeros(1, 1, 256, 256)).shape == (1, 2, 256, 256)
    assert next(model.nets["D"].parameters()).shape[1] == 3  # D judges L and ab together


def test_model_refuses_data_that_is_not_l_and_ab(colour_dataset: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_options(["--dataroot", str(colour_dataset), "--model", "colorization", "--dataset_mode", "aligned"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "(--input_nc 1 --output_nc 2), got --input_nc 3 --output_nc 3 (--dataset_mode aligned)" in error


def test_visuals_and_inference_are_rgb_as_skimage_converts_them(colour_dataset: Path) -> None:
    """After a training step the visuals are real_A (the L input), real_B_rgb and fake_B_rgb in
    RGB, equal to skimage's lab2rgb of (L, true ab) and (L, G(L)); at test time the same labels,
    real_B_rgb only when the items carry the true ab."""
    opt = parse_options(["--dataroot", str(colour_dataset), "--model", "colorization", *TINY, "--no_dropout"])
    model = create_model(opt, torch.device("cpu"))
    dataset = create_dataset(opt)
    items = [dataset[0], dataset[1]]
    batch = collate(items)
    model.train()
    model.train_step(batch)
    shown = model.visuals()
    assert list(shown) == ["real_A", "real_B_rgb", "fake_B_rgb"]
    assert torch.equal(shown["real_A"], batch["A"])
    for i in range(2):
        expected = skimage_rgb(batch["A"][i], batch["B"][i]).float()
        assert torch.allclose(shown["real_B_rgb"][i], expected, atol=1e-6)
    assert shown["fake_B_rgb"].shape == (2, 3, 32, 32) and shown["fake_B_rgb"].dtype == torch.float32

    test_set = create_dataset(opt.replace(is_train=False, phase="test"), "test", "A")
    test_items = [test_set[0], test_set[1]]
    images = torch.stack([item["A"] for item in test_items])
    outputs = model.inference("A", images, items=test_items)
    assert list(outputs) == ["real_A", "real_B_rgb", "fake_B_rgb"]
    with torch.no_grad():
        fake_ab = model.nets["G"](images)  # train mode, no dropout: the same output again
    for i in range(2):
        assert torch.allclose(outputs["fake_B_rgb"][i], skimage_rgb(images[i], fake_ab[i]).float(), atol=1e-5)
        assert torch.allclose(outputs["real_B_rgb"][i], skimage_rgb(images[i], test_items[i]["B"]).float(), atol=1e-6)
    assert list(model.inference("A", images)) == ["real_A", "fake_B_rgb"]  # no items: no ground truth
    assert (model.translation_label("A"), model.ground_truth_label("A")) == ("fake_B_rgb", "real_B_rgb")


def test_training_resumes_exactly(colour_dataset: Path, tmp_path: Path) -> None:
    """Interrupted at iteration 2 (mid epoch 1 of 4 items) and resumed with --continue_train, the
    run ends where the uninterrupted one does: networks (batch norm statistics included),
    optimizers, schedules, random states, losses. Dropout on: its draws must resume too. (At a
    log step: the losses logged are means since the last log line, a window a checkpoint does not
    keep.)"""
    common = ["--n_epochs", "1", "--n_epochs_decay", "1", "--seed", "5", "--max_iters", "6"]
    assert train.main([*train_args(colour_dataset, tmp_path, "full"), *common]) == 0
    split = train_args(colour_dataset, tmp_path, "split")
    assert train.main([*split, *common[:-1], "2"]) == 0
    assert load_checkpoint(tmp_path / "ck/split/latest.pth")["total_iters"] == 2
    assert train.main([*split, "--continue_train", "--max_iters", "6"]) == 0
    full = load_checkpoint(tmp_path / "ck/full/latest.pth")
    again = load_checkpoint(tmp_path / "ck/split/latest.pth")
    assert again["total_iters"] == full["total_iters"] == 6
    assert set(full["nets"]) == {"G", "D"} and any("running_mean" in k for k in full["nets"]["G"])
    for part in ("nets", "optimizers", "schedulers", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)
    losses = {
        name: [
            r["losses"]
            for r in map(json.loads, (tmp_path / "ck" / name / "loss_log.jsonl").read_text().splitlines())
            if r["kind"] == "train"
        ]
        for name in ("full", "split")
    }
    assert losses["full"] == losses["split"] and set(losses["full"][0]) == {"G_GAN", "G_L1", "D_real", "D_fake"}


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_test_py_writes_rgb_results_and_scores_them_against_the_true_colours(
    colour_dataset: Path, tmp_path: Path
) -> None:
    """test.py on a colorization run: for every test image, real_A is its L channel as grey,
    real_B_rgb is the image itself (the Lab round trip is within 3.1e-4 of a level, measured, so
    8-bit rounding gives every pixel back), fake_B_rgb is skimage's lab2rgb of (L, G(L)) and has
    colour; the paired metrics compare fake_B_rgb with real_B_rgb, with the values the files give."""
    sources = sorted((colour_dataset / "test").iterdir())
    for path in sources:  # colourful test images, or real_B_rgb == source would prove little
        rgb = read_rgb(path)
        assert (rgb.max(2) - rgb.min(2)).mean() > 40
    args = [*train_args(colour_dataset, tmp_path), "--no_dropout", "--seed", "2"]
    assert train.main([*args, "--n_epochs", "1", "--n_epochs_decay", "0"]) == 0
    test_args = ["--dataroot", str(colour_dataset), "--name", "run", "--checkpoints_dir", str(tmp_path / "ck")]
    test_args += ["--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1", "--num_threads", "0"]
    assert test_script.main([*test_args, "--metrics", "l1,psnr,ssim"]) == 0
    out = tmp_path / "res" / "run" / "test_latest"
    images = out / "images"
    assert sorted(p.name for p in images.iterdir()) == sorted(
        f"{path.stem}_{label}.png" for path in sources for label in ("real_A", "real_B_rgb", "fake_B_rgb")
    )

    opt = parse_options(test_args, is_train=False)
    model = create_model(opt, torch.device("cpu"))
    model.load_networks(load_checkpoint(tmp_path / "ck/run/latest.pth")["nets"], "latest")
    model.train()  # as test.py (no --eval): batch norm on the image's own statistics
    test_set = create_dataset(opt, "test", "A")
    pairs = []
    for index, path in enumerate(sources):
        source = read_rgb(path)
        real_B = read_rgb(images / f"{path.stem}_real_B_rgb.png")
        assert np.array_equal(real_B, source), path.name
        light = color.rgb2lab(source.astype(np.uint8))[..., 0]
        grey = read_rgb(images / f"{path.stem}_real_A.png")
        assert np.abs(grey - np.round(light * 2.55)[..., None]).max() <= 1  # L / 50 - 1 shown as [-1, 1]
        with torch.no_grad():
            fake_ab = model.nets["G"](test_set[index]["A"][None])[0]
        expected = np.round((skimage_rgb(test_set[index]["A"], fake_ab).numpy().transpose(1, 2, 0) + 1) * 127.5)
        fake = read_rgb(images / f"{path.stem}_fake_B_rgb.png")
        assert np.abs(fake - expected).max() <= 1, path.name
        assert (fake.max(2) - fake.min(2)).mean() > 5  # it has colour: not the grey of real_A
        pairs.append((fake / 255.0, source / 255.0))

    report = json.loads((out / "metrics.json").read_text())
    values = report["A"]["metrics"]["values"]
    l1 = np.mean([np.abs(f - s).mean() for f, s in pairs])
    psnr = np.mean([10 * np.log10(1 / ((f - s) ** 2).mean()) for f, s in pairs])
    assert values["l1"] == pytest.approx(l1, abs=1e-6) and values["psnr"] == pytest.approx(psnr, abs=1e-4)
    assert 0 < values["ssim"] < 1
    assert report["A"]["fake_B_rgb"]["l1"] == pytest.approx(l1, abs=1e-6)  # the ground-truth table too
