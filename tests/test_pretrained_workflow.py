"""The reference's pretrained-model workflows, their commands unchanged, against a local server.

    bash ./scripts/download_cyclegan_model.sh horse2zebra
    python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout

    bash ./scripts/download_pix2pix_model.sh facades_label2photo
    python test.py --dataroot ./datasets/facades/ --direction BtoA --model pix2pix --name facades_label2photo_pretrained

The "server" (tests/http_server.py, on 127.0.0.1 instead of efrosgans.eecs.berkeley.edu) holds
the .pth file: a full-size generator in the reference's layout, built by our network code with a
fixed seed (resnet_9blocks, ngf 64, instance norm, no dropout: 11,378,179 parameters; unet_256,
ngf 64, batch norm, dropout: 54,413,955). The translations test.py writes must be that generator's
forward of each test image, to the 8-bit value. Only the environment is set: the venv's python
first on PATH, one thread, CUDA hidden (so test.py and the expected forward both run on the CPU),
the server's URL.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.networks import define_G
from tests.conftest import REPO_ROOT, picture
from tests.http_server import FileServer
from util.device import seed_everything


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """CHW in [-1, 1] -> HWC uint8, rounded to nearest."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.slow
def test_download_then_test_py_as_the_reference_documents_it(tmp_path: Path, server: FileServer) -> None:
    torch.manual_seed(2017)
    net = define_G("resnet_9blocks", 3, 3, 64, "instance", use_dropout=False)
    assert sum(p.numel() for p in net.parameters()) == 11_378_179
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    server.files["horse2zebra.pth"] = buffer.getvalue()
    stems = ["n02381460_1000", "n02381460_1010"]  # horse2zebra's naming; JPEG, as the dataset ships
    for seed, stem in enumerate(stems):
        picture(tmp_path / "datasets/horse2zebra/testA" / f"{stem}.jpg", 256, 256, seed=seed)

    # "python" is the venv's; CUDA hidden so that test.py and the expected forward below both run
    # on the CPU (on a GPU test.py would translate there, a few 8-bit levels away); the server
    # replaces efrosgans.eecs.berkeley.edu.
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "CYCLEGAN_MODELS_URL": server.url,
    }
    repo = shlex.quote(str(REPO_ROOT))
    download = shell(f"bash {repo}/scripts/download_cyclegan_model.sh horse2zebra", tmp_path, env)
    assert download.returncode == 0, download.stderr
    weights = tmp_path / "checkpoints/horse2zebra_pretrained/latest_net_G.pth"
    assert weights.read_bytes() == buffer.getvalue()
    command = (
        f"python {repo}/test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained "
        "--model test --no_dropout"
    )
    test = shell(command, tmp_path, env)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr
    assert f"loaded {Path('checkpoints/horse2zebra_pretrained')}/latest_net_*.pth\n" in test.stdout

    images = tmp_path / "results/horse2zebra_pretrained/test_latest/images"
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{s}_{k}.png" for s in stems for k in ("fake", "real"))
    net.eval()
    for stem in stems:
        source = np.asarray(Image.open(tmp_path / "datasets/horse2zebra/testA" / f"{stem}.jpg").convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(images / f"{stem}_real.png")), source)  # whole image, unscaled
        x = torch.from_numpy(source.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected = to_uint8(net(x)[0])
        fake = np.asarray(Image.open(images / f"{stem}_fake.png"))
        assert np.array_equal(fake, expected), f"{stem}: max difference {np.abs(fake.astype(int) - expected).max()}"


@pytest.mark.slow
def test_pix2pix_download_then_test_py_as_the_reference_documents_it(tmp_path: Path, server: FileServer) -> None:
    """bash ./scripts/download_pix2pix_model.sh facades_label2photo, then
    python test.py --dataroot ./datasets/facades/ --direction BtoA --model pix2pix --name facades_label2photo_pretrained

    A full-size unet_256 (ngf 64, batch norm, dropout: the reference's pix2pix). Without --eval,
    test.py translates in train mode as the reference does: batch statistics, and dropout drawn
    from the global RNG, which test.py seeds with --seed (random by default, printed with the options)."""
    torch.manual_seed(2016)
    net = define_G("unet_256", 3, 3, 64, "batch", use_dropout=True)
    assert sum(p.numel() for p in net.parameters()) == 54_413_955  # the reference prints "54.414 M"
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    server.files["facades_label2photo.pth"] = buffer.getvalue()
    stems = ["1", "2"]  # facades/test/ holds 1.jpg ... 106.jpg: photo (A) | labels (B), 256x256 each
    for seed, stem in enumerate(stems):
        picture(tmp_path / "datasets/facades/test" / f"{stem}.jpg", 512, 256, seed=10 + seed)

    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PIX2PIX_MODELS_URL": server.url,
    }
    repo = shlex.quote(str(REPO_ROOT))
    download = shell(f"bash {repo}/scripts/download_pix2pix_model.sh facades_label2photo", tmp_path, env)
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "checkpoints/facades_label2photo_pretrained/latest_net_G.pth").read_bytes() == buffer.getvalue()
    command = (
        f"python {repo}/test.py --dataroot ./datasets/facades/ --direction BtoA --model pix2pix "
        "--name facades_label2photo_pretrained"
    )
    test = shell(command, tmp_path, env)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr
    seed = int(re.search(r"^\s*seed: (\d+)", test.stdout, re.MULTILINE).group(1))

    images = tmp_path / "results/facades_label2photo_pretrained/test_latest/images"
    labels = ("fake_B", "real_A", "real_B")
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{s}_{k}.png" for s in stems for k in labels)
    # test.py's order of random draws: seed, the test DataLoader's base seed, then each forward's dropout
    seed_everything(seed)
    torch.empty((), dtype=torch.int64).random_()
    net.train()
    for stem in stems:
        pair = np.asarray(Image.open(tmp_path / "datasets/facades/test" / f"{stem}.jpg").convert("RGB"))
        labels_half, photo_half = pair[:, 256:], pair[:, :256]  # BtoA: the right half is the input
        assert np.array_equal(np.asarray(Image.open(images / f"{stem}_real_A.png")), labels_half)
        assert np.array_equal(np.asarray(Image.open(images / f"{stem}_real_B.png")), photo_half)
        x = torch.from_numpy(labels_half.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected = to_uint8(net(x)[0])
        fake = np.asarray(Image.open(images / f"{stem}_fake_B.png"))
        assert np.array_equal(fake, expected), f"{stem}: max difference {np.abs(fake.astype(int) - expected).max()}"
