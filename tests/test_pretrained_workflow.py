"""The reference's pretrained-model workflow, its commands unchanged, against a local server.

    bash ./scripts/download_cyclegan_model.sh horse2zebra
    python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout

The "server" (tests/http_server.py, on 127.0.0.1) holds ``horse2zebra.pth``: a full-size
generator in the reference's layout (resnet_9blocks, ngf 64, instance norm, no dropout; 11,378,179
parameters), built by our network code with a fixed seed. The translations test.py writes must be
that generator's forward of each test image, to the 8-bit value.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.networks import define_G
from tests.conftest import REPO_ROOT, picture
from tests.http_server import FileServer


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer().start()
    yield srv
    srv.stop()


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
