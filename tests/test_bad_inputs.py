"""The bad-input matrix (issue 14, part 1): bad inputs x entry points, each with its exact outcome.

Every case ends one of two ways, and the test says which:

- a one-line error: exit status 2, stderr holds one ``<program>: error: ...`` line (argparse's own
  errors come under the project's one short usage line) that names the offending file or flag,
  and no traceback; a run folder's checkpoints and results are byte-identical afterwards;
- correct handling: the image is converted (the pixels are checked, not only the exit status), or
  the unreadable file is handled by ``data.readable``'s policy (training: replaced by the next
  item and warned once, stopping past ``--max_unreadable``; test: skipped and named).

``CASES`` counts the (bad input, entry point) pairs tried, for the report. Network faults of the
download scripts, their unknown names and unsafe archives are in tests/test_download.py; export's
unknown --net/--format/--epoch in tests/test_export.py; stylize.py's bad numbers in
tests/test_stylize.py: not repeated here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import export
import stylize
import test as test_script
import train
from data import create_dataset
from engine.checkpoint import load_checkpoint
from models.networks import define_G
from options import parse_options
from tests.conftest import QUIET_CPU, REPO_ROOT, TINY, assert_same_state, find_free_port, picture, write_images
from util.errors import UnreadableImage
from util.image import load_image

# ---- the bad files ----------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC, so only what it holds is wrong."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    return PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def good_png(seed: int = 0, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


# name -> (suffix, content): every way an image file of a scraped dataset can be unreadable
UNREADABLE: dict[str, tuple[str, Callable[[], bytes]]] = {
    # a valid header and valid CRCs around compressed data that is junk
    "corrupt": (
        ".png",
        lambda: (
            png_header(32, 32)
            + png_chunk(b"IDAT", np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
            + png_chunk(b"IEND", b"")
        ),
    ),
    "truncated": (".png", lambda: good_png(1)[: len(good_png(1)) * 6 // 10]),
    "empty": (".png", lambda: b""),
    "text_as_png": (".png", lambda: b"just some notes, saved under an image name\n"),
    "html_as_jpg": (".jpg", lambda: b"<!DOCTYPE html><html><head><title>404 Not Found</title></head></html>\n"),
    # a 66-byte file whose header claims 20000x20000 pixels: PIL's decompression-bomb limit refuses
    # it before allocating anything
    "bomb_header": (
        ".png",
        lambda: png_header(20000, 20000) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""),
    ),
}


def write_unreadable(folder: Path, prefix: str = "bad_") -> list[Path]:
    """One file of each ``UNREADABLE`` kind in ``folder``, named ``<prefix><kind><suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, (suffix, content) in UNREADABLE.items():
        path = folder / f"{prefix}{kind}{suffix}"
        path.write_bytes(content())
        paths.append(path)
    return paths


