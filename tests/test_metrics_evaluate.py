"""The METRICS registry, ``evaluate_dirs`` (unpaired and paired) and the feature cache.

Unpaired metrics run here on a tiny stand-in feature network, so these tests check the
plumbing (one extraction per folder, caching, pairing) in seconds; the real Inception network
is tested in test_metrics_inception.py and test_metrics_agreement.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from metrics_testutils import make_image_folder
from PIL import Image

import metrics
from metrics import METRICS, MetricError, PairedMetric, StyleMetric, UnpairedMetric, compute_metric, evaluate_dirs
from metrics.features import cache_key, cached_features, extract_features, list_images
from metrics.fid import fid_from_features
from metrics.kid import kid_from_features
from metrics.paired import l1, load_pair, psnr, ssim
from util.errors import UserError


class CountingNet(torch.nn.Module):
    """A stand-in feature network: 8 colour statistics per image, counting the images it sees."""

    feature_dim = 8

    def __init__(self, fingerprint: str = "counting-net-v1") -> None:
        super().__init__()
        self.images_seen = 0
        self._fingerprint = fingerprint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(x)
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3))[:, :2]], dim=1)

    def fingerprint(self) -> str:
        return self._fingerprint


# ------------------------------------------------------------------------------------ registry


def test_registry_lists_the_metrics_with_their_kinds():
    # the metrics this project ships, as the README lists them (a new one needs no edit here)
    shipped = {"fid": "unpaired", "kid": "unpaired", "l1": "paired", "psnr": "paired", "ssim": "paired"}
    shipped.update(content_loss="style", style_loss="style")
    assert {name: METRICS.get(name).kind for name in shipped} == shipped
    better = {name: METRICS.get(name).higher_is_better for name in shipped}
    assert better == {
        "fid": False,
        "kid": False,
        "l1": False,
        "psnr": True,
        "ssim": True,
        "content_loss": False,
        "style_loss": False,
    }
    assert METRICS.names() == sorted(METRICS.names()) and set(shipped) <= set(METRICS.names())
    for name in METRICS:
        metric = METRICS.get(name)
        assert isinstance(metric, UnpairedMetric | PairedMetric | StyleMetric) and metric.name == name


def test_unknown_metric_lists_the_valid_names(tmp_path: Path):
    make_image_folder(tmp_path, 2)
    with pytest.raises(UserError) as info:
        evaluate_dirs(tmp_path, tmp_path, ["fid", "lpips"])
    assert "lpips" in str(info.value)
    for name in METRICS.names():
        assert name in str(info.value)


def test_a_metric_name_cannot_be_registered_twice():
    with pytest.raises(KeyError, match="already registered"):
        metrics.register_metric(UnpairedMetric("fid", higher_is_better=False, compute=lambda a, b: {}))


# ------------------------------------------------------------------------------------- paired


@pytest.fixture()
def paired_folders(tmp_path: Path) -> tuple[Path, Path]:
    """test.py-style results (real_A / fake_B per stem) and a ground-truth folder with other
    extensions and, for one image, another resolution."""
    results, gt = tmp_path / "images", tmp_path / "gt"
    make_image_folder(results, 4, seed=1, name="photo{:02d}_fake_B.png")
    make_image_folder(results, 4, seed=2, name="photo{:02d}_real_A.png")  # must be ignored
    make_image_folder(gt, 3, seed=3, name="photo{:02d}.png")
    make_image_folder(gt, 1, seed=4, size=96, name="photo03.bmp")
    return results, gt


def test_paired_metrics_via_registry_match_paired_module(paired_folders: tuple[Path, Path]):
    results, gt = paired_folders
    got = evaluate_dirs(results, None, ["l1", "psnr", "ssim"], gt_dir=gt, fake_suffix="_fake_B")
    pairs = [(results / f"photo{i:02d}_fake_B.png", next(gt.glob(f"photo{i:02d}.*"))) for i in range(4)]
    loaded = [load_pair(pred, truth) for pred, truth in pairs]  # the tensor functions, applied by hand
    expected = {
        name: sum(fn(pred, truth).item() for pred, truth in loaded) / len(loaded)
        for name, fn in (("l1", l1), ("psnr", psnr), ("ssim", ssim))
    }
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12)


def test_paired_metric_needs_ground_truth_for_every_image(paired_folders: tuple[Path, Path]):
    results, gt = paired_folders
    (gt / "photo02.png").unlink()
    with pytest.raises(UserError, match="no ground truth.*photo02"):
        evaluate_dirs(results, None, ["l1"], gt_dir=gt, fake_suffix="_fake_B")
    with pytest.raises(UserError, match="gt_dir"):
        evaluate_dirs(results, None, ["psnr"])


def test_fake_suffix_that_matches_nothing_is_an_error(paired_folders: tuple[Path, Path]):
    results, gt = paired_folders
    with pytest.raises(UserError, match="_fake_A"):
        evaluate_dirs(results, None, ["l1"], gt_dir=gt, fake_suffix="_fake_A")


# ----------------------------------------------------------------------------------- unpaired


@pytest.fixture()
def unpaired_folders(tmp_path: Path) -> tuple[Path, Path]:
    fake, real = tmp_path / "fake", tmp_path / "real"
    make_image_folder(fake, 12, seed=5, tint=(1.0, 0.8, 0.6), name="x{:02d}_fake_B.png")
    make_image_folder(fake, 3, seed=6, name="x{:02d}_real_A.png")
    make_image_folder(real, 10, seed=7, name="r{:02d}.jpg")
    return fake, real


def test_fid_and_kid_share_one_extraction_per_folder(unpaired_folders: tuple[Path, Path]):
    fake, real = unpaired_folders
    net = CountingNet()
    got = evaluate_dirs(fake, real, ["fid", "kid"], fake_suffix="_fake_B", inception=net, batch_size=4)
    assert net.images_seen == 12 + 10
    fake_feats = extract_features(list_images(fake, "_fake_B"), net)
    real_feats = extract_features(list_images(real), net)
    assert got["fid"] == pytest.approx(fid_from_features(fake_feats, real_feats), rel=1e-6)
    kid, kid_std = kid_from_features(fake_feats, real_feats)
    assert got["kid"] == pytest.approx(kid, rel=1e-6)
    assert got["kid_std"] == pytest.approx(kid_std, rel=1e-6)
    assert set(got) == {"fid", "kid", "kid_std"}


def test_unpaired_metric_needs_real_images(unpaired_folders: tuple[Path, Path]):
    fake, _real = unpaired_folders
    with pytest.raises(UserError, match="real_dir"):
        evaluate_dirs(fake, None, ["kid"], inception=CountingNet())
    with pytest.raises(UserError, match="not found"):
        evaluate_dirs(fake, fake / "missing", ["kid"], inception=CountingNet())


def test_all_metrics_in_one_call(tmp_path: Path):
    fake, gt = tmp_path / "fake", tmp_path / "gt"
    make_image_folder(fake, 5, seed=8, name="{:02d}_fake_B.png")
    make_image_folder(gt, 5, seed=9, name="{:02d}.png")
    shipped = ["fid", "kid", "l1", "psnr", "ssim"]
    got = evaluate_dirs(fake, gt, shipped, gt_dir=gt, fake_suffix="_fake_B", inception=CountingNet())
    assert set(got) == {"fid", "kid", "kid_std", "l1", "psnr", "ssim"}
    # the values are those of each metric computed on its own, from its own function
    net = CountingNet()
    fake_feats, real_feats = extract_features(list_images(fake, "_fake_B"), net), extract_features(list_images(gt), net)
    assert got["fid"] == pytest.approx(fid_from_features(fake_feats, real_feats), rel=1e-12)
    assert (got["kid"], got["kid_std"]) == pytest.approx(kid_from_features(fake_feats, real_feats), rel=1e-12)
    pairs = [load_pair(fake / f"{i:02d}_fake_B.png", gt / f"{i:02d}.png") for i in range(5)]
    for name, fn in (("l1", l1), ("psnr", psnr), ("ssim", ssim)):
        assert got[name] == pytest.approx(np.mean([fn(p, t).item() for p, t in pairs]), rel=1e-12), name
    assert got["fid"] > 0 and got["l1"] > 0  # different images: non-trivial values


class NaNNet(CountingNet):
    """A feature network gone wrong (e.g. NaN weights): NaN features for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), self.feature_dim), float("nan"))


