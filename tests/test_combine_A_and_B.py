"""scripts/combine_A_and_B.py: A | B images from paired folders, the reference's CLI, and a
pix2pix run on what it builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
import train
from data import create_dataset
from options import parse_options
from scripts.combine_A_and_B import main as combine_main
from tests.conftest import TINY


def noise(path: Path, width: int, height: int, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, dict[str, np.ndarray]]:
    """A/ and B/ with train/ (3 pairs, B wider than A; one A without B) and test/ (1 pair)."""
    images: dict[str, dict[str, np.ndarray]] = {"A": {}, "B": {}}
    for i, name in enumerate(("train/1.png", "train/2.png", "train/3.png", "test/9.png")):
        images["A"][name] = noise(tmp_path / "A" / name, 20, 16, seed=i)
        images["B"][name] = noise(tmp_path / "B" / name, 24, 16, seed=10 + i)
    images["A"]["train/lonely.png"] = noise(tmp_path / "A/train/lonely.png", 20, 16, seed=99)
    return images


def combine(tmp_path: Path, out: str, *flags: str) -> int:
    return combine_main(
        ["--fold_A", str(tmp_path / "A"), "--fold_B", str(tmp_path / "B"), "--fold_AB", str(tmp_path / out), *flags]
    )


def test_pairs_are_written_side_by_side_exactly(tmp_path: Path, folders, capsys) -> None:
    assert combine(tmp_path, "AB", "--no_multiprocessing") == 0
    out = capsys.readouterr().out
    for name in ("train/1.png", "train/2.png", "train/3.png", "test/9.png"):
        expected = np.concatenate([folders["A"][name], folders["B"][name]], axis=1)
        assert np.array_equal(read(tmp_path / "AB" / name), expected), name
    # the A image without a B is skipped, said and counted; nothing else is written (no temp files)
    assert f"skipped {tmp_path / 'A/train/lonely.png'}: no {tmp_path / 'B/train/lonely.png'}" in out
    assert "train: 3 pairs written" in out and "1 skipped" in out and "done: 4 pairs written, 1 skipped" in out
    assert sorted(p.name for p in (tmp_path / "AB/train").iterdir()) == ["1.png", "2.png", "3.png"]
    # with a process pool: the same files
    assert combine(tmp_path, "AB_pool") == 0
    for name in ("train/1.png", "train/2.png", "train/3.png", "test/9.png"):
        assert np.array_equal(read(tmp_path / "AB_pool" / name), read(tmp_path / "AB" / name))


def test_num_imgs_takes_the_first_names_of_each_split(tmp_path: Path, folders) -> None:
    assert combine(tmp_path, "AB", "--num_imgs", "2", "--no_multiprocessing") == 0
    assert sorted(p.name for p in (tmp_path / "AB/train").iterdir()) == ["1.png", "2.png"]
    assert sorted(p.name for p in (tmp_path / "AB/test").iterdir()) == ["9.png"]


def test_use_AB_pairs_suffixed_names_in_one_folder(tmp_path: Path) -> None:
    a = noise(tmp_path / "AB_in/train/x_A.png", 8, 8, seed=1)
    b = noise(tmp_path / "AB_in/train/x_B.png", 8, 8, seed=2)
    noise(tmp_path / "AB_in/train/y_A.png", 8, 8, seed=3)  # no y_B: skipped
    noise(tmp_path / "AB_in/train/other.png", 8, 8, seed=4)  # neither: ignored
    fold = str(tmp_path / "AB_in")
    assert combine_main(["--fold_A", fold, "--fold_B", fold, "--fold_AB", str(tmp_path / "out"), "--use_AB"]) == 0
    assert sorted(p.name for p in (tmp_path / "out/train").iterdir()) == ["x.png"]
    assert np.array_equal(read(tmp_path / "out/train/x.png"), np.concatenate([a, b], axis=1))


def test_bad_input_is_a_one_line_error(tmp_path: Path, folders, capsys) -> None:
    noise(tmp_path / "B/train/2.png", 24, 17, seed=5)  # another height
    assert combine(tmp_path, "AB", "--no_multiprocessing") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("combine_A_and_B.py: error: ")
    assert (
        f"{tmp_path / 'A/train/2.png'} (20x16) and {tmp_path / 'B/train/2.png'} (24x17) have different heights"
        in err[0]
    )
    assert combine_main(["--fold_A", str(tmp_path / "A"), "--fold_B", str(tmp_path / "nowhere"), "--fold_AB", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"combine_A_and_B.py: error: --fold_B {tmp_path / 'nowhere'} is not a directory"]


def test_pix2pix_trains_and_tests_on_the_folder_it_builds(tmp_path: Path, capsys) -> None:
    for split, count in (("train", 3), ("test", 2)):
        for i in range(count):
            noise(tmp_path / "A" / split / f"{i}.png", 32, 32, seed=i)
            noise(tmp_path / "B" / split / f"{i}.png", 32, 32, seed=50 + i)
    assert combine(tmp_path, "facades") == 0
    root = tmp_path / "facades"
    args = ["--dataroot", str(root), "--model", "pix2pix", "--name", "p", "--checkpoints_dir", str(tmp_path / "ck")]
    # the dataset reads back each A and its own B
    item = create_dataset(parse_options([*args, *TINY, "--preprocess", "none", "--no_flip"]), "train")[1]
    to_uint8 = lambda t: ((t + 1) * 127.5).round().permute(1, 2, 0).to(torch.uint8).numpy()  # noqa: E731
    assert np.array_equal(to_uint8(item["A"]), read(tmp_path / "A/train/1.png"))
    assert np.array_equal(to_uint8(item["B"]), read(tmp_path / "B/train/1.png"))
    assert train.main([*args, *TINY, "--max_iters", "3", "--seed", "1"]) == 0
    log = [json.loads(line) for line in (tmp_path / "ck/p/loss_log.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "train" and set(r["losses"]) == {"G_GAN", "G_L1", "D_real", "D_fake"} for r in log)
    test_args = [*args, "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1", "--num_threads", "0"]
    assert test_script.main([*test_args, "--metrics", "l1,psnr,ssim"]) == 0
    # the ground truth next to the results is B's own image
    assert np.array_equal(read(tmp_path / "res/p/test_latest/images/1_real_B.png"), read(tmp_path / "B/test/1.png"))
