"""Shared fixtures: tiny image datasets written to tmp_path, tiny training options, the
reference fixtures folder (tests that need it skip when ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
REFERENCE_FIXTURES = REPO.parent / "shared" / "fixtures" / "reference_ckpt"

# Options that make a CycleGAN run take a second or two on a CPU.
TINY = ["--ngf", "8", "--ndf", "8", "--netG", "resnet_6blocks", "--load_size", "36", "--crop_size", "32",
        "--num_threads", "0", "--display_id", "0", "--gpu_ids", "-1", "--print_freq", "2"]  # fmt: skip


def write_images(folder: Path, count: int, size: int = 32, seed: int = 0, tint: tuple = (1.0, 1.0, 1.0),
                 ext: str = ".png") -> list[Path]:  # fmt: skip
    """``count`` RGB images of smooth random blobs (so they compress and look like images)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.random((4, 4, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        array = np.asarray(img, dtype=np.float32) * np.asarray(tint, dtype=np.float32)
        path = folder / f"{i:04d}{ext}"
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """trainA/trainB/testA/testB of a few 32x32 images; B is a reddish version of A's style."""
    root = tmp_path / "tiny"
    write_images(root / "trainA", 3, seed=1)
    write_images(root / "trainB", 2, seed=2, tint=(1.0, 0.4, 0.4))
    write_images(root / "testA", 3, seed=3)
    write_images(root / "testB", 2, seed=4, tint=(1.0, 0.4, 0.4))
    return root


@pytest.fixture
def reference_fixtures() -> Path:
    if not REFERENCE_FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE_FIXTURES}")
    return REFERENCE_FIXTURES
