"""The reference's example scripts and its dataset-script paths, run as a reference user runs them.

``scripts/{train,test}_{cyclegan,pix2pix,colorization}.sh`` and ``scripts/test_single.sh`` hold
the reference's example commands unchanged (flags given to a script are appended: here only
``--max_iters 1``, so that a full-size network trains one step on the CPU). ``datasets/`` holds
the reference's ``download_*_dataset.sh`` and ``combine_A_and_B.py`` paths. The runs happen in a
fresh working directory holding generated ``datasets/``; the environment only puts the venv's
python first and hides CUDA.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import REPO_ROOT, picture
from tests.http_server import FileServer
from tests.test_download import make_tar_gz, make_zip

REPO = shlex.quote(str(REPO_ROOT))


def environment(**extra: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "OMP_NUM_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "HOME": "/tmp",
        **extra,
    }


def shell(command: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=environment(**extra), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def results(folder: Path, label: str) -> list[str]:
    """The input stems of ``folder/*_<label>.png``."""
    return sorted(p.name[: -len(f"_{label}.png")] for p in folder.glob(f"*_{label}.png"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Generated datasets in the reference's layouts: maps (unaligned), facades built from A/ and
    B/ folders with datasets/combine_A_and_B.py (aligned, plus testB/ for test_single), colorization."""
    for side, seed in (("trainA", 0), ("trainB", 10), ("testA", 20), ("testB", 30)):
        for i in range(2):
            picture(tmp_path / "datasets/maps" / side / f"{i}.png", 64, 64, seed=seed + i)
    for split, seed in (("train", 40), ("test", 50)):
        for i in range(2):
            picture(tmp_path / "raw/A" / split / f"{i}.png", 64, 64, seed=seed + i)
            picture(tmp_path / "raw/B" / split / f"{i}.png", 64, 64, seed=seed + 5 + i)
    for i in range(2):
        picture(tmp_path / "datasets/facades/testB" / f"label_{i}.png", 64, 64, seed=60 + i)
    for split, seed in (("train", 70), ("test", 80)):
        for i in range(2):
            picture(tmp_path / "datasets/colorization" / split / f"{i}.png", 64, 64, seed=seed + i)
    return tmp_path


@pytest.mark.slow
def test_the_reference_example_scripts_train_and_test(workdir: Path) -> None:
    # pix2pix data the reference's way: python datasets/combine_A_and_B.py
    shell(
        f"python {REPO}/datasets/combine_A_and_B.py --fold_A raw/A --fold_B raw/B --fold_AB datasets/facades", workdir
    )
    for split in ("train", "test"):
        for i in range(2):
            pair = np.asarray(Image.open(workdir / "datasets/facades" / split / f"{i}.png"))
            a = np.asarray(Image.open(workdir / "raw/A" / split / f"{i}.png"))
            b = np.asarray(Image.open(workdir / "raw/B" / split / f"{i}.png"))
            assert np.array_equal(pair, np.concatenate([a, b], axis=1))

    # CycleGAN on maps
    shell(f"bash {REPO}/scripts/train_cyclegan.sh --max_iters 1", workdir)
    run = workdir / "checkpoints/maps_cyclegan"
    saved = yaml.safe_load((run / "opt.yaml").read_text())
    assert (saved["model"], saved["pool_size"], saved["no_dropout"], saved["netG"]) == (
        "cycle_gan",
        50,
        True,
        "resnet_9blocks",
    )
    state = torch.load(run / "latest.pth", map_location="cpu", weights_only=True)
    assert sorted(state["nets"]) == ["D_A", "D_B", "G_A", "G_B"] and state["total_iters"] == 1
    shell(f"bash {REPO}/scripts/test_cyclegan.sh", workdir)
    images = workdir / "results/maps_cyclegan/test_latest/images"
    for label in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"):
        assert results(images, label) == ["0", "1"], label
    assert size_of(images / "0_fake_B.png") == (256, 256)  # test.py loads at --crop_size, as the reference

    # pix2pix on facades, labels (B) -> photos (A)
    shell(f"bash {REPO}/scripts/train_pix2pix.sh --max_iters 1", workdir)
    saved = yaml.safe_load((workdir / "checkpoints/facades_pix2pix/opt.yaml").read_text())
    expected = {
        "model": "pix2pix",
        "netG": "unet_256",
        "direction": "BtoA",
        "lambda_L1": 100.0,
        "dataset_mode": "aligned",
        "norm": "batch",
        "pool_size": 0,
        "gan_mode": "vanilla",
        "no_dropout": False,
    }
    assert {key: saved[key] for key in expected} == expected
    shell(f"bash {REPO}/scripts/test_pix2pix.sh", workdir)
    images = workdir / "results/facades_pix2pix/test_latest/images"
    for label in ("real_A", "fake_B", "real_B"):
        assert results(images, label) == ["0", "1"], label
    # BtoA: the input is the right half (B), the truth the left half (A), both resized to 256
    left = Image.open(workdir / "raw/A/test/0.png").convert("RGB").resize((256, 256), Image.BICUBIC)
    assert np.array_equal(np.asarray(Image.open(images / "0_real_B.png").convert("RGB")), np.asarray(left))
    report = json.loads((workdir / "results/facades_pix2pix/test_latest/metrics.json").read_text())
    assert report["A"]["images"] == 2 and set(report["A"]["fake_B"]) == {"l1", "psnr", "ssim"}

    # the pix2pix generator alone on a folder (--model test --dataset_mode single)
    shell(f"bash {REPO}/scripts/test_single.sh", workdir)
    assert results(images, "fake") == ["label_0", "label_1"]

    # colorization
    shell(f"bash {REPO}/scripts/train_colorization.sh --max_iters 1", workdir)
    saved = yaml.safe_load((workdir / "checkpoints/color_pix2pix/opt.yaml").read_text())
    assert (saved["input_nc"], saved["output_nc"], saved["dataset_mode"]) == (1, 2, "colorization")
    shell(f"bash {REPO}/scripts/test_colorization.sh", workdir)
    images = workdir / "results/color_pix2pix/test_latest/images"
    for label in ("real_A", "real_B_rgb", "fake_B_rgb"):
        assert results(images, label) == ["0", "1"], label
    with Image.open(images / "0_fake_B_rgb.png") as fake:
        assert fake.mode == "RGB" and fake.size == (256, 256)


def test_the_reference_dataset_script_paths_download(tmp_path: Path, server: FileServer) -> None:
    """``bash ./datasets/download_pix2pix_dataset.sh facades`` (the reference's path) downloads and
    unpacks like ``scripts/download_pix2pix_dataset.sh``; the CycleGAN one likewise."""
    png = io.BytesIO()
    Image.new("RGB", (8, 4), (10, 20, 30)).save(png, format="PNG")
    server.files["facades.tar.gz"] = make_tar_gz({"facades/train/1.png": png.getvalue(), "facades/test/2.png": b"x"})
    shell(f"bash {REPO}/datasets/download_pix2pix_dataset.sh facades", tmp_path, PIX2PIX_DATASETS_URL=server.url)
    assert (tmp_path / "datasets/facades/train/1.png").read_bytes() == png.getvalue()
    assert (tmp_path / "datasets/facades/test/2.png").read_bytes() == b"x"

    make_zip(tmp_path / "mini.zip", {"mini/trainA/a.png": png.getvalue()})
    server.files["mini.zip"] = (tmp_path / "mini.zip").read_bytes()
    shell(f"bash {REPO}/datasets/download_cyclegan_dataset.sh mini", tmp_path, CYCLEGAN_DATASETS_URL=server.url)
    assert (tmp_path / "datasets/mini/trainA/a.png").read_bytes() == png.getvalue()
    assert [r.path for r in server.requests] == ["facades.tar.gz", "mini.zip"]