def rgb_noise(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` over white with ``alpha`` (0-255), as floats: what a viewer shows."""
    a = alpha.astype(np.float64)[..., None] / 255
    return rgb.astype(np.float64) * a + 255 * (1 - a)


# name -> writer(path without suffix) -> (file, the RGB pixels it must decode to, computed here
# independently of util.image). 12x8 pixels: multiples of 4, so --preprocess none keeps them.
def write_rgba(stem: Path) -> tuple[Path, np.ndarray]:
    rgb, alpha = rgb_noise(8, 12, 1), np.tile(np.linspace(0, 255, 12).astype(np.uint8), (8, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(stem.with_suffix(".png"))
    return stem.with_suffix(".png"), composite(rgb, alpha)


def write_la(stem: Path) -> tuple[Path, np.ndarray]:
    grey, alpha = rgb_noise(8, 12, 2)[..., 0], np.tile(np.linspace(255, 0, 8).astype(np.uint8)[:, None], (1, 12))
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(stem.with_suffix(".png"))
    return stem.with_suffix(".png"), composite(np.repeat(grey[..., None], 3, axis=2), alpha)


def write_palette(stem: Path) -> tuple[Path, np.ndarray]:
    colours = np.array([[0, 0, 0], [200, 30, 40], [20, 180, 60], [10, 20, 230]], dtype=np.uint8)
    index = np.random.default_rng(3).integers(0, 4, (8, 12)).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(colours.flatten().tolist())
    image.save(stem.with_suffix(".png"), transparency=0)  # palette entry 0 is transparent: white
    expected = colours[index].astype(np.float64)
    expected[index == 0] = 255
    return stem.with_suffix(".png"), expected


def write_16_bit(stem: Path) -> tuple[Path, np.ndarray]:
    values = np.tile(np.linspace(0, 65535, 12).astype(np.uint16), (8, 1))
    Image.fromarray(values).save(stem.with_suffix(".png"))  # mode I;16: PIL alone would clip at 255
    grey = values.astype(np.float64) / 65535 * 255
    return stem.with_suffix(".png"), np.repeat(grey[..., None], 3, axis=2)


def write_cmyk(stem: Path) -> tuple[Path, np.ndarray]:
    cmy = rgb_noise(8, 12, 4)
    Image.fromarray(np.dstack([cmy, np.zeros((8, 12), np.uint8)]), "CMYK").save(stem.with_suffix(".tif"))
    return stem.with_suffix(".tif"), 255.0 - cmy  # no black ink: each colour is 255 minus its ink


def write_exif_rotated(stem: Path) -> tuple[Path, np.ndarray]:
    stored = rgb_noise(8, 12, 5)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: shown rotated 90 degrees clockwise
    Image.fromarray(stored).save(stem.with_suffix(".png"), exif=exif.tobytes())
    return stem.with_suffix(".png"), np.rot90(stored, k=-1).astype(np.float64)  # 12 high, 8 wide


CONVERTIBLE: dict[str, Callable[[Path], tuple[Path, np.ndarray]]] = {
    "rgba": write_rgba,
    "la": write_la,
    "palette_transparent": write_palette,
    "16_bit": write_16_bit,
    "cmyk": write_cmyk,
    "exif_rotated": write_exif_rotated,
}


# ---- running the entry points ------------------------------------------------------------------------

CASES: list[str] = []  # "<bad input> x <entry point>", for the report


@pytest.fixture(scope="module", autouse=True)
def count_of_cases(request: pytest.FixtureRequest) -> None:
    """After the module: how many (bad input, entry point) pairs it tried (shown with -s)."""
    yield
    print(f"\nbad-input matrix: {len(CASES)} (bad input x entry point) cases tried")


def ran(capsys: pytest.CaptureFixture, main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (status, stdout, stderr). argparse's exit is a status too."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def the_error(err: str, program: str) -> str:
    """The one error line of ``err`` (under argparse's one usage line, when there is one)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) == 2 and lines[0] == f"usage: {program} [options]; {program} --help lists them":
        lines = lines[1:]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{program}: error: "), lines
    return lines[0]


def fails(capsys: pytest.CaptureFixture, main: Callable, program: str, argv: list[str], names: str, case: str) -> str:
    """``main(argv)`` exits with 2 and one error line that names ``names``; returns the line."""
    status, _, err = ran(capsys, main, argv)
    line = the_error(err, program)
    assert status == 2, (status, err)
    assert names in line, line
    CASES.append(f"{case} x {program}")
    return line


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``: what must survive a failed command unchanged."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_args(root: Path, ck: Path, name: str, *extra: str) -> list[str]:
    return ["--dataroot", str(root), "--name", name, "--checkpoints_dir", str(ck), *TINY, *extra]


# The architecture of a bare --model test generator (what scripts/download_cyclegan_model.sh fetches).
TEST_G = [
    "--model",
    "test",
    "--netG",
    "resnet_6blocks",
    "--ngf",
    "8",
    "--no_dropout",
    *QUIET_CPU[:2],
    "--gpu_ids",
    "-1",
]


def generator_run(ck: Path, name: str = "pretrained") -> Path:
    """``ck/<name>/latest_net_G.pth``: a bare state dict, as the reference's pretrained downloads."""
    torch.manual_seed(0)
    net = define_G("resnet_6blocks", 3, 3, 8, "instance", False)
    (ck / name).mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), ck / name / "latest_net_G.pth")
    return ck / name / "latest_net_G.pth"


# ---- images: unreadable kinds and the conversions -------------------------------------------------------


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_each_unreadable_kind_is_an_unreadable_image_naming_its_file(kind: str, tmp_path: Path) -> None:
    """The decoder's verdict on each kind: ``UnreadableImage`` (the type the policy acts on) naming
    the file and why. The bomb is refused from its header: nothing near 1.2 GB is allocated."""
    (path,) = [p for p in write_unreadable(tmp_path) if kind in p.name]
    with pytest.raises(UnreadableImage) as caught:
        load_image(path)
    assert caught.value.path == str(path) and str(caught.value).startswith(f"cannot read image {path}: ")
    expected = {
        "empty": "the file is empty (0 bytes)",
        "text_as_png": "not an image file",
        "html_as_jpg": "not an image file",
        "truncated": "truncated",
        "corrupt": "broken data stream",
        "bomb_header": "exceeds limit",
    }[kind]
    assert expected in caught.value.reason
    CASES.append(f"{kind} x util.image.load_image")


def test_converted_images_train_and_test_with_the_right_pixels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """RGBA / LA / palette with transparency / 16-bit / CMYK / EXIF-rotated files, a 1x1 and a 3x2
    image: training's items (the unaligned dataset, --preprocess none) and test.py's saved inputs
    (--model test, whole images) hold the pixels computed here independently (within 1 of 255 for
    PIL's integer compositing), and a real training run on them takes no warning."""
    root = tmp_path / "data"
    (root / "trainA").mkdir(parents=True)
    expected = {}
    for kind, writer in CONVERTIBLE.items():
        path, pixels = writer(root / "trainA" / kind)
        expected[path.stem] = pixels
    for stem, (w, h) in {"tiny_1x1": (1, 1), "tiny_3x2": (3, 2)}.items():  # smaller than any crop
        picture(root / "trainA" / f"{stem}.png", w, h, seed=w)
    write_images(root / "trainB", 2, seed=9)

    opt = parse_options(["--dataroot", str(root), "--preprocess", "none", "--no_flip", *QUIET_CPU, "--serial_batches"])
    data = create_dataset(opt)
    for i, path in enumerate(data.A_paths):
        if path.stem in expected:
            got = (data[i]["A"].permute(1, 2, 0).numpy() + 1) * 127.5
            assert got.shape == expected[path.stem].shape, path.stem
            assert np.abs(got - expected[path.stem]).max() <= 1.0 + 1e-3, path.stem
            CASES.append(f"{path.stem} x train.py (dataset item)")

    # training on them at the usual crop (the 1x1 and 3x2 images are resized up, as the reference does)
    status, _, err = ran(capsys, train.main, run_args(root, tmp_path / "ck", "conv", "--max_iters", "8"))
    assert status == 0 and "warning" not in err and "Traceback" not in err, err
    CASES.extend([f"{stem} x train.py (run)" for stem in [*expected, "tiny_1x1", "tiny_3x2"]])

    generator_run(tmp_path / "ck")
    argv = ["--dataroot", str(root / "trainA"), "--name", "pretrained", "--checkpoints_dir", str(tmp_path / "ck")]
    argv += ["--results_dir", str(tmp_path / "res"), *TEST_G, "--preprocess", "none"]
    status, _, err = ran(capsys, test_script.main, argv)
    assert status == 0 and "warning" not in err, err
    images = tmp_path / "res" / "pretrained" / "test_latest" / "images"
    for stem, pixels in expected.items():
        saved = np.asarray(Image.open(images / f"{stem}_real.png").convert("RGB"), dtype=np.float64)
        assert saved.shape == pixels.shape and np.abs(saved - pixels).max() <= 1.0 + 1e-3, stem
        assert Image.open(images / f"{stem}_fake.png").size == (pixels.shape[1], pixels.shape[0])
        CASES.append(f"{stem} x test.py --model test")
    for stem, size in {"tiny_1x1": (1, 1), "tiny_3x2": (3, 2)}.items():  # translated at their own size
        assert Image.open(images / f"{stem}_fake.png").size == size
        CASES.append(f"{stem} x test.py --model test")


# ---- the unreadable-image policy: training ------------------------------------------------------------


# The entry points of training, each with its data layout: where the bad files go, the good ones.
def cycle_gan_data(root: Path) -> tuple[Path, list[str]]:
    write_images(root / "trainA", 6, seed=1)
    write_images(root / "trainB", 3, seed=2)
    return root / "trainA", []


def pix2pix_data(root: Path) -> tuple[Path, list[str]]:
    for i in range(6):  # A | B side by side, one of them 65 px wide: the odd column is dropped
        picture(root / "train" / f"{i:04d}.png", 65 if i == 0 else 64, 32, seed=i)
    return root / "train", ["--model", "pix2pix"]


def colorization_data(root: Path) -> tuple[Path, list[str]]:
    write_images(root / "train", 6, seed=3)
    return root / "train", ["--model", "colorization"]


def cut_data(root: Path) -> tuple[Path, list[str]]:
    cycle_gan_data(root)
    return root / "trainA", ["--model", "cut", "--num_patches", "8", "--netF_nc", "16"]


def fast_style_data(root: Path) -> tuple[Path, list[str]]:
    write_images(root / "content", 6, size=40, seed=4)
    style = picture(root.parent / "style.png", 60, 45, seed=5)
    extra = ["--model", "fast_style", "--style_image", str(style), "--random_backbone", "--batch_size", "2"]
    return root / "content", extra


TRAINING = {
    "cycle_gan": cycle_gan_data,
    "pix2pix": pix2pix_data,
    "colorization": colorization_data,
    "cut": cut_data,
    "fast_style": fast_style_data,
}


def training_setup(tmp_path: Path, entry: str) -> tuple[list[str], list[Path]]:
    """(train.py arguments, the unreadable files) for ``entry``: 6 good items and 6 unreadable ones."""
    root = tmp_path / "data"
    folder, extra = TRAINING[entry](root)
    dataroot = folder if entry == "fast_style" else root
    bad = write_unreadable(folder)
    return [*run_args(dataroot, tmp_path / "ck", entry), *extra], bad


@pytest.mark.parametrize("entry", list(TRAINING))
def test_training_stops_on_unreadable_images_with_one_line_naming_one(
    entry: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """With the default --max_unreadable (1% of 12 items: none), the first unreadable file met
    ends training: exit 2, one line naming it, what was wrong and what to do."""
    argv, bad = training_setup(tmp_path, entry)
    status, _, err = ran(capsys, train.main, [*argv, "--max_iters", "12"])
    line = the_error(err, "train.py")
    assert status == 2
    named = re.match(r"train.py: error: cannot read image (\S+): ", line)
    assert named and Path(named.group(1)) in bad, line
    assert "(1 unreadable, more than the 0 that --max_unreadable 0.01 of 12 items allows: fix or remove them" in line
    CASES.append(f"{len(UNREADABLE)} unreadable kinds (the first met) x train.py --model {entry}")


@pytest.mark.parametrize("entry", ["cycle_gan", "pix2pix", "fast_style"])
def test_training_replaces_unreadable_images_and_warns_once_each(
    entry: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """With --max_unreadable 0.5 (6 of 12 items), two epochs train: each unreadable file is named
    in exactly one warning (not once per epoch, nor per replacement try), and every epoch's end
    counts the replaced items. pix2pix loads in a worker process (the default path): the failures
    travel with the batch to the main process, which warns."""
    argv, bad = training_setup(tmp_path, entry)
    if entry == "pix2pix":
        argv += ["--num_threads", "1"]
    batch = 2 if entry == "fast_style" else 1  # fast_style trains with batches of 2 here
    iters = 2 * 12 // batch
    status, out, err = ran(capsys, train.main, [*argv, "--max_unreadable", "0.5", "--max_iters", str(iters)])
    assert status == 0 and "Traceback" not in err, err
    warned = re.findall(r"^warning: cannot read image (\S+): .*; replaced by the next item$", err, flags=re.M)
    assert sorted(warned) == sorted(map(str, bad)), err
    counts = re.findall(r"epoch (\d+): (\d+) item\(s\) replaced this epoch: 6 unreadable file\(s\) so far", out)
    assert [epoch for epoch, _ in counts] == ["1", "2"] and all(int(n) >= 6 for _, n in counts), out
    assert load_checkpoint(tmp_path / "ck" / entry / "latest.pth")["total_iters"] == iters
    CASES.extend([f"{path.name} x train.py --model {entry} (replaced)" for path in bad])


def test_training_stops_once_more_files_than_allowed_are_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--max_unreadable 0.2 of 12 items allows 2: the third unreadable file met ends training with
    one error line naming it and the two before it, after a warning for each as it is met. (The
    bad files lie between good ones, so no single item runs out of replacements first.)"""
    root = tmp_path / "data"
    cycle_gan_data(root)
    bad = [write_unreadable(root / "trainA", prefix=f"{i:04d}_")[i] for i in range(6)]  # 0000.png, 0000_*, 0001.png ...
    for path in (root / "trainA").glob("*_*"):
        if path not in bad:
            path.unlink()
    argv = run_args(root, tmp_path / "ck", "cg")
    status, _, err = ran(capsys, train.main, [*argv, "--max_unreadable", "0.2", "--max_iters", "24"])
    *warnings, error = err.strip().splitlines()
    assert status == 2 and "Traceback" not in err
    warned = [re.match(r"warning: cannot read image (\S+): .*; replaced by the next item$", w) for w in warnings]
    assert len(warned) == 3 and all(warned), warnings  # each file named as it is met
    met = [Path(match.group(1)) for match in warned]  # type: ignore[union-attr]
    assert set(met) <= set(bad) and len(set(met)) == 3
    listed = re.match(
        r"train.py: error: cannot read image (\S+): .*; also unreadable: (\S+), (\S+) \(3 unreadable, ", error
    )
    assert listed and [Path(p) for p in listed.groups()] == met, error
    assert "more than the 2 that --max_unreadable 0.2 of 12 items allows" in error
    CASES.append("3 unreadable of 12 items x train.py --max_unreadable 0.2")


def test_replacement_keeps_exact_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The replacement rule depends only on the index and the files: a run with unreadable files,
    stopped mid-epoch and resumed with --continue_train, ends in the uninterrupted run's state."""
    root = tmp_path / "data"
    write_images(root / "trainA", 6, seed=1)
    write_images(root / "trainB", 3, seed=2)
    write_unreadable(root / "trainA", prefix="0002_")  # among the good ones in sorted order
    common = ["--max_unreadable", "0.5", "--seed", "3", "--n_epochs", "1", "--n_epochs_decay", "1"]
    assert ran(capsys, train.main, [*run_args(root, tmp_path / "ck", "full", *common), "--max_iters", "18"])[0] == 0
    split = run_args(root, tmp_path / "ck", "split", *common)
    assert ran(capsys, train.main, [*split, "--max_iters", "7"])[0] == 0
    assert ran(capsys, train.main, [*split, "--continue_train", "--max_iters", "18"])[0] == 0
    full, again = (load_checkpoint(tmp_path / "ck" / name / "latest.pth") for name in ("full", "split"))
    assert full["total_iters"] == again["total_iters"] == 18
    for part in ("nets", "optimizers", "schedulers", "pools", "rng", "tracker"):
        assert_same_state(full[part], again[part], part)


def test_a_failed_resume_loses_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Unreadable files added to a trained run's data: --continue_train stops with the one line
    and loses nothing: every checkpoint and every image of the run's web page byte-identical, the
    page's record (web/steps.json) still lists every earlier step, the logs only appended to (the
    attempt may have trained a step or two, and shown them, before it met an unreadable file)."""
    root = tmp_path / "data"
    cycle_gan_data(root)
    run = tmp_path / "ck" / "run"
    argv = run_args(root, tmp_path / "ck", "run", "--save_epoch_freq", "1", "--display_freq", "2")
    assert ran(capsys, train.main, [*argv, "--update_html_freq", "2", "--max_iters", "6"])[0] == 0
    before = digests(run)
    kept = {name: digest for name, digest in before.items() if name.endswith((".pth", ".png"))}
    assert {"latest.pth", "1.pth"} <= set(kept) and any(name.startswith("web/images/") for name in kept)
    logs = {name: (run / name).read_bytes() for name in ("loss_log.txt", "loss_log.jsonl")}
    steps = json.loads((run / "web" / "steps.json").read_text())
    write_unreadable(root / "trainA")
    resume = [*argv, "--update_html_freq", "2", "--continue_train", "--max_iters", "30"]
    fails(capsys, train.main, "train.py", resume, "cannot read image", "unreadable images x train.py --continue_train")
    after = digests(run)
    assert {name: after.get(name) for name in kept} == kept
    assert all(step in json.loads((run / "web" / "steps.json").read_text()) for step in steps)
    for name, old in logs.items():
        assert (run / name).read_bytes().startswith(old), name


# ---- the unreadable-image policy: test time ----------------------------------------------------------


def test_test_py_skips_and_names_unreadable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--model test on a folder of 3 good and 6 unreadable images: each bad one is named with its
    reason, the good ones are translated, a summary counts the skipped; a folder of nothing but
    unreadable files is one error line, and the earlier results are left as they were."""
    folder = tmp_path / "photos"
    write_images(folder, 3, seed=1)
    bad = write_unreadable(folder)
    generator_run(tmp_path / "ck")
    argv = ["--name", "pretrained", "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path / "res")]
    argv += TEST_G
    status, _, err = ran(capsys, test_script.main, ["--dataroot", str(folder), *argv])
    assert status == 0 and "Traceback" not in err, err
    warned = re.findall(r"^warning: cannot read image (\S+): .*; skipped$", err, flags=re.M)
    assert sorted(warned) == sorted(map(str, bad))
    assert f"warning: 6 unreadable image(s) of {folder} skipped (3 translated): " in err
    results = tmp_path / "res" / "pretrained" / "test_latest"
    assert sorted(p.name for p in (results / "images").glob("*_fake.png")) == [f"000{i}_fake.png" for i in range(3)]
    CASES.extend([f"{path.name} x test.py --model test (skipped)" for path in bad])

    before = digests(tmp_path / "res")
    only_bad = tmp_path / "junk"
    bad = write_unreadable(only_bad)
    status, _, err = ran(capsys, test_script.main, ["--dataroot", str(only_bad), *argv])
    *warnings, error = err.strip().splitlines()  # each file named as it is met, then the error
    assert status == 2 and "Traceback" not in err
    assert sorted(re.findall(r"^warning: cannot read image (\S+): .*; skipped$", "\n".join(warnings), flags=re.M)) == (
        sorted(map(str, bad))
    ) and len(warnings) == len(bad)
    assert error.startswith(f"test.py: error: none of the 6 images of {only_bad} can be read (first: ")
    assert digests(tmp_path / "res") == before  # the earlier results are untouched
    CASES.append("only unreadable images x test.py --model test")


def test_test_py_of_a_trained_run_skips_unreadable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """cycle_gan's test.py (testA and testB) and pix2pix's (aligned test/) skip the same way."""
    root = tmp_path / "data"
    cycle_gan_data(root)
    write_images(root / "testA", 2, seed=5)
    write_images(root / "testB", 2, seed=6)
    bad = write_unreadable(root / "testB")
    assert ran(capsys, train.main, run_args(root, tmp_path / "ck", "cg", "--max_iters", "2"))[0] == 0
    argv = ["--dataroot", str(root), "--name", "cg", "--checkpoints_dir", str(tmp_path / "ck")]
    argv += ["--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"]
    status, _, err = ran(capsys, test_script.main, argv)
    assert status == 0, err
    assert sorted(re.findall(r"^warning: cannot read image (\S+): .*; skipped$", err, flags=re.M)) == sorted(
        map(str, bad)
    )
    images = tmp_path / "res" / "cg" / "test_latest" / "images"
    assert len(list(images.glob("*_fake_B.png"))) == 2 and len(list(images.glob("*_fake_A.png"))) == 2
    CASES.extend([f"{path.name} x test.py --model cycle_gan (skipped)" for path in bad])

    p2p = tmp_path / "p2p"
    pix2pix_data(p2p)
    for i in range(2):
        picture(p2p / "test" / f"{i:04d}.png", 64, 32, seed=10 + i)
    bad = write_unreadable(p2p / "test")
    train_argv = ["--dataroot", str(p2p), "--name", "p2p", "--checkpoints_dir", str(tmp_path / "ck"), *TINY]
    assert ran(capsys, train.main, [*train_argv, "--model", "pix2pix", "--max_iters", "2"])[0] == 0
    argv = ["--dataroot", str(p2p), "--name", "p2p", "--checkpoints_dir", str(tmp_path / "ck")]
    status, _, err = ran(capsys, test_script.main, [*argv, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"])
    assert status == 0, err
    assert sorted(re.findall(r"^warning: cannot read image (\S+): .*; skipped$", err, flags=re.M)) == sorted(
        map(str, bad)
    )
    assert len(list((tmp_path / "res" / "p2p" / "test_latest" / "images").glob("*_fake_B.png"))) == 2
    CASES.extend([f"{path.name} x test.py --model pix2pix (skipped)" for path in bad])


@pytest.mark.parametrize("role", ["--content", "--style"])
def test_stylize_names_an_unreadable_image(role: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """stylize.py is given the images by name: an unreadable one is the one-line error, for every kind."""
    good = picture(tmp_path / "good.png", 32, 32, seed=1)
    for path in write_unreadable(tmp_path / "bad"):
        content, style = (path, good) if role == "--content" else (good, path)
        argv = [
            "--content",
            str(content),
            "--style",
            str(style),
            "--output",
            str(tmp_path / "o.png"),
            "--random_backbone",
        ]
        fails(capsys, stylize.main, "stylize.py", argv, f"cannot read image {path}: ", f"{path.name} as {role}")
    assert not (tmp_path / "o.png").exists()


def test_style_models_name_an_unreadable_style_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """fast_style's --style_image unreadable, each kind: one line naming it (the style is one
    image: nothing could replace it)."""
    content = tmp_path / "content"
    write_images(content, 2, size=40, seed=1)
    for path in write_unreadable(tmp_path / "styles"):
        argv = [*run_args(content, tmp_path / "ck", "fs"), "--model", "fast_style", "--style_image", str(path)]
        fails(
            capsys,
            train.main,
            "train.py",
            [*argv, "--random_backbone"],
            f"--style_image: cannot read image {path}",
            f"{path.name} as --style_image",
        )
    CASES.append("(the 6 kinds above) x train.py --model fast_style --style_image")


# ---- folders and layouts -------------------------------------------------------------------------------


def test_folder_problems_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An empty folder, a --dataroot that is a file, a missing trainB, an aligned folder that is
    missing, images smaller than the crop with --preprocess crop: one line each, naming it."""
    ck = tmp_path / "ck"
    empty = tmp_path / "empty"
    (empty / "trainA").mkdir(parents=True)
    write_images(empty / "trainB", 2)
    fails(
        capsys,
        train.main,
        "train.py",
        run_args(empty, ck, "e"),
        f"no images found in {empty / 'trainA'}",
        "empty trainA",
    )

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder\n")
    fails(capsys, train.main, "train.py", run_args(a_file, ck, "f"), str(a_file), "--dataroot is a file")
    fails(
        capsys,
        test_script.main,
        "test.py",
        [
            "--dataroot",
            str(a_file),
            "--name",
            "pretrained",
            "--checkpoints_dir",
            str(generator_run(ck).parents[1]),
            *TEST_G,
        ],
        str(a_file),
        "--dataroot is a file",
    )

    no_b = tmp_path / "no_b"
    write_images(no_b / "trainA", 2)
    fails(capsys, train.main, "train.py", run_args(no_b, ck, "b"), "trainB", "missing trainB")

    fails(
        capsys,
        train.main,
        "train.py",
        [*run_args(no_b, ck, "p"), "--model", "pix2pix"],
        str(no_b / "train"),
        "missing train/ (aligned)",
    )

    small = tmp_path / "small"
    for i, (w, h) in enumerate([(1, 1), (3, 2)]):
        picture(small / "trainA" / f"{i}.png", w, h, seed=i)
    write_images(small / "trainB", 2)
    line = fails(
        capsys,
        train.main,
        "train.py",
        [*run_args(small, ck, "s"), "--preprocess", "crop"],
        "is smaller than --crop_size 32",
        "1x1 and 3x2 images with --preprocess crop",
    )
    assert re.search(r"small/trainA/[01]\.png", line)


def test_aligned_mixed_sizes_and_odd_width_are_split_evenly(tmp_path: Path) -> None:
    """An aligned folder of A | B images of several sizes, one of odd width: each item's halves
    are the left and right w // 2 columns (the odd last column dropped), resized alike."""
    root = tmp_path / "aligned"
    sizes = [(65, 32), (64, 40), (81, 30)]
    for i, (w, h) in enumerate(sizes):
        picture(root / "train" / f"{i}.png", w, h, seed=i)
    opt = parse_options(
        [
            "--dataroot",
            str(root),
            "--model",
            "pix2pix",
            "--netG",
            "resnet_6blocks",
            "--preprocess",
            "none",
            "--no_flip",
            *QUIET_CPU,
        ]
    )
    data = create_dataset(opt)
    for i, (w, h) in enumerate(sizes):
        item = data[i]
        ab = np.asarray(Image.open(root / "train" / f"{i}.png").convert("RGB"))
        half = w // 2
        for key, columns in (("A", slice(0, half)), ("B", slice(half, 2 * half))):
            expected = Image.fromarray(np.ascontiguousarray(ab[:, columns]))
            size = (max(4, round(half / 4) * 4), max(4, round(h / 4) * 4))  # --preprocess none: multiples of 4
            expected = np.asarray(expected.resize(size, Image.BICUBIC) if expected.size != size else expected)
            got = ((item[key].permute(1, 2, 0).numpy() + 1) * 127.5).round()
            assert got.shape == expected.shape and np.abs(got - expected).max() <= 0.5, (i, key)
        CASES.append(f"aligned {w}x{h} x train.py --model pix2pix (dataset item)")


# ---- options: YAML and flags ------------------------------------------------------------------------------


YAML_CASES = {
    "syntax": ("name: [unclosed\n", "is not valid YAML"),
    "wrong_type": ("crop_size: large\n", "crop_size"),
    "unknown_key": ("crop_sise: 32\n", "crop_sise"),
    "not_a_mapping": ("- a\n- list\n", ".yaml"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
@pytest.mark.parametrize("program", ["train.py", "test.py"])
def test_bad_yaml_is_one_line(case: str, program: str, tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    text, names = YAML_CASES[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    main = train.main if program == "train.py" else test_script.main
    argv = [
        "--dataroot",
        str(tiny_dataset),
        "--name",
        "y",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--config",
        str(config),
    ]
    line = fails(capsys, main, program, argv, names, f"YAML {case}")
    if case == "syntax":
        assert str(config) in line


FLAG_CASES = {
    "misspelt flag": (["--crop_sise", "32"], "--crop_sise"),
    "negative load_size": (["--load_size", "-8"], "--load_size"),
    "negative batch_size": (["--batch_size", "-1"], "--batch_size"),
    "crop larger than load": (["--load_size", "32", "--crop_size", "64"], "--crop_size"),
    "unknown netG": (["--netG", "resnet_99blocks"], "resnet_99blocks"),
    "unknown model": (["--model", "cyclegann"], "cyclegann"),
    "unknown dataset_mode": (["--dataset_mode", "paired"], "paired"),
    "lr not a number": (["--lr", "fast"], "--lr"),
    "max_unreadable above 1": (["--max_unreadable", "2"], "--max_unreadable"),
    "config file missing": (["--config", "/nonexistent/run.yaml"], "/nonexistent/run.yaml"),
    "gpu_ids not numbers": (["--gpu_ids", "zero"], "--gpu_ids"),
    "abbreviated flag": (["--continue"], "--continue"),
    "num_threads negative": (["--num_threads", "-2"], "--num_threads"),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_bad_flags_are_one_line_naming_the_flag(case: str, tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    extra, names = FLAG_CASES[case]
    fails(capsys, train.main, "train.py", run_args(tiny_dataset, tmp_path / "ck", "f", *extra), names, case)
    if case != "max_unreadable above 1":  # a training flag
        argv = ["--dataroot", str(tiny_dataset), "--name", "f", "--checkpoints_dir", str(tmp_path / "ck")]
        fails(
            capsys, test_script.main, "test.py", [*argv, "--gpu_ids", "-1", *extra], names, case
        )  # extra last: it wins


# ---- checkpoints -------------------------------------------------------------------------------------------


class SideEffect:
    """Unpickling this runs ``os.system``-free Python that writes a file: proof the code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the pickle ran code"))


def bad_checkpoints(folder: Path, marker: Path) -> dict[str, bytes]:
    """name -> the bytes of a checkpoint file that must be refused."""
    torch.manual_seed(1)
    other = io.BytesIO()
    torch.save(define_G("unet_128", 3, 3, 8, "batch", False).state_dict(), other)  # another architecture
    real = io.BytesIO()
    torch.save(define_G("resnet_6blocks", 3, 3, 8, "instance", False).state_dict(), real)
    pickled = io.BytesIO()
    torch.save({"G": SideEffect(marker)}, pickled)
    return {
        "other_architecture": other.getvalue(),
        "truncated": real.getvalue()[: len(real.getvalue()) // 2],
        "empty": b"",
        "random_bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "pickled_code": pickled.getvalue(),
        "html_page": b"<!DOCTYPE html><html><body>Please log in to download this file</body></html>\n",
    }


CHECKPOINT_KINDS = ["other_architecture", "truncated", "empty", "random_bytes", "pickled_code", "html_page"]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_bad_checkpoints_are_refused_in_one_line(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A bad ``latest_net_G.pth`` for test.py and export.py, and a bad ``latest.pth`` for
    train.py --continue_train: one line naming the file; the pickled code never runs (its marker
    file never appears: weights_only refuses it); the run folder is byte-identical afterwards."""
    marker = tmp_path / "PWNED"
    content = bad_checkpoints(tmp_path, marker)[kind]
    if kind == "pickled_code":  # the payload is live: plain unpickling runs it (on another marker)
        live = tmp_path / "LIVE"
        pickle.loads(pickle.dumps(SideEffect(live)))
        assert live.read_text() == "the pickle ran code"
    folder = tmp_path / "photos"
    write_images(folder, 2)
    ck = tmp_path / "ck"
    net_file = generator_run(ck)
    net_file.write_bytes(content)
    before = digests(ck)
    argv = ["--name", "pretrained", "--checkpoints_dir", str(ck), *TEST_G]
    names = "latest_net_*.pth [G] does not fit the network" if kind == "other_architecture" else str(net_file)
    fails(
        capsys,
        test_script.main,
        "test.py",
        ["--dataroot", str(folder), *argv, "--results_dir", str(tmp_path / "res")],
        names,
        f"checkpoint {kind}",
    )
    fails(capsys, export.main, "export.py", [*argv, "--out", str(tmp_path / "out")], names, f"checkpoint {kind}")
    assert digests(ck) == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "res" / "pretrained" / "test_latest" / "images").exists()

    # train.py --continue_train of a run whose latest.pth is bad
    root = tmp_path / "data"
    cycle_gan_data(root)
    train_argv = run_args(root, ck, "run")
    assert ran(capsys, train.main, [*train_argv, "--max_iters", "1"])[0] == 0
    latest = ck / "run" / "latest.pth"
    latest.write_bytes(content if kind != "other_architecture" else _other_run_checkpoint(tmp_path, capsys))
    run_before = digests(ck / "run")
    fails(
        capsys,
        train.main,
        "train.py",
        [*train_argv, "--continue_train", "--max_iters", "3"],
        str(latest) if kind != "other_architecture" else "--continue_train cannot change --netG resnet_6blocks",
        f"checkpoint {kind}",
    )
    assert digests(ck / "run") == run_before
    assert not marker.exists()


def _other_run_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> bytes:
    """The latest.pth of a run of another architecture (resnet_9blocks, ngf 16)."""
    root = tmp_path / "data"
    argv = ["--dataroot", str(root), "--name", "other", "--checkpoints_dir", str(tmp_path / "other_ck"), *TINY]
    assert ran(capsys, train.main, [*argv, "--netG", "resnet_9blocks", "--ngf", "16", "--max_iters", "1"])[0] == 0
    return (tmp_path / "other_ck" / "other" / "latest.pth").read_bytes()


# ---- onnx, export output ---------------------------------------------------------------------------------


ONNX_INFO = '{"input_nc": 3, "output_nc": 3, "size_multiple": 4, "netG": "resnet_6blocks"}\n'


@pytest.mark.parametrize(
    ("kind", "content", "names"),
    [
        ("absent", None, "no such file"),
        ("empty", b"", "onnxruntime cannot load it"),
        ("text", b"not a model\n", "onnxruntime cannot load it"),
        ("truncated_json_beside", b"x", "not export.py's JSON"),
    ],
)
def test_bad_onnx_files_are_one_line(kind: str, content: bytes | None, names: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    write_images(folder, 2)
    model = tmp_path / "g.onnx"
    if content is not None:
        model.write_bytes(content)
        model.with_suffix(".json").write_text(ONNX_INFO if kind != "truncated_json_beside" else ONNX_INFO[:20])
    argv = ["--model", "onnx", "--onnx_model", str(model), "--dataroot", str(folder), "--name", "o"]
    line = fails(
        capsys,
        test_script.main,
        "test.py",
        [*argv, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1"],
        names,
        f"onnx {kind}",
    )
    assert str(model) in line or str(model.with_suffix(".json")) in line


def test_export_to_an_unwritable_place_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--out under a regular file (root ignores permissions; a file in the way stops it alike)."""
    ck = tmp_path / "ck"
    generator_run(ck)
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way\n")
    argv = ["--name", "pretrained", "--checkpoints_dir", str(ck), *TEST_G, "--format", "torchscript"]
    fails(capsys, export.main, "export.py", [*argv, "--out", str(blocker / "sub")], str(blocker), "--out under a file")


# ---- downloads and launchers --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../horse2zebra", "<img src=x onerror=alert(1)>", "horse2zebra.zip", ""])
def test_download_wrappers_refuse_odd_names_before_any_request(name: str, tmp_path: Path) -> None:
    """Names that are paths, markup, archive names or empty: exit 2, one line, nothing written,
    no network (the URL points at a closed port). Unknown names and network faults:
    tests/test_download.py."""
    env = {**os.environ, "CYCLEGAN_DATASETS_URL": f"http://127.0.0.1:{find_free_port()}"}
    result = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "scripts" / "download_cyclegan_dataset.sh"),
            name,
            "--datasets_dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert not (tmp_path / "d").exists()
    CASES.append(f"name {name!r} x scripts/download_cyclegan_dataset.sh")


def test_our_launcher_says_a_bad_flag_once(tiny_dataset: Path, tmp_path: Path) -> None:
    """train.py --nproc_per_node 2 with a bad --dataroot: one usage line and one error line, from
    the launching process, before any worker starts."""
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--dataroot",
            str(tmp_path / "nowhere"),
            "--gpu_ids",
            "-1",
            "--nproc_per_node",
            "2",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    line = the_error(result.stderr, "train.py")
    assert result.returncode == 2 and str(tmp_path / "nowhere") in line
    CASES.append("bad --dataroot x train.py --nproc_per_node 2")


@pytest.mark.distributed
@pytest.mark.parametrize(
    ("case", "extra", "names"),
    [("bad flag", ["--crop_sise", "8"], "--crop_sise"), ("bad dataroot", [], "nowhere")],
)
def test_torchrun_says_a_bad_flag_once(case: str, extra: list[str], names: str, tmp_path: Path) -> None:
    """torchrun with 2 processes and a bad flag or --dataroot: the processes print one error line
    between them (the first; the other keeps quiet and ends after it, so torchrun's summary names
    the first as the root cause, with our exit status 2) and no traceback of theirs. torchrun's
    own summary of the failed job follows; it cannot be switched off."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d"]
    launcher += ["--rdzv_endpoint", f"127.0.0.1:{find_free_port()}", "train.py"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    argv = ["--dataroot", str(tmp_path / "nowhere"), "--gpu_ids", "-1", *extra]
    result = subprocess.run(
        [*launcher, *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(errors) == 1 and names in errors[0], result.stderr
    assert result.stderr.count("usage: train.py") == 1
    assert (
        result.returncode != 0
        and "[rank0]: Traceback" not in result.stderr
        and "[rank1]: Traceback" not in result.stderr
    )
    assert not any(line.startswith('  File "') and "train.py" in line for line in result.stderr.splitlines())
    root_cause = result.stderr.split("Root Cause")[-1]
    assert "exitcode  : 2" in root_cause, root_cause
    CASES.append(f"{case} x torchrun --nproc_per_node 2 train.py")