def test_non_finite_features_are_a_clear_error(unpaired_folders: tuple[Path, Path]):
    fake, real = unpaired_folders
    # KID alone would silently report NaN
    with pytest.raises(UserError, match=f"features of {fake} contain NaN or inf"):
        evaluate_dirs(fake, real, ["kid"], fake_suffix="_fake_B", inception=NaNNet())


def test_a_metric_that_raises_becomes_a_one_line_metric_error(unpaired_folders: tuple[Path, Path]):
    fake, real = unpaired_folders

    def singular(fake_feats: np.ndarray, real_feats: np.ndarray) -> dict[str, float]:
        return {"singular": float(np.linalg.inv(np.zeros((3, 3)))[0, 0])}

    metric = UnpairedMetric("singular", higher_is_better=False, compute=singular)
    with pytest.raises(MetricError) as info:
        compute_metric(metric, np.ones((2, 2)), np.ones((2, 2)))
    assert str(info.value) == "metric singular failed: LinAlgError: Singular matrix"
    assert isinstance(info.value, UserError) and isinstance(info.value.__cause__, np.linalg.LinAlgError)
    # a UserError from a metric (bad input) keeps its own message
    with pytest.raises(UserError, match="at least 2 images") as info:
        compute_metric(METRICS.get("fid"), np.ones((1, 4)), np.ones((3, 4)))
    assert not isinstance(info.value, MetricError)


def test_features_do_not_depend_on_batching_or_image_size(tmp_path: Path):
    files = make_image_folder(tmp_path, 3, size=64, seed=10)
    Image.open(files[0]).resize((100, 80)).save(tmp_path / "odd.png")
    files = list_images(tmp_path)
    one = extract_features(files, CountingNet(), batch_size=1)
    many = extract_features(files, CountingNet(), batch_size=4)
    assert one.dtype == np.float32 and one.shape == (4, 8)
    np.testing.assert_allclose(one, many, rtol=1e-6)


# -------------------------------------------------------------------------------------- cache


def test_cache_is_hit_on_a_second_call_and_invalidated_by_a_change(tmp_path: Path):
    folder, cache = tmp_path / "real", tmp_path / "cache"
    make_image_folder(folder, 6, seed=11)
    net = CountingNet()

    first, hit = cached_features(list_images(folder), net, cache)
    assert not hit and net.images_seen == 6
    second, hit = cached_features(list_images(folder), net, cache)
    assert hit and net.images_seen == 6  # nothing recomputed
    np.testing.assert_array_equal(first, second)

    # rewrite one image with new content (and a later mtime, whatever the filesystem's resolution)
    changed = folder / "img002.png"
    make_image_folder(tmp_path / "other", 1, seed=99)
    os.replace(tmp_path / "other" / "img000.png", changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third, hit = cached_features(list_images(folder), net, cache)
    assert not hit and net.images_seen == 12
    assert not np.array_equal(third[2], first[2])
    np.testing.assert_array_equal(third[[0, 1, 3, 4, 5]], first[[0, 1, 3, 4, 5]])

    # an added or removed file changes the key as well
    files = list_images(folder)
    key = cache_key(files, net)
    assert cache_key(files[:-1], net) != key
    make_image_folder(folder, 1, seed=12, name="new{:03d}.png")
    assert cache_key(list_images(folder), net) != key


def test_cache_key_depends_on_the_network_weights(tmp_path: Path):
    files = make_image_folder(tmp_path, 2)
    assert cache_key(files, CountingNet("a")) != cache_key(files, CountingNet("b"))
    assert cache_key(files, CountingNet("a")) == cache_key(files, CountingNet("a"))


def test_evaluate_dirs_caches_only_the_real_folder(unpaired_folders: tuple[Path, Path], tmp_path: Path):
    fake, real = unpaired_folders
    net = CountingNet()
    options = {"fake_suffix": "_fake_B", "inception": net, "cache_dir": tmp_path / "cache"}
    first = evaluate_dirs(fake, real, ["fid"], **options)
    assert net.images_seen == 22
    second = evaluate_dirs(fake, real, ["fid"], **options)
    assert net.images_seen == 22 + 12  # the fake folder again, the real one from the cache
    assert second == first
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1
